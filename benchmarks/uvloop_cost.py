"""What watching costs on uvloop, beside asyncio's own loop with the same plugin on.

One process, one app (FastAPI, a trivial route), the same requests through
`httpx.ASGITransport` on each loop: back-to-back, then concurrently (`asyncio.gather`), in
rounds whose order rotates so that a drift in machine speed hits every column alike. Each
column is the median over the rounds of the wall time per request:

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


async def requests(count: int) -> float:
    """Seconds per request: half back-to-back, half 50 at a time."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        assert (await client.get("/ping")).status_code == 200
        gc.collect()
        started = time.perf_counter()
        for _ in range(count // 2):
            assert (await client.get("/ping")).status_code == 200
        for _ in range(count // 100):
            answers = await asyncio.gather(*(client.get("/ping") for _ in range(50)))
            assert all(answer.status_code == 200 for answer in answers)
        return (time.perf_counter() - started) / count


def run(
    new_loop: Callable[[], asyncio.AbstractEventLoop], watched: bool, debug: bool, count: int
) -> float:
    loop = new_loop()
    loop.set_debug(debug)
    if debug:
        loop.slow_callback_duration = 0.05
    body: Callable[[], Coroutine[Any, Any, float]] = lambda: requests(count)  # noqa: E731
    try:
        if not watched:
            return loop.run_until_complete(body())
        steps.install()
        tracking.install()
        watch = LoopWatch(Settings(budget_ms=50, count_test_code=False), cpu_alarm=False)
        try:
            result: float = loop.run_until_complete(wrap_test(body, watch, [])())
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
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(2):  # warm-up: imports, FastAPI's lazily built state
        for name in names:
            run(*COLUMNS[name], count=100)
    for round_ in range(options.rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            times[name].append(run(*COLUMNS[name], count=options.requests))
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"{options.requests} requests x {options.rounds} rounds, median per request:")
    for name in names:
        print(f"  {name:<16} {median[name] * 1e6:8.1f} us")
    print("cost of the watch (watched / plain, same loop):")
    print(f"  asyncio  {median['asyncio+noblock'] / median['asyncio']:.2f}x")
    print(f"  uvloop   {median['uvloop+noblock'] / median['uvloop']:.2f}x")
    print(f"  uvloop debug mode, no plugin: {median['uvloop debug'] / median['uvloop']:.2f}x")
    print(
        "uvloop+noblock / asyncio+noblock: "
        f"{median['uvloop+noblock'] / median['asyncio+noblock']:.2f}x"
    )


if __name__ == "__main__":
    main()
