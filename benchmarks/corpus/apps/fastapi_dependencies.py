"""Blocking calls in FastAPI dependencies: plain, nested, callable classes, `yield` clean-up."""

from __future__ import annotations

import sqlite3
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Annotated, Any

import requests
from fastapi import Depends, FastAPI

from corpus import Case, get, work

app = FastAPI()


async def current_user() -> dict[str, Any]:
    connection = sqlite3.connect(":memory:")
    row = connection.execute(work.SQL_SLOW).fetchone()  # BLOCKS: dependency_sqlite
    connection.close()
    return {"user": "ada", "score": row[0]}


@app.get("/me")
async def me(user: Annotated[dict[str, Any], Depends(current_user)]) -> dict[str, Any]:
    return user


async def feature_flags() -> dict[str, Any]:
    response = requests.get(work.slow_url(), timeout=5)  # BLOCKS: dependency_nested_requests
    flags: dict[str, Any] = response.json()
    return flags


async def request_context(
    flags: Annotated[dict[str, Any], Depends(feature_flags)],
) -> dict[str, Any]:
    return {"flags": flags}


@app.get("/nested")
async def nested(context: Annotated[dict[str, Any], Depends(request_context)]) -> dict[str, Any]:
    return context


class RateLimiter:
    """A callable-class dependency that asks a (slow, synchronous) quota service."""

    async def __call__(self) -> bool:
        url = work.slow_url()
        with urllib.request.urlopen(url, timeout=5) as answer:  # BLOCKS: dependency_class_urllib
            return bool(answer.status == 200)


@app.get("/limited")
async def limited(allowed: Annotated[bool, Depends(RateLimiter())]) -> dict[str, Any]:
    return {"allowed": allowed}


async def db_session() -> AsyncIterator[str]:
    yield "session"
    time.sleep(work.SLEEP_S)  # BLOCKS: dependency_yield_cleanup_sleep


@app.get("/session")
async def with_session(session: Annotated[str, Depends(db_session)]) -> dict[str, Any]:
    return {"session": session}


async def audit_log() -> AsyncIterator[list[str]]:
    entries: list[str] = []
    yield entries
    with open(work.slow_sink(), "wb") as out:
        out.write(work.SINK_DATA)  # BLOCKS: dependency_yield_cleanup_file


@app.get("/audited")
async def audited(log: Annotated[list[str], Depends(audit_log)]) -> dict[str, Any]:
    log.append("read")
    return {"logged": len(log)}


def probe_sqlite() -> None:
    connection = sqlite3.connect(":memory:")
    connection.execute(work.SQL_SLOW).fetchone()
    connection.close()


def probe_urllib() -> None:
    with urllib.request.urlopen(work.slow_url(), timeout=5) as answer:
        answer.read()


def probe_file() -> None:
    with open(work.slow_sink(), "wb") as out:
        out.write(work.SINK_DATA)


D = "dependency"
CASES = [
    Case("dependency_sqlite", True, "sqlite3", D, get("/me"), probe_sqlite),
    Case(
        "dependency_nested_requests",
        True,
        "requests",
        "dependency of a dependency",
        get("/nested"),
        lambda: requests.get(work.slow_url(), timeout=5).json(),
    ),
    Case(
        "dependency_class_urllib",
        True,
        "urllib",
        "callable-class dependency",
        get("/limited"),
        probe_urllib,
    ),
    Case(
        "dependency_yield_cleanup_sleep",
        True,
        "time.sleep",
        "yield-dependency clean-up",
        get("/session"),
        lambda: time.sleep(work.SLEEP_S),
    ),
    Case(
        "dependency_yield_cleanup_file",
        True,
        "file write (slow disk)",
        "yield-dependency clean-up",
        get("/audited"),
        probe_file,
    ),
]
