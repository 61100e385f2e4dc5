"""What `--noblock-all` costs a whole suite of small tests, start-up included.

A generated project shaped like a FastAPI app's own suite: half the tests are `async def`
tests making one request through `httpx.AsyncClient` over `ASGITransport` (FastAPI's
async-testing recipe), half are sync tests on a module-level `TestClient(app)` (its docs'
first recipe). pytest runs the same suite, one process per run, with and without
`--noblock-all`, the order flipping every round so that a drift in machine speed hits both
sides alike. The cost is the median over the rounds of (with / without - 1) of the whole
run's wall time: what the user waits for, plugin import and per-test set-up included.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness import project, tools

TESTS = 1000
ROUNDS = 5
FILES = 10
TARGET = 0.05

APP = '''"""The suite's app: a few trivial routes."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/items/{item_id}")
async def read_item(item_id: int) -> dict[str, int]:
    return {"item_id": item_id}


@app.get("/health")
def health() -> dict[str, bool]:
    return {"ok": True}
'''

TEST_HEADER = '''"""Generated: small tests, as a FastAPI app's suite has them by the hundred."""

import httpx
from fastapi.testclient import TestClient

from app import app

client = TestClient(app)
'''

ASYNC_TEST = """

async def test_async_{number}() -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as api:
        response = await api.get("/items/{number}")
    assert response.json() == {{"item_id": {number}}}
"""

SYNC_TEST = """

def test_sync_{number}() -> None:
    response = client.get("/health")
    assert response.json() == {{"ok": True}}
"""


@dataclass(frozen=True)
class SuiteCost:
    tests: int
    watched_s: tuple[float, ...]
    plain_s: tuple[float, ...]
    failed_runs: int

    @property
    def ratios(self) -> tuple[float, ...]:
        return tuple(
            watched / plain - 1 for watched, plain in zip(self.watched_s, self.plain_s, strict=True)
        )

    @property
    def cost(self) -> float:
        return float(statistics.median(self.ratios))

    @property
    def per_test_ms(self) -> float:
        """The median extra wall time per test, start-up spread over the suite."""
        extra = [
            watched - plain for watched, plain in zip(self.watched_s, self.plain_s, strict=True)
        ]
        return float(statistics.median(extra)) * 1000 / self.tests

    @property
    def met(self) -> bool:
        return self.failed_runs == 0 and self.cost <= TARGET


def write_project(root: Path, tests: int = TESTS) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text(project.INI)
    (root / "conftest.py").write_text('"""The suite needs no fixtures of its own."""\n')
    (root / "app.py").write_text(APP)
    files = min(FILES, tests)
    for index in range(files):
        numbers = range(index, tests, files)
        body = "".join(
            (ASYNC_TEST if number % 2 == 0 else SYNC_TEST).format(number=number)
            for number in numbers
        )
        (root / f"test_suite_{index:02d}.py").write_text(TEST_HEADER + body)


def _run(root: Path, scratch: Path, watched: bool) -> tuple[float, int]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        *[arg for name in tools.NOBLOCK.disable for arg in ("-p", f"no:{name}")],
        *(["--noblock-all"] if watched else []),
    ]
    started = time.perf_counter()
    done = subprocess.run(
        command,
        cwd=root,
        env=project.environment(scratch),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
        preexec_fn=project.prioritised,
    )
    return time.perf_counter() - started, done.returncode


def run(
    workdir: Path,
    scratch: Path,
    log: Callable[[str], None],
    rounds: int = ROUNDS,
    tests: int = TESTS,
) -> SuiteCost:
    root = workdir / "suite-cost"
    write_project(root, tests)
    log(f"suite cost: {tests} small tests, with and without --noblock-all, {rounds} rounds")
    _run(root, scratch, watched=False)  # warm-up: bytecode caches, the page cache
    watched: list[float] = []
    plain: list[float] = []
    failed = 0
    for number in range(rounds):
        for side in (True, False) if number % 2 == 0 else (False, True):
            seconds, returncode = _run(root, scratch, watched=side)
            (watched if side else plain).append(seconds)
            failed += returncode != 0
        log(f"  round {number + 1}: {watched[-1]:.2f} s watched, {plain[-1]:.2f} s plain")
    return SuiteCost(tests, tuple(watched), tuple(plain), failed)


def console(cost: SuiteCost) -> str:
    return (
        f"suite of {cost.tests} small tests, --noblock-all vs without: {_pct(cost.cost)} wall "
        f"(median of {len(cost.ratios)} rounds; {cost.per_test_ms:.2f} ms per test)"
    )


def markdown(cost: SuiteCost) -> str:
    per_round = ", ".join(_pct(ratio) for ratio in cost.ratios)
    lines = [
        "## Cost on a suite of small tests",
        "",
        f"A generated suite of {cost.tests} small tests (half `async def` with `httpx.AsyncClient`"
        " over `ASGITransport`, half sync with a module-level `TestClient(app)`), each run a "
        "pytest process of its own, with and without `--noblock-all`, the order flipping every "
        f"round. Target: at most {TARGET * 100:.0f}% wall.",
        "",
        f"- wall, median of {len(cost.ratios)} rounds: **{_pct(cost.cost)}** "
        f"({'met' if cost.met else 'missed'}); per round {per_round}",
        f"- runs: {_seconds(cost.watched_s)} with `--noblock-all`, {_seconds(cost.plain_s)} "
        f"without; {cost.per_test_ms:.2f} ms more per test (median)",
    ]
    if cost.failed_runs:
        lines.append(f"- {cost.failed_runs} runs did not pass: the figures are not comparable")
    return "\n".join(lines) + "\n"


def _pct(value: float) -> str:
    return f"{value * 100:+.1f}%"


def _seconds(values: tuple[float, ...]) -> str:
    return ", ".join(f"{value:.2f} s" for value in values)


def to_json(cost: SuiteCost) -> dict[str, object]:
    return {
        "tests": cost.tests,
        "watched_s": list(cost.watched_s),
        "plain_s": list(cost.plain_s),
        "ratios": list(cost.ratios),
        "cost": cost.cost,
        "per_test_ms": cost.per_test_ms,
        "failed_runs": cost.failed_runs,
        "target": TARGET,
        "met": cost.met,
    }
