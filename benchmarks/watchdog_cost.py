"""What the watchdog thread costs a busy loop, beside the rest of the marker's work.

One pytest process runs the same test (100 requests through `httpx.ASGITransport` to a
trivial FastAPI route, timed inside the test body) in four kinds, interleaved and in an order
that flips every round, so that a drift in machine speed hits every kind alike:

- unmarked: the baseline;
- marked: `@pytest.mark.noblock` as users get it;
- marked, no looks: the watchdog thread is started and stopped but never wakes up to look;
- marked, no thread: no watchdog thread at all (the CPU-time alarm still samples).

Each kind's figure is its median per request over the rounds, printed as a ratio to the
unmarked one. The difference between "no looks" and "marked" is what the watchdog's looks
cost; between "no thread" and "no looks", what starting its thread costs inside the test.

    python benchmarks/watchdog_cost.py [--rounds 100] [--requests 100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

KINDS = ("unmarked", "marked", "marked, no looks", "marked, no thread")

TEST_MODULE = """
import gc
import json
import os
import time

import httpx
import pytest
from fastapi import FastAPI

app = FastAPI()


@app.get("/ping")
async def ping():
    return {"ok": True}


KINDS = json.loads(os.environ["WATCHDOG_COST_KINDS"])
ROUNDS = int(os.environ["WATCHDOG_COST_ROUNDS"])
REQUESTS = int(os.environ["WATCHDOG_COST_REQUESTS"])
PARAMS = [
    pytest.param(kind, marks=[pytest.mark.noblock] if kind != "unmarked" else [])
    for index in range(ROUNDS)
    for kind in (KINDS if index % 2 == 0 else KINDS[::-1])
]


@pytest.mark.parametrize("kind", PARAMS)
async def test_requests(kind, timings):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        await client.get("/ping")
        gc.collect()
        started = time.perf_counter()
        for _ in range(REQUESTS):
            await client.get("/ping")
        timings.setdefault(kind, []).append((time.perf_counter() - started) / REQUESTS)
"""

CONFTEST = """
import json
import os

import pytest

from pytest_noblock import background, watchdog

TIMINGS = {}


@pytest.fixture
def timings():
    return TIMINGS


@pytest.fixture(autouse=True)
def kind_of_watch(request, monkeypatch):
    kind = request.node.callspec.params["kind"]
    if kind == "marked, no looks":
        start = watchdog.Watchdog.start

        def start_never_looking(self, *args):
            self._look_after_s = self._tick_s = 1000.0
            start(self, *args)

        monkeypatch.setattr(watchdog.Watchdog, "start", start_never_looking)
    elif kind == "marked, no thread":
        monkeypatch.setattr(background, "start", lambda run: None)


def pytest_sessionfinish(session):
    with open(os.environ["WATCHDOG_COST_OUT"], "w") as file:
        json.dump(TIMINGS, file)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="watchdog-cost-") as temp:
        root = Path(temp)
        (root / "pytest.ini").write_text(
            "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        )
        (root / "conftest.py").write_text(CONFTEST)
        (root / "test_watchdog_cost.py").write_text(TEST_MODULE)
        out = root / "timings.json"
        env = dict(
            os.environ,
            WATCHDOG_COST_KINDS=json.dumps(KINDS),
            WATCHDOG_COST_ROUNDS=str(args.rounds),
            WATCHDOG_COST_REQUESTS=str(args.requests),
            WATCHDOG_COST_OUT=str(out),
        )
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
        ]
        run = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
        if run.returncode != 0 or not out.exists():
            print(run.stdout[-3000:], run.stderr[-3000:], sep="\n")
            return 1
        timings = json.loads(out.read_text())
    medians = {kind: sorted(timings[kind])[len(timings[kind]) // 2] for kind in KINDS}
    base = medians["unmarked"]
    print(f"{args.rounds} rounds of {args.requests} requests per kind, medians per request:")
    for kind in KINDS:
        print(
            f"  {kind:20s} {medians[kind] * 1e6:7.1f} us  {(medians[kind] / base - 1) * 100:+6.1f}%"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
