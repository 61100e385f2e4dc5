"""Fast blocking calls in `async def` code, and clean look-alikes (see the package docstring)."""

from __future__ import annotations

import asyncio
import http.client
import logging
import os
import queue
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
from time import sleep as pause
from typing import Annotated, Any

import anyio
import httpcore  # noqa: F401  (httpx imports it at the first client: import it up front)
import httpx
import requests
from fastapi import Depends, FastAPI
from fastapi.concurrency import run_in_threadpool

from corpus import Case, get, work

SSL_CONTEXT = httpx.create_ssl_context()
LOG = logging.getLogger("corpus.strict")
LOG.addHandler(logging.StreamHandler(sys.stderr))
LOG.propagate = False

app = FastAPI()
LOCK = threading.Lock()


def fast_url() -> str:
    return work.slow_url(0)


def _write_small_file() -> str:
    path = os.path.join(work.scratch_dir(), "strict-small.txt")
    with open(path, "w") as out:
        out.write("payload\n")
    return path


SMALL_FILE = _write_small_file()  # at import: the handlers only read it


# --- fast blocking calls ---------------------------------------------------------------


@app.get("/sleep")
async def tiny_sleep() -> dict[str, Any]:
    time.sleep(0.001)  # BLOCKS: strict_time_sleep
    return {}


@app.get("/alias-sleep")
async def alias_sleep() -> dict[str, Any]:
    pause(0.001)  # BLOCKS: strict_alias_sleep
    return {}


@app.get("/requests")
async def fast_requests() -> dict[str, Any]:
    upstream = requests.get(fast_url(), timeout=5)  # BLOCKS: strict_requests
    return {"upstream": upstream.json()}


@app.get("/requests-swallowed")
async def requests_swallowed() -> dict[str, Any]:
    try:
        upstream = requests.get(fast_url(), timeout=5).json()  # BLOCKS: strict_swallowed
    except Exception:
        upstream = None  # a broad except: a tool that raises inside the app is hidden here
    return {"upstream": upstream}


@app.get("/urllib")
async def fast_urllib() -> dict[str, Any]:
    with urllib.request.urlopen(fast_url(), timeout=5) as response:  # BLOCKS: strict_urllib
        return {"size": len(response.read())}


@app.get("/http-client")
async def fast_http_client() -> dict[str, Any]:
    host, port = work.upstream_address()
    connection = http.client.HTTPConnection(host, port, timeout=5)
    connection.request("GET", "/slow?ms=0")  # BLOCKS: strict_http_client
    connection.getresponse().read()
    connection.close()
    return {}


@app.get("/socket")
async def fast_socket() -> dict[str, Any]:
    sock = socket.create_connection(work.upstream_address(), timeout=5)  # BLOCKS: strict_socket
    sock.close()
    return {}


@app.get("/open")
async def open_small_file() -> dict[str, Any]:
    with open(SMALL_FILE) as f:  # BLOCKS: strict_open
        data = f.read()  # BLOCKS: strict_open
    return {"size": len(data)}


@app.get("/listdir")
async def listdir() -> dict[str, Any]:
    return {"files": len(os.listdir(work.scratch_dir()))}  # BLOCKS: strict_listdir


@app.get("/sqlite")
async def sqlite_memory() -> dict[str, Any]:
    db = sqlite3.connect(":memory:")  # BLOCKS: strict_sqlite
    db.close()
    return {}


@app.get("/subprocess")
async def run_true() -> dict[str, Any]:
    subprocess.run(["true"], check=True)  # BLOCKS: strict_subprocess
    return {}


@app.get("/queue")
async def queue_get() -> dict[str, Any]:
    jobs: queue.Queue[int] = queue.Queue()
    jobs.put(1)
    return {"job": jobs.get()}  # BLOCKS: strict_queue_get


@app.get("/lock")
async def module_lock() -> dict[str, Any]:
    with LOCK:  # BLOCKS: strict_module_lock
        return {"locked": True}


def read_config() -> dict[str, str]:
    with open(SMALL_FILE) as f:  # BLOCKS: strict_dependency
        text = f.read()  # BLOCKS: strict_dependency
    return {"config": text.strip()}


async def config_dependency() -> dict[str, str]:
    return read_config()


