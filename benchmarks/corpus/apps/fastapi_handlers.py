"""Blocking calls made right in `async def` FastAPI handlers: one route per kind of call."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import queue
import re
import sqlite3
import subprocess
import threading
import time
import urllib.request
import zlib
from typing import Any

import requests
from fastapi import FastAPI

from corpus import Case, get, work

app = FastAPI()
DOC = work.big_doc()
PAYLOAD = work.zlib_payload()
BIG = work.big_bytes()
LOCK = threading.Lock()
BACKGROUND: set[asyncio.Task[None]] = set()


@app.get("/sleep")
async def sleep() -> dict[str, Any]:
    time.sleep(work.SLEEP_S)  # BLOCKS: handler_time_sleep
    return {"slept": work.SLEEP_S}


@app.get("/sleep-80ms")
async def sleep_80ms() -> dict[str, Any]:
    time.sleep(work.SHORT_SLEEP_S)  # BLOCKS: handler_sleep_80ms
    return {"slept": work.SHORT_SLEEP_S}


@app.get("/requests")
async def with_requests() -> dict[str, Any]:
    upstream = requests.get(work.slow_url(), timeout=5)  # BLOCKS: handler_requests
    return {"upstream": upstream.json()}


@app.get("/urllib")
async def with_urllib() -> dict[str, Any]:
    with urllib.request.urlopen(work.slow_url(), timeout=5) as response:  # BLOCKS: handler_urllib
        body = response.read()
    return {"upstream": json.loads(body)}


def _upstream_path() -> str:
    return "/" + work.slow_url().split("/", 3)[3]


@app.get("/http-client")
async def with_http_client() -> dict[str, Any]:
    host, port = work.upstream_address()
    connection = http.client.HTTPConnection(host, port, timeout=5)
    connection.request("GET", _upstream_path())
    response = connection.getresponse()  # BLOCKS: handler_http_client
    body = response.read()
    connection.close()
    return {"upstream": json.loads(body)}


def probe_http_client() -> None:
    host, port = work.upstream_address()
    connection = http.client.HTTPConnection(host, port, timeout=5)
    connection.request("GET", _upstream_path())
    connection.getresponse().read()
    connection.close()


@app.get("/file-open")
async def file_open() -> dict[str, Any]:
    path = work.slow_fifo()
    with open(path) as handle:  # BLOCKS: handler_file_open_slow
        data = handle.read()
    return {"read": len(data)}


def probe_file_open() -> None:
    with open(work.slow_fifo()) as handle:
        handle.read()


@app.get("/file-write")
async def file_write() -> dict[str, Any]:
    path = work.fresh_file("export")
    with open(path, "wb") as out:
        out.write(BIG)  # BLOCKS: handler_file_write_big
    return {"written": len(BIG)}


def probe_file_write() -> None:
    with open(work.fresh_file("export"), "wb") as out:
        out.write(BIG)


@app.get("/sqlite")
async def with_sqlite() -> dict[str, Any]:
    connection = sqlite3.connect(":memory:")
    total = connection.execute(work.SQL_SLOW).fetchone()[0]  # BLOCKS: handler_sqlite
    connection.close()
    return {"total": total}


def probe_sqlite() -> None:
    connection = sqlite3.connect(":memory:")
    connection.execute(work.SQL_SLOW).fetchone()
    connection.close()


@app.get("/subprocess")
async def with_subprocess() -> dict[str, Any]:
    done = subprocess.run(work.SUBPROCESS_ARGS, check=True)  # BLOCKS: handler_subprocess
    return {"code": done.returncode}


@app.get("/lock")
async def with_lock() -> dict[str, Any]:
    work.hold_lock_in_thread(LOCK)
    LOCK.acquire()  # BLOCKS: handler_lock_wait
    LOCK.release()
    return {"locked": False}


def probe_lock() -> None:
    work.hold_lock_in_thread(LOCK)
    LOCK.acquire()
    LOCK.release()


@app.get("/queue")
async def with_queue() -> dict[str, Any]:
    jobs: queue.Queue[str] = queue.Queue()
    work.produce_later(jobs, "job")
    job = jobs.get()  # BLOCKS: handler_queue_get
    return {"job": job}


def probe_queue() -> None:
    jobs: queue.Queue[str] = queue.Queue()
    work.produce_later(jobs, "job")
    jobs.get()


@app.get("/event")
async def with_event() -> dict[str, Any]:
    ready = threading.Event()
    threading.Timer(work.LOCK_HOLD_S, ready.set).start()
    ready.wait()  # BLOCKS: handler_event_wait
    return {"ready": True}


def probe_event() -> None:
    ready = threading.Event()
    threading.Timer(work.LOCK_HOLD_S, ready.set).start()
    ready.wait()


@app.get("/cpu-loop")
async def cpu_loop() -> dict[str, Any]:
    total = 0
    for i in range(work.CPU_LOOP_N):  # BLOCKS: handler_cpu_loop
        total += i * i % 7  # BLOCKS: handler_cpu_loop
    return {"total": total}


def probe_cpu_loop() -> None:
    total = 0
    for i in range(work.CPU_LOOP_N):
        total += i * i % 7


def fib(n: int) -> int:
    if n < 2:  # BLOCKS: handler_cpu_recursive
        return n  # BLOCKS: handler_cpu_recursive
    return fib(n - 1) + fib(n - 2)  # BLOCKS: handler_cpu_recursive


@app.get("/cpu-recursive")
async def cpu_recursive() -> dict[str, Any]:
    return {"fib": fib(work.FIB_N)}


@app.get("/json")
async def big_json() -> dict[str, Any]:
    text = json.dumps(DOC)  # BLOCKS: handler_json_dumps
    return {"size": len(text)}


@app.get("/zlib")
async def compress() -> dict[str, Any]:
    packed = zlib.compress(PAYLOAD, 9)  # BLOCKS: handler_zlib
    return {"size": len(packed)}


@app.get("/regex")
async def regex() -> dict[str, Any]:
    matched = re.match(work.REGEX, work.REGEX_INPUT)  # BLOCKS: handler_regex
    return {"matched": matched is not None}


@app.get("/password")
async def password() -> dict[str, Any]:
    rounds = work.PBKDF2_ROUNDS
    key = hashlib.pbkdf2_hmac("sha256", b"secret", b"salt", rounds)  # BLOCKS: handler_pbkdf2
    return {"key": key.hex()[:8]}


@app.get("/two-holds")
async def two_holds() -> dict[str, Any]:
    time.sleep(work.SHORT_SLEEP_S)  # BLOCKS: handler_two_holds
    await asyncio.sleep(0)
    time.sleep(work.SLEEP_S)  # BLOCKS: handler_two_holds
    return {"holds": 2}


@app.get("/after-await")
async def after_await() -> dict[str, Any]:
    await asyncio.sleep(0.01)
    upstream = requests.get(work.slow_url(), timeout=5)  # BLOCKS: handler_block_after_await
    return {"upstream": upstream.json()}


async def refresh_cache() -> None:
    time.sleep(work.SLEEP_S)  # BLOCKS: handler_spawned_task


@app.get("/spawn")
async def spawn() -> dict[str, Any]:
    task = asyncio.create_task(refresh_cache())
    BACKGROUND.add(task)
    task.add_done_callback(BACKGROUND.discard)
    return {"queued": True}


def _sleep() -> None:
    time.sleep(work.SLEEP_S)


def _requests() -> None:
    requests.get(work.slow_url(), timeout=5).json()


def _urllib() -> None:
    with urllib.request.urlopen(work.slow_url(), timeout=5) as response:
        response.read()


H = "handler"
CASES = [
    Case("handler_time_sleep", True, "time.sleep", H, get("/sleep"), _sleep),
    Case(
        "handler_sleep_80ms",
        True,
        "time.sleep 80 ms",
        H,
        get("/sleep-80ms"),
        lambda: time.sleep(work.SHORT_SLEEP_S),
    ),
    Case("handler_requests", True, "requests", H, get("/requests"), _requests),
    Case("handler_urllib", True, "urllib", H, get("/urllib"), _urllib),
    Case("handler_http_client", True, "http.client", H, get("/http-client"), probe_http_client),
    Case(
        "handler_file_open_slow",
        True,
        "file open (slow disk)",
        H,
        get("/file-open"),
        probe_file_open,
    ),
    Case(
        "handler_file_write_big",
        True,
        "file write (192 MiB)",
        H,
        get("/file-write"),
        probe_file_write,
    ),
    Case("handler_sqlite", True, "sqlite3", H, get("/sqlite"), probe_sqlite),
    Case(
        "handler_subprocess",
        True,
        "subprocess",
        H,
        get("/subprocess"),
        lambda: subprocess.run(work.SUBPROCESS_ARGS, check=True),
    ),
    Case("handler_lock_wait", True, "threading.Lock", H, get("/lock"), probe_lock),
    Case("handler_queue_get", True, "queue.Queue", H, get("/queue"), probe_queue),
    Case("handler_event_wait", True, "threading.Event", H, get("/event"), probe_event),
    Case("handler_cpu_loop", True, "pure-Python CPU", H, get("/cpu-loop"), probe_cpu_loop),
    Case(
        "handler_cpu_recursive",
        True,
        "pure-Python CPU",
        H,
        get("/cpu-recursive"),
        lambda: fib(work.FIB_N),
    ),
    Case("handler_json_dumps", True, "json.dumps", H, get("/json"), lambda: json.dumps(DOC)),
    Case("handler_zlib", True, "zlib", H, get("/zlib"), lambda: zlib.compress(PAYLOAD, 9)),
    Case(
        "handler_regex",
        True,
        "re backtracking",
        H,
        get("/regex"),
        lambda: re.match(work.REGEX, work.REGEX_INPUT),
    ),
    Case(
        "handler_pbkdf2",
        True,
        "hashlib",
        H,
        get("/password"),
        lambda: hashlib.pbkdf2_hmac("sha256", b"secret", b"salt", work.PBKDF2_ROUNDS),
    ),
    Case("handler_two_holds", True, "time.sleep x2", H, get("/two-holds"), _sleep),
    Case(
        "handler_block_after_await",
        True,
        "requests",
        "handler, after an await",
        get("/after-await"),
        _requests,
    ),
    Case(
        "handler_spawned_task",
        True,
        "time.sleep",
        "task spawned by the handler",
        get("/spawn") + "await asyncio.sleep(work.SLEEP_S * 2)\n",
        _sleep,
    ),
]
