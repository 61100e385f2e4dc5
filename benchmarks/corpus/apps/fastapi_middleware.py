"""Blocking calls in middleware: `@app.middleware("http")` and pure ASGI middleware classes.

Middleware wraps every route of its app, so each case here has an app of its own.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import requests
from fastapi import FastAPI, Request, Response

from corpus import Case, get, work

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
CallNext = Callable[[Request], Awaitable[Response]]
DOC = work.big_doc()
TOKEN = b"token"
SALT = b"salt"


def _items_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items")
    async def items() -> dict[str, Any]:
        return {"items": [1, 2, 3]}

    return app


app_http_sleep = _items_app()


@app_http_sleep.middleware("http")
async def throttle(request: Request, call_next: CallNext) -> Response:
    time.sleep(work.SLEEP_S)  # BLOCKS: middleware_http_sleep
    return await call_next(request)


app_http_cpu = _items_app()


def checksum(n: int) -> int:
    total = 0
    for i in range(n):  # BLOCKS: middleware_http_cpu_after
        total = (total * 31 + i) % 1_000_003  # BLOCKS: middleware_http_cpu_after
    return total


@app_http_cpu.middleware("http")
async def sign_response(request: Request, call_next: CallNext) -> Response:
    response = await call_next(request)
    response.headers["x-signature"] = str(checksum(work.CPU_LOOP_N))
    return response


class UpstreamAuth:
    """Pure ASGI middleware that checks each request against a slow auth service."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            verdict = requests.get(work.slow_url(), timeout=5)  # BLOCKS: asgi_middleware_requests
            scope.setdefault("state", {})["auth"] = verdict.status_code
        await self.app(scope, receive, send)


app_asgi_requests = _items_app()
app_asgi_requests.add_middleware(UpstreamAuth)


class AuditResponses:
    """Pure ASGI middleware that writes an audit record when the response starts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def audited_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry = {"status": message["status"], "context": DOC}
                record = json.dumps(entry)  # BLOCKS: asgi_middleware_send_json
                message.setdefault("headers", []).append((b"x-audit", str(len(record)).encode()))
            await send(message)

        await self.app(scope, receive, audited_send)


app_asgi_send = _items_app()
app_asgi_send.add_middleware(AuditResponses)


class TokenCheck:
    """Pure ASGI middleware that derives a key per request (a password-hash style check)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            rounds = work.PBKDF2_ROUNDS
            hashlib.pbkdf2_hmac("sha256", TOKEN, SALT, rounds)  # BLOCKS: asgi_middleware_pbkdf2
        await self.app(scope, receive, send)


app_asgi_pbkdf2 = _items_app()
app_asgi_pbkdf2.add_middleware(TokenCheck)


M = "@app.middleware"
A = "pure ASGI middleware"
CASES = [
    Case(
        "middleware_http_sleep",
        True,
        "time.sleep",
        M,
        get("/items"),
        lambda: time.sleep(work.SLEEP_S),
        app_attr="app_http_sleep",
    ),
    Case(
        "middleware_http_cpu_after",
        True,
        "pure-Python CPU",
        M + ", after call_next",
        get("/items"),
        lambda: checksum(work.CPU_LOOP_N),
        app_attr="app_http_cpu",
    ),
    Case(
        "asgi_middleware_requests",
        True,
        "requests",
        A,
        get("/items"),
        lambda: requests.get(work.slow_url(), timeout=5),
        app_attr="app_asgi_requests",
    ),
    Case(
        "asgi_middleware_send_json",
        True,
        "json.dumps",
        A + ", wrapped send",
        get("/items"),
        lambda: json.dumps({"status": 200, "context": DOC}),
        app_attr="app_asgi_send",
    ),
    Case(
        "asgi_middleware_pbkdf2",
        True,
        "hashlib",
        A,
        get("/items"),
        lambda: hashlib.pbkdf2_hmac("sha256", TOKEN, SALT, work.PBKDF2_ROUNDS),
        app_attr="app_asgi_pbkdf2",
    ),
]
