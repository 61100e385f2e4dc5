"""The client fixtures' machinery: finding the app, checking it, running its lifespan.

`noblock_client` is a plain (sync) fixture on purpose: an async fixture would have to be
run by pytest-asyncio or by anyio, and each would take it onto its own loop. Instead the
lifespan starts on the loop of whoever sends the first request (or, at the latest, just
before the test body) and is shut down on that same loop after the test body.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import inspect
from collections.abc import MutableMapping
from types import BuiltinFunctionType, ModuleType
from typing import Any

import anyio
import httpx

from .adapters import trio as trio_steps
from .errors import AppError, LifespanError
from .origins import LIFESPAN, current_origin
from .tracking import ASGIApp, Message, Receive, Scope, Send

BASE_URL = "http://testserver"


def load_app(spec: str, where: str) -> object:
    """Import `module:attribute`, given `where` (the ini option noblock_app, --noblock-app)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise AppError(f"noblock: {where} must look like 'package.module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise AppError(
            f"noblock: {where}: cannot import {module_name!r} ({type(exc).__name__}: {exc})"
        ) from None
    value: object = module
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise AppError(
                f"noblock: {where}: {module_name!r} has no attribute {attribute!r}"
            ) from None
    return value


def check_asgi_app(app: object, where: str) -> ASGIApp:
    """Refuse, by name, anything that cannot be called as `await app(scope, receive, send)`."""
    described = f"{where} gave {_describe(app)}, which is not an ASGI app"
    if app is None or isinstance(app, (str, bytes, ModuleType, type)) or not callable(app):
        raise AppError(f"noblock: {described}: an ASGI app is called as app(scope, receive, send)")
    # A C function (`print`) or a plain `def` returns nothing to await: it would fail at the
    # first request with "NoneType can't be used in 'await' expression".
    not_async = (
        f"noblock: {described}: it is not `async def`; an ASGI app is awaited as "
        "app(scope, receive, send)"
    )
    if isinstance(app, BuiltinFunctionType):
        raise AppError(not_async)
    try:
        parameters = [
            p
            for p in inspect.signature(app).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        takes_varargs = any(
            p.kind is p.VAR_POSITIONAL for p in inspect.signature(app).parameters.values()
        )
    except (TypeError, ValueError):
        return app
    if not takes_varargs and len(parameters) == 2:
        raise AppError(
            f"noblock: {described}: it takes two arguments, like a WSGI app "
            "(Flask, Django); pytest-noblock needs an ASGI app (FastAPI, Starlette, ...)"
        )
    if not takes_varargs and len(parameters) != 3:
        raise AppError(f"noblock: {described}: an ASGI app is called as app(scope, receive, send)")
    if inspect.isfunction(app) and not inspect.iscoroutinefunction(app):
        raise AppError(not_async)
    return app


def _describe(value: object) -> str:
    """Enough to recognise the value, never more than a line."""
    if value is None:
        return "None"
    if isinstance(value, type):
        return f"the class {value.__module__}.{value.__qualname__} (pass an instance of it)"
    if isinstance(value, ModuleType):
        return f"the module {value.__name__!r}"
    kind = type(value)
    text = repr(value)
    if len(text) > 80:
        text = text[:79] + "…"
    return f"{text} ({kind.__module__}.{kind.__qualname__})"


class _Phase:
    """The outcome of one lifespan phase, awaited the same way on asyncio and on trio."""

    def __init__(self) -> None:
        self._event = anyio.Event()
        self.error: BaseException | None = None

    def done(self) -> bool:
        return self._event.is_set()

    def resolve(self, error: BaseException | None = None) -> None:
        if not self._event.is_set():
            self.error = error
            self._event.set()

    async def wait(self) -> None:
        # Waiting never disturbs the phase: a cancelled waiter leaves the lifespan running.
        await self._event.wait()
        if self.error is not None:
            raise self.error


class Lifespan:
    """Drives the ASGI lifespan protocol the way a server does, on the current loop."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self.state: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None
        # On trio: a system task of the test's run, which nothing else can cancel.
        self._trio_scope: Any = None
        self._finished: anyio.Event | None = None
        self._startup_done: _Phase | None = None
        self._shutdown_requested: anyio.Event | None = None
        self._shutdown_done: _Phase | None = None
        self._received = 0
        self.supported = True
        self.closed = False

    async def start(self) -> None:
        if self.closed:
            raise LifespanError(
                "noblock_client was used after its test ended and the app's lifespan shut down"
            )
        if self._startup_done is None:
            on_trio = trio_steps.running()
            try:
                loop = None if on_trio else asyncio.get_running_loop()
            except RuntimeError:
                raise LifespanError(
                    "noblock_client needs an asyncio or trio event loop (run through "
                    "pytest-asyncio or anyio's plugin)"
                ) from None
            self._startup_done = _Phase()
            self._shutdown_done = _Phase()
            self._shutdown_requested = anyio.Event()
            self._finished = anyio.Event()
            token = current_origin.set(LIFESPAN)
            try:
                if loop is not None:
                    self._task = loop.create_task(self._run(), name="pytest-noblock lifespan")
                else:
                    import trio

                    trio.lowlevel.spawn_system_task(
                        self._run_on_trio,
                        name="pytest-noblock lifespan",
                        context=contextvars.copy_context(),
                    )
            finally:
                current_origin.reset(token)
        await self._startup_done.wait()

    async def shutdown(self) -> None:
        self.closed = True
        if self._finished is None or self._shutdown_requested is None:
            return
        if self._shutdown_done is None:
            return
        if self.supported and not self._finished.is_set():
            self._shutdown_requested.set()
            await self._shutdown_done.wait()
        if self._task is not None:
            await self._task
        else:
            await self._finished.wait()

    def abandon(self) -> None:
        """When the test never reached its end: the cancellation makes the app shut down."""
        self.closed = True
        if self._task is not None and not self._task.done():
            loop = self._task.get_loop()
            if not loop.is_closed():
                self._task.cancel()
        if self._trio_scope is not None:
            # Once the trio run is over, its system tasks are already gone.
            with contextlib.suppress(RuntimeError):
                self._trio_scope.cancel()

    async def _run_on_trio(self) -> None:
        __tracebackhide__ = True
        import trio

        with trio.CancelScope() as scope:
            self._trio_scope = scope
            await self._run()
        self._trio_scope = None

    async def _run(self) -> None:
        __tracebackhide__ = True
        assert self._startup_done is not None
        assert self._shutdown_done is not None
        scope: Scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self._app(scope, self._receive, self._send)
        except Exception as exc:
            if self._received == 0:
                # Like uvicorn: an app that raises before reading the first lifespan
                # message does not speak the lifespan protocol.
                self.supported = False
            else:
                self._fail(f"the app's lifespan failed: {type(exc).__name__}: {exc}")
        finally:
            if not self._startup_done.done():
                self.supported = False
                self._startup_done.resolve()
            self._shutdown_done.resolve()
            if self._finished is not None:
                self._finished.set()

    def _fail(self, message: str) -> None:
        """Hand the error to whoever waits for the current phase, and to no one else."""
        assert self._startup_done is not None
        assert self._shutdown_done is not None
        if not self._startup_done.done():
            self._startup_done.resolve(LifespanError(message))
        elif self._startup_done.error is None and self._shutdown_requested_set():
            self._shutdown_done.resolve(LifespanError(message))

    def _shutdown_requested_set(self) -> bool:
        return self._shutdown_requested is not None and self._shutdown_requested.is_set()

    async def _receive(self) -> Message:
        assert self._shutdown_requested is not None
        self._received += 1
        if self._received == 1:
            return {"type": "lifespan.startup"}
        # Cancelled when the loop is closed before the test body reached its end (a
        # fixture failed, say): shut down gracefully, as a server does on SIGTERM, so
        # the app's clean-up code still runs.
        if self._task is None:
            # trio: a cancelled task must not swallow its cancellation.
            await self._shutdown_requested.wait()
        else:
            with contextlib.suppress(asyncio.CancelledError):
                await self._shutdown_requested.wait()
        return {"type": "lifespan.shutdown"}

    async def _send(self, message: Message) -> None:
        assert self._startup_done is not None
        assert self._shutdown_done is not None
        kind = message.get("type")
        if kind == "lifespan.startup.complete":
            self._startup_done.resolve()
        elif kind == "lifespan.startup.failed":
            self._fail(f"the app's lifespan startup failed: {_last_line(message)}")
        elif kind == "lifespan.shutdown.complete":
            self._shutdown_done.resolve()
        elif kind == "lifespan.shutdown.failed":
            self._fail(f"the app's lifespan shutdown failed: {_last_line(message)}")


def _last_line(message: Message) -> str:
    """Starlette sends a whole traceback as the message: its last line names the error."""
    lines = [line.strip() for line in str(message.get("message", "")).splitlines()]
    lines = [line for line in lines if line]
    return lines[-1] if lines else "(no message)"


class WithState:
    """Hands each request a copy of the lifespan state, as Starlette's servers do."""

    def __init__(self, app: ASGIApp, state: MutableMapping[str, Any]) -> None:
        self.app = app
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        __tracebackhide__ = True  # tracebacks show the app, not the plugin
        if scope["type"] in ("http", "websocket") and self._state:
            # In place: the router writes the endpoint into this same dict, which is
            # where the report finds the handler's name.
            scope["state"] = dict(self._state)
        await self.app(scope, receive, send)


class LifespanTransport(httpx.AsyncBaseTransport):
    """`httpx.ASGITransport` with the app's lifespan started before the first request."""

    def __init__(self, app: ASGIApp) -> None:
        self.lifespan = Lifespan(app)
        self._inner = httpx.ASGITransport(app=WithState(app, self.lifespan.state))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        __tracebackhide__ = True
        await self.lifespan.start()
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.lifespan.shutdown()
        await self._inner.aclose()


def make_client(app: ASGIApp) -> tuple[httpx.AsyncClient, LifespanTransport]:
    transport = LifespanTransport(app)
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL), transport