@app.get("/dependency")
async def with_dependency(
    config: Annotated[dict[str, str], Depends(config_dependency)],
) -> dict[str, Any]:
    return config


# --- clean look-alikes -----------------------------------------------------------------


@app.get("/def-sleep")
def def_sleep() -> dict[str, Any]:
    time.sleep(0.001)
    return {}


@app.get("/threadpool-requests")
async def threadpool_requests() -> dict[str, Any]:
    upstream = await run_in_threadpool(requests.get, fast_url(), timeout=5)
    return {"upstream": upstream.json()}


def read_small() -> str:
    with open(SMALL_FILE) as f:
        return f.read()


@app.get("/to-thread-open")
async def to_thread_open() -> dict[str, Any]:
    return {"size": len(await anyio.to_thread.run_sync(read_small))}


@app.get("/httpx-async")
async def httpx_async() -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5, verify=SSL_CONTEXT) as client:
        response = await client.get(fast_url())
    return {"upstream": response.json()}


@app.get("/asyncio-subprocess")
async def asyncio_subprocess() -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec("true")
    return {"code": await process.wait()}


@app.get("/asyncio-sleep")
async def asyncio_sleep() -> dict[str, Any]:
    await asyncio.sleep(0.001)
    return {}


@app.get("/lazy-import")
async def lazy_import() -> dict[str, Any]:
    from corpus.strict import lazy_module

    return {"value": lazy_module.VALUE}


@app.get("/log-and-format")
async def log_and_format() -> dict[str, Any]:
    LOG.warning("upstream answered late")
    try:
        raise ValueError("bad input")
    except ValueError:
        text = traceback.format_exc()
    return {"lines": len(text.splitlines())}


@app.get("/thread-start")
async def thread_start() -> dict[str, Any]:
    worker = threading.Thread(target=time.sleep, args=(0.001,), daemon=True)
    worker.start()
    return {}


def _fast(name: str, kind: str, path: str, where: str = "async def handler") -> Case:
    return Case(name, True, kind, where, get(path), probe=lambda: None)


def _clean(name: str, kind: str, path: str, where: str = "async def handler") -> Case:
    return Case(name, False, kind, where, get(path))


CASES = [
    _fast("strict_time_sleep", "time.sleep(1 ms)", "/sleep"),
    _fast("strict_alias_sleep", "sleep bound by `from time import`", "/alias-sleep"),
    _fast("strict_requests", "requests.get, local upstream", "/requests"),
    _fast("strict_swallowed", "requests.get under a broad except", "/requests-swallowed"),
    _fast("strict_urllib", "urllib.request.urlopen, local upstream", "/urllib"),
    _fast("strict_http_client", "http.client request, local upstream", "/http-client"),
    _fast("strict_socket", "socket.create_connection, local", "/socket"),
    _fast("strict_open", "open() and read of a small file", "/open"),
    _fast("strict_listdir", "os.listdir", "/listdir"),
    _fast("strict_sqlite", "sqlite3.connect(':memory:')", "/sqlite"),
    _fast("strict_subprocess", "subprocess.run(['true'])", "/subprocess"),
    _fast("strict_queue_get", "queue.Queue.get", "/queue"),
    _fast("strict_module_lock", "`with LOCK:` on a module-level lock", "/lock"),
    _fast("strict_dependency", "open() in a helper", "/dependency", "async def dependency"),
    _clean("clean_strict_def_sleep", "time.sleep in a `def` endpoint", "/def-sleep", "def"),
    _clean("clean_strict_threadpool", "requests.get in the thread pool", "/threadpool-requests"),
    _clean("clean_strict_to_thread", "open() in anyio.to_thread", "/to-thread-open"),
    _clean("clean_strict_httpx_async", "httpx.AsyncClient", "/httpx-async"),
    _clean("clean_strict_asyncio_subprocess", "asyncio subprocess", "/asyncio-subprocess"),
    _clean("clean_strict_asyncio_sleep", "asyncio.sleep", "/asyncio-sleep"),
    _clean("clean_strict_lazy_import", "a first import in a handler", "/lazy-import"),
    _clean("clean_strict_log_format", "logging and traceback.format_exc", "/log-and-format"),
    _clean("clean_strict_thread_start", "starting a thread", "/thread-start"),
]
