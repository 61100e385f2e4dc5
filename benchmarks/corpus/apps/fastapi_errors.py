"""Blocking calls in exception handlers, which run on the loop like any other handler code."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from corpus import Case, get, work

app = FastAPI()
DOC = work.big_doc()


class Throttled(Exception):
    """Raised by a route when a client asks too often."""


@app.exception_handler(Throttled)
async def on_throttled(request: Request, exc: Throttled) -> JSONResponse:
    time.sleep(work.SLEEP_S)  # BLOCKS: exception_handler_sleep
    return JSONResponse({"detail": "slow down"}, status_code=429)


@app.exception_handler(HTTPException)
async def on_http_error(request: Request, exc: HTTPException) -> JSONResponse:
    context = json.dumps({"detail": exc.detail, "debug": DOC})  # BLOCKS: exception_handler_json
    return JSONResponse(
        {"detail": exc.detail, "context": len(context)}, status_code=exc.status_code
    )


class Unavailable(Exception):
    """Raised when a backing store is down."""


@app.exception_handler(Unavailable)
async def on_unavailable(request: Request, exc: Unavailable) -> JSONResponse:
    connection = sqlite3.connect(":memory:")
    connection.execute(work.SQL_SLOW).fetchone()  # BLOCKS: exception_handler_sqlite
    connection.close()
    return JSONResponse({"detail": "unavailable"}, status_code=503)


@app.get("/throttled")
async def throttled() -> dict[str, Any]:
    raise Throttled()


@app.get("/missing")
async def missing() -> dict[str, Any]:
    raise HTTPException(status_code=404, detail="no such thing")


@app.get("/unavailable")
async def unavailable() -> dict[str, Any]:
    raise Unavailable()


def probe_sqlite() -> None:
    connection = sqlite3.connect(":memory:")
    connection.execute(work.SQL_SLOW).fetchone()
    connection.close()


E = "exception handler"
CASES = [
    Case(
        "exception_handler_sleep",
        True,
        "time.sleep",
        E,
        get("/throttled", 429),
        lambda: time.sleep(work.SLEEP_S),
    ),
    Case(
        "exception_handler_json",
        True,
        "json.dumps",
        E + " (HTTPException)",
        get("/missing", 404),
        lambda: json.dumps({"detail": "no such thing", "debug": DOC}),
    ),
    Case(
        "exception_handler_sqlite",
        True,
        "sqlite3",
        E,
        get("/unavailable", 503),
        probe_sqlite,
    ),
]
