"""What the corpus apps block on: sizes, a slow upstream's address, slow files, payloads.

Sizes are picked so that each blocking call holds the loop for roughly 150-250 ms on a
small machine (at least 3x the 50 ms budget); the benchmark measures each one's real
duration anyway (the case's probe), so nothing here has to be exact.
"""

from __future__ import annotations

import functools
import os
import tempfile
import threading
import time
from typing import Any

SLEEP_S = 0.2
SHORT_SLEEP_S = 0.08
CLEAN_WAIT_S = 0.06
CLEAN_DELAY_MS = 60
CLEAN_CPU_N = 1_500_000
TINY_SLEEP_S = 0.01
UPSTREAM_DELAY_MS = 200
LOCK_HOLD_S = 0.2
SUBPROCESS_ARGS = ("sleep", "0.2")
CPU_LOOP_N = 5_000_000
FIB_N = 31
REGEX = r"(a+)+$"
REGEX_INPUT = "a" * 23 + "b"
PBKDF2_ROUNDS = 800_000
SQL_SLOW = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 900000) "
    "SELECT sum(x) FROM c"
)
SQL_MEDIUM = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000) "
    "SELECT sum(x) FROM c"
)
BIG_WRITE_BYTES = 192 << 20
SINK_BYTES = 1 << 20
SINK_CHUNK = 64 << 10
SINK_PAUSE_S = 0.0125
SINK_DATA = b"r" * SINK_BYTES
SLOW_URL_ENV = "BENCH_SLOW_URL"
SCRATCH_ENV = "BENCH_SCRATCH"


def slow_url(delay_ms: int = UPSTREAM_DELAY_MS) -> str:
    """The local slow upstream (started by the benchmark), answering after `delay_ms`."""
    return f"{os.environ[SLOW_URL_ENV].rstrip('/')}/slow?ms={delay_ms}"


def upstream_address() -> tuple[str, int]:
    host, _, port = os.environ[SLOW_URL_ENV].removeprefix("http://").rstrip("/").partition(":")
    return host, int(port)


@functools.cache
def big_doc() -> list[dict[str, Any]]:
    """A document whose `json.dumps` takes a few hundred ms (built once, at import)."""
    return [
        {"id": i, "name": f"user{i}", "tags": ["a", "b", "c"], "score": i * 1.5, "ok": True}
        for i in range(150_000)
    ]


@functools.cache
def zlib_payload() -> bytes:
    """Eight MiB of incompressible bytes: `zlib.compress(..., 9)` works hard on them."""
    return os.urandom(1 << 20) * 8


@functools.cache
def big_bytes() -> bytes:
    """A large buffer, every page touched up front so a write only pays for the write."""
    return b"\x01" * BIG_WRITE_BYTES


@functools.cache
def scratch_dir() -> str:
    """A directory for the apps' files; the runner hands one in and deletes it afterwards."""
    path = os.environ.get(SCRATCH_ENV) or os.path.join(
        tempfile.gettempdir(), f"noblock-bench-{os.getpid()}"
    )
    os.makedirs(path, exist_ok=True)
    return path


def fresh_file(stem: str) -> str:
    """A path for a new file in the scratch directory (never an existing one: overwriting
    a large file first frees its pages, which would add a varying cost to the write)."""
    return os.path.join(scratch_dir(), f"{stem}-{os.getpid()}-{time.perf_counter_ns()}.bin")


def clear_scratch_files() -> None:
    """Delete the large files the apps wrote (the benchmark calls this between tests)."""
    if not os.environ.get(SCRATCH_ENV) and not scratch_dir.cache_info().currsize:
        return  # nothing was written: do not create a scratch directory just to empty it
    with os.scandir(scratch_dir()) as entries:
        for entry in entries:
            if entry.name.endswith(".bin"):
                os.unlink(entry.path)


def slow_fifo(delay_s: float = SLEEP_S) -> str:
    """A file that takes `delay_s` to open, like one on a sluggish network share.

    It is a named pipe whose writer (a thread started here) opens it only after
    `delay_s`, so the reader's `open()` waits that long in the kernel.
    """
    path = os.path.join(scratch_dir(), f"fifo-{threading.get_ident()}-{time.perf_counter_ns()}")
    os.mkfifo(path)

    def write_later() -> None:
        time.sleep(delay_s)
        with open(path, "w") as pipe:
            pipe.write("payload\n")
        os.unlink(path)

    threading.Thread(target=write_later, daemon=True).start()
    return path


def slow_sink() -> str:
    """A file that takes about 200 ms to take a `SINK_BYTES` write, like one on a slow disk.

    It is a named pipe that a thread (started here) drains `SINK_CHUNK` bytes at a time,
    pausing between reads, so a writer waits in the kernel while the pipe is full.
    """
    path = os.path.join(scratch_dir(), f"sink-{threading.get_ident()}-{time.perf_counter_ns()}")
    os.mkfifo(path)

    def drain() -> None:
        with open(path, "rb", buffering=0) as pipe:
            while pipe.read(SINK_CHUNK):
                time.sleep(SINK_PAUSE_S)
        os.unlink(path)

    threading.Thread(target=drain, daemon=True).start()
    return path


def hold_lock_in_thread(lock: threading.Lock, hold_s: float = LOCK_HOLD_S) -> None:
    """Another thread takes `lock` and keeps it for `hold_s`; returns once it has it."""
    taken = threading.Event()

    def hold() -> None:
        with lock:
            taken.set()
            time.sleep(hold_s)

    threading.Thread(target=hold, daemon=True).start()
    taken.wait()


def produce_later(queue: Any, item: object, delay_s: float = LOCK_HOLD_S) -> None:
    """A producer thread puts `item` on `queue` after `delay_s`."""

    def produce() -> None:
        time.sleep(delay_s)
        queue.put(item)

    threading.Thread(target=produce, daemon=True).start()
