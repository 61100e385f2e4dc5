"""Starlette apps: function and class endpoints, BaseHTTPMiddleware, background tasks."""

from __future__ import annotations

import re
import sqlite3
import time

import requests
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.endpoints import HTTPEndpoint
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from corpus import Case, get, work


async def slow_route(request: Request) -> JSONResponse:
    time.sleep(work.SLEEP_S)  # BLOCKS: starlette_route_sleep
    return JSONResponse({"slept": work.SLEEP_S})


class Weather(HTTPEndpoint):
    async def get(self, request: Request) -> JSONResponse:
        forecast = requests.get(work.slow_url(), timeout=5)  # BLOCKS: starlette_endpoint_requests
        return JSONResponse({"forecast": forecast.json()})


async def write_export() -> None:
    with open(work.slow_sink(), "wb") as out:
        out.write(work.SINK_DATA)  # BLOCKS: starlette_background_file


async def export(request: Request) -> JSONResponse:
    return JSONResponse({"export": "queued"}, background=BackgroundTask(write_export))


async def validate(request: Request) -> JSONResponse:
    text = request.query_params.get("text", work.REGEX_INPUT)
    matched = re.match(work.REGEX, text)  # BLOCKS: starlette_own_client_regex
    return JSONResponse({"valid": matched is not None})


def sync_page(request: Request) -> JSONResponse:
    time.sleep(work.CLEAN_WAIT_S)
    return JSONResponse({"page": 1})


async def plain(request: Request) -> JSONResponse:
    return JSONResponse({"plain": True})


app = Starlette(
    routes=[
        Route("/sleep", slow_route),
        Route("/weather", Weather),
        Route("/export", export),
        Route("/validate", validate),
        Route("/sync-page", sync_page),
    ]
)


class SessionLoader(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        connection = sqlite3.connect(":memory:")
        connection.execute(work.SQL_SLOW).fetchone()  # BLOCKS: starlette_middleware_sqlite
        connection.close()
        return await call_next(request)


app_with_middleware = Starlette(
    routes=[Route("/plain", plain)], middleware=[Middleware(SessionLoader)]
)


def probe_export() -> None:
    with open(work.slow_sink(), "wb") as out:
        out.write(work.SINK_DATA)


def probe_sqlite() -> None:
    connection = sqlite3.connect(":memory:")
    connection.execute(work.SQL_SLOW).fetchone()
    connection.close()


OWN_CLIENT = """transport = httpx.ASGITransport(app=app)
async with httpx.AsyncClient(transport=transport, base_url="http://shop") as own:
    r = await own.get("/validate")
assert r.status_code == 200, r.text
"""

ST = "Starlette"
CASES = [
    Case(
        "starlette_route_sleep",
        True,
        "time.sleep",
        "handler",
        get("/sleep"),
        lambda: time.sleep(work.SLEEP_S),
        framework=ST,
    ),
    Case(
        "starlette_endpoint_requests",
        True,
        "requests",
        "HTTPEndpoint method",
        get("/weather"),
        lambda: requests.get(work.slow_url(), timeout=5),
        framework=ST,
    ),
    Case(
        "starlette_background_file",
        True,
        "file write (slow disk)",
        "background task",
        get("/export"),
        probe_export,
        framework=ST,
    ),
    Case(
        "starlette_middleware_sqlite",
        True,
        "sqlite3",
        "BaseHTTPMiddleware",
        get("/plain"),
        probe_sqlite,
        app_attr="app_with_middleware",
        framework=ST,
    ),
    Case(
        "starlette_own_client_regex",
        True,
        "re backtracking",
        "handler (test's own ASGITransport client)",
        OWN_CLIENT,
        lambda: re.match(work.REGEX, work.REGEX_INPUT),
        own_client=True,
        framework=ST,
    ),
    Case(
        "clean_starlette_def_sleep",
        False,
        "time.sleep",
        "sync endpoint (thread pool)",
        get("/sync-page"),
        framework=ST,
    ),
]
