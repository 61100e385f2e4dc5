"""What watching costs on uvloop, beside asyncio's own loop with the same plugin on.

One process, one app (FastAPI, a trivial route), the same requests through
`httpx.ASGITransport` on each loop: back-to-back, then concurrently (`asyncio.gather`), in
rounds whose order rotates so that a drift in machine speed hits every column alike. Each
column is the median over the rounds of the process's CPU time per request (getrusage: the
watchdog thread's work counts, a busy machine's waits do not), wall time beside it:

- asyncio / asyncio+noblock: the step clock patching `Handle._run` (what runs today);
- uvloop / uvloop+noblock: the task factory of `pytest_noblock.adapters.uvloop`;
- uvloop debug: uvloop's own debug mode (`loop.set_debug(True)`), plugin off: the other
  route issue 11 names; it keeps a stack for every handle it creates.

    python benchmarks/uvloop_cost.py [--requests 1000] [--rounds 9]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import resource
import statistics
import time
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import uvloop
from fastapi import FastAPI

from pytest_noblock import steps, tracking
from pytest_noblock.settings import Settings
from pytest_noblock.watch import LoopWatch, wrap_test

app = FastAPI()


@app.get("/ping")
async def ping() -> dict[str, bool]:
    return {"ok": True}


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def requests(count: int) -> tuple[float, float]:
    """CPU and wall seconds per request: half back-to-back, half 50 at a time."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        assert (await client.get("/ping")).status_code == 200
        gc.collect()
        started, cpu = time.perf_counter(), process_cpu()
        for _ in range(count // 2):
            assert (await client.get("/ping")).status_code == 200
        for _ in range(count // 100):
            answers = await asyncio.gather(*(client.get("/ping") for _ in range(50)))
            assert all(answer.status_code == 200 for answer in answers)
        return (process_cpu() - cpu) / count, (time.perf_counter() - started) / count


def run(
    new_loop: Callable[[], asyncio.AbstractEventLoop], watched: bool, debug: bool, count: int
) -> tuple[float, float]:
    loop = new_loop()
    loop.set_debug(debug)
    if debug:
        loop.slow_callback_duration = 0.05
    body: Callable[[], Coroutine[Any, Any, tuple[float, float]]] = lambda: requests(count)  # noqa: E731
    try:
        if not watched:
            return loop.run_until_complete(body())
        steps.install()
        tracking.install()
        watch = LoopWatch(Settings(budget_ms=50, count_test_code=False), cpu_alarm=False)
        try:
            result: tuple[float, float] = loop.run_until_complete(wrap_test(body, watch, [])())
        finally:
            steps.uninstall()
            tracking.uninstall()
        assert not watch.findings().failing
        return result
    finally:
        loop.close()


COLUMNS: dict[str, tuple[Callable[[], asyncio.AbstractEventLoop], bool, bool]] = {
    "asyncio": (asyncio.new_event_loop, False, False),
    "asyncio+noblock": (asyncio.new_event_loop, True, False),
    "uvloop": (uvloop.new_event_loop, False, False),
    "uvloop+noblock": (uvloop.new_event_loop, True, False),
    "uvloop debug": (uvloop.new_event_loop, False, True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=9)
    options = parser.parse_args()
    # Debug mode logs every slow step (the concurrent batches): not what is measured.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    names = list(COLUMNS)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for _ in range(2):  # warm-up: imports, FastAPI's lazily built state
        for name in names:
            run(*COLUMNS[name], count=100)
    for round_ in range(options.rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            times[name].append(run(*COLUMNS[name], count=options.requests))
    cpu = {name: statistics.median(each[0] for each in values) for name, values in times.items()}
    wall = {name: statistics.median(each[1] for each in values) for name, values in times.items()}
    print(f"{options.requests} requests x {options.rounds} rounds, median per request:")
    for name in names:
        print(f"  {name:<16} {cpu[name] * 1e6:8.1f} us CPU  {wall[name] * 1e6:8.1f} us wall")
    print("cost of the watch, CPU (wall), watched / plain on the same loop:")
    for loop in ("asyncio", "uvloop"):
        watched = f"{loop}+noblock"
        print(f"  {loop:<8} {cpu[watched] / cpu[loop]:.2f}x ({wall[watched] / wall[loop]:.2f}x)")
    debug = "uvloop debug"
    print(
        f"  uvloop debug mode, no plugin: {cpu[debug] / cpu['uvloop']:.2f}x "
        f"({wall[debug] / wall['uvloop']:.2f}x)"
    )
    print(
        "uvloop+noblock / asyncio+noblock: "
        f"{cpu['uvloop+noblock'] / cpu['asyncio+noblock']:.2f}x "
        f"({wall['uvloop+noblock'] / wall['asyncio+noblock']:.2f}x)"
    )


if __name__ == "__main__":
    main()
