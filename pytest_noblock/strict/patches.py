"""What strict mode wraps while a test body runs: the table of known blocking functions.

Each is wrapped where it lives (`time.sleep` in `time`, `Session.request` on its class),
and where the app or a library bound an alias to it before the test (`from time import
sleep`); the objects the app made before the test get stand-ins (`strict.standins`).
Everything is put back when the test body ends (`strict.wrappers.uninstall`).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Awaitable, Callable, Iterator
from types import ModuleType
from typing import Any

from ..origins import Request, current_origin
from ..stacks import PLUGIN_DIR, is_library_file
from . import Recorder, is_noise_module
from .standins import blocking_acquire, sqlite_types, swap_in
from .wrappers import (
    Blocks,
    activate,
    always,
    recording_here,
    set_attribute,
    set_item,
    uninstall,
    wrap,
)


def _blocking_socket(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    # asyncio's sockets are non-blocking (timeout 0.0): they never wait.
    return bool(args) and args[0].gettimeout() != 0.0


def _blocking_get(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    block = args[1] if len(args) > 1 else kwargs.get("block", True)
    timeout = args[2] if len(args) > 2 else kwargs.get("timeout")
    return bool(block) and timeout != 0


def _blocking_put(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    # An unbounded queue never makes `put` wait.
    return getattr(args[0], "maxsize", 0) > 0 and _blocking_get(args[1:], kwargs)


def _blocking_wait(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    timeout = args[1] if len(args) > 1 else kwargs.get("timeout")
    return timeout != 0


_SOCKET_METHODS = (
    "connect",
    "connect_ex",
    "accept",
    "send",
    "sendall",
    "sendto",
    "sendmsg",
    "sendfile",
    "recv",
    "recv_into",
    "recvfrom",
    "recvfrom_into",
    "recvmsg",
)
_SSL_METHODS = (
    "connect",
    "connect_ex",
    "accept",
    "do_handshake",
    "unwrap",
    "send",
    "sendall",
    "sendto",
    "sendfile",
    "write",
    "recv",
    "recv_into",
    "recvfrom",
    "recvfrom_into",
    "read",
)
_OS_CALLS = (
    "stat",
    "lstat",
    "listdir",
    "scandir",
    "walk",
    "remove",
    "unlink",
    "rename",
    "replace",
    "mkdir",
    "makedirs",
    "rmdir",
    "removedirs",
    "chmod",
    "utime",
    "truncate",
    "open",
    "system",
    "popen",
)

# (module, class or None, attributes, label prefix, when it blocks)
_TARGETS: tuple[tuple[str, str | None, tuple[str, ...], Blocks], ...] = (
    ("time", None, ("sleep",), always),
    ("socket", None, ("getaddrinfo", "gethostbyname", "gethostbyname_ex"), always),
    ("socket", None, ("create_connection",), always),
    ("socket", "socket", _SOCKET_METHODS, _blocking_socket),
    # SSLSocket's own methods (each calls into the C SSL object, not socket.socket's).
    ("ssl", "SSLSocket", _SSL_METHODS, _blocking_socket),
    ("builtins", None, ("open", "input"), always),
    ("io", None, ("open",), always),
    ("os", None, _OS_CALLS, always),
    ("subprocess", None, ("run", "call", "check_call", "check_output"), always),
    ("subprocess", None, ("getoutput", "getstatusoutput"), always),
    ("subprocess", "Popen", ("__init__", "wait", "communicate"), always),
    ("sqlite3", None, ("connect",), always),
    ("threading", "Event", ("wait",), _blocking_wait),
    ("threading", "Condition", ("wait", "wait_for"), _blocking_wait),
    # `with semaphore:` calls the same function, bound to `__enter__` when the class was made.
    ("threading", "Semaphore", ("acquire", "__enter__"), blocking_acquire),
    ("threading", "Barrier", ("wait",), always),
    ("threading", "Thread", ("join",), _blocking_wait),
    ("queue", "Queue", ("get",), _blocking_get),
    ("queue", "Queue", ("put",), _blocking_put),
    ("http.client", "HTTPConnection", ("connect", "request", "getresponse"), always),
    ("urllib.request", None, ("urlopen",), always),
    ("requests.sessions", "Session", ("request",), always),
)

_LABELS = {
    "requests.sessions.Session.request": "requests (Session.request)",
    "subprocess.Popen.__init__": "subprocess.Popen",
    "io.open": "builtins.open",
}


def install(recorder: Recorder, *, this_thread: bool = True) -> None:
    """Wrap the known blocking calls, their aliases, the app's objects. On the loop thread,
    or (`this_thread` false) on a sync test's thread: then only the portal loops it starts
    record."""
    uninstall()
    wrappers: dict[int, tuple[object, object]] = {}
    for module_name, class_name, names, blocks in _TARGETS:
        module = sys.modules.get(module_name)
        owner: Any = getattr(module, class_name, None) if class_name else module
        if owner is None:
            continue
        for name in names:
            original = getattr(owner, name, None)
            if original is None:
                continue
            entry = wrappers.get(id(original))
            if entry is None or entry[0] is not original:
                where = f"{module_name}.{class_name or ''}.{name}".replace("..", ".")
                wrapper = wrap(_LABELS.get(where, where), original, blocks)
                if where == "sqlite3.connect":
                    wrapper = _sqlite_connect(module, wrapper)  # type: ignore[arg-type]
                entry = wrappers[id(original)] = (original, wrapper)
            set_attribute(owner, name, original, entry[1])
    _patch_aliases(wrappers)
    activate(recorder, this_thread=this_thread)


def _patch_aliases(wrappers: dict[int, tuple[object, object]]) -> None:
    """`from time import sleep`, in the app's modules and in libraries: point it at the wrapper.

    The app's modules are looked at in full each time, stand-ins included; a library's
    aliases are looked for once, when it is first seen (see `_library_aliases`).
    """
    app_modules = []
    for name, module in list(sys.modules.items()):
        cached = _library_aliases.get(name)
        if cached is not None and cached[0] is module:
            aliases = cached[1]
        elif not isinstance(module, ModuleType):
            continue
        elif _is_app_module(module):
            app_modules.append(module)
            aliases = tuple(_bound(vars(module), wrappers))
        else:
            aliases = _library_aliases_in(name, module, wrappers)
            _library_aliases[name] = (module, aliases)
        namespace = vars(module)
        for alias in aliases:
            value = namespace.get(alias)
            entry = wrappers.get(id(value))
            if entry is not None and entry[0] is value:
                set_item(namespace, alias, value, entry[1])
    swap_in(app_modules)


def _is_app_module(module: ModuleType) -> bool:
    filename = getattr(module, "__file__", None)
    return (
        isinstance(filename, str)
        and not is_library_file(filename)
        and not filename.startswith(PLUGIN_DIR)
    )


# A library's names bound to a known blocking function, found when the library was first
# seen: its globals do not change after import, and looking through every loaded module
# (800 with FastAPI, httpx and pytest) on each strict test would cost milliseconds.
_library_aliases: dict[str, tuple[ModuleType, tuple[str, ...]]] = {}


def _library_aliases_in(
    name: str, module: ModuleType, wrappers: dict[int, tuple[object, object]]
) -> tuple[str, ...]:
    """The names in a library's globals bound to a known blocking function.

    Not looked at: the plugin itself, the noise modules (their calls are never findings),
    and modules not written in Python (`posix`, `_socket`: the functions' own homes).
    """
    filename = getattr(module, "__file__", None)
    if not isinstance(filename, str) or not filename.endswith(".py") or is_noise_module(name):
        return ()
    if filename.startswith(PLUGIN_DIR):
        return ()
    namespace = vars(module)
    # At C speed first: almost no library binds one.
    if not any(map(wrappers.__contains__, map(id, namespace.values()))):
        return ()
    return tuple(_bound(namespace, wrappers))


def _bound(namespace: dict[str, Any], wrappers: dict[int, tuple[object, object]]) -> Iterator[str]:
    for name, value in namespace.items():
        entry = wrappers.get(id(value))
        if entry is not None and entry[0] is value:
            yield name


def _sqlite_connect(sqlite3: ModuleType, wrapper: Callable[..., Any]) -> Callable[..., Any]:
    connection_type, _, _ = sqlite_types(sqlite3)

    @functools.wraps(wrapper)
    def connect(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # tracebacks show the app, not the plugin
        # Only a connection the request opens on the loop thread: another thread's
        # connection, or one with the app's own factory, is left as it is.
        if (
            recording_here()
            and isinstance(current_origin.get(), Request)
            and "factory" not in kwargs
            and len(args) < 6
        ):
            kwargs["factory"] = connection_type
        return wrapper(*args, **kwargs)

    return connect


TestFunction = Callable[..., Awaitable[Any]]


def wrap_test(test: TestFunction, recorder: Recorder) -> TestFunction:
    """Record while the test body runs, on its loop's thread; put everything back after."""

    @functools.wraps(test)
    async def run_strict(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        install(recorder)
        try:
            return await test(*args, **kwargs)
        finally:
            uninstall()

    return run_strict
