"""Blocking calls inside streaming response generators, between chunks."""

from __future__ import annotations

import time
import zlib
from collections.abc import AsyncIterator

import requests
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from corpus import Case, get, work

app = FastAPI()
PAYLOAD = work.zlib_payload()


async def report_rows() -> AsyncIterator[bytes]:
    yield b"id,name\n"
    time.sleep(work.SLEEP_S)  # BLOCKS: streaming_sleep
    yield b"1,ada\n"


async def compressed_chunks() -> AsyncIterator[bytes]:
    yield b"start\n"
    chunk = zlib.compress(PAYLOAD, 9)  # BLOCKS: streaming_zlib
    yield chunk[:16]


async def proxied_chunks() -> AsyncIterator[bytes]:
    yield b"["
    upstream = requests.get(work.slow_url(), timeout=5)  # BLOCKS: streaming_requests
    yield upstream.content
    yield b"]"


@app.get("/report.csv")
async def report() -> StreamingResponse:
    return StreamingResponse(report_rows(), media_type="text/csv")


@app.get("/archive")
async def archive() -> StreamingResponse:
    return StreamingResponse(compressed_chunks(), media_type="application/octet-stream")


@app.get("/proxy")
async def proxy() -> StreamingResponse:
    return StreamingResponse(proxied_chunks(), media_type="application/json")


S = "streaming generator"
CASES = [
    Case(
        "streaming_sleep",
        True,
        "time.sleep",
        S,
        get("/report.csv"),
        lambda: time.sleep(work.SLEEP_S),
    ),
    Case(
        "streaming_zlib",
        True,
        "zlib",
        S,
        get("/archive"),
        lambda: zlib.compress(PAYLOAD, 9),
    ),
    Case(
        "streaming_requests",
        True,
        "requests",
        S,
        get("/proxy"),
        lambda: requests.get(work.slow_url(), timeout=5),
    ),
]
