"""What the marker costs: trivial requests with and without it, and an empty marked test.

Everything runs in one pytest process, marked and unmarked tests interleaved (the order
flips every pair, so a drift in machine speed hits both sides alike). The requests are
timed inside the test body (wall, and the process's CPU from getrusage, which includes the
watchdog thread),
after a `gc.collect()` so that a collection owed by earlier tests does not land in one side;
one round is 2000 requests each way, and the ratio reported is the median over the
rounds. The fixed cost is the whole test's wall time, setup to report, of an empty test.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.project import INI

BATCH = 100
PAIRS = 20
ROUNDS = 11
FIXED_PAIRS = 300

TEST_MODULE = f'''"""Overhead of @pytest.mark.noblock: identical tests, with and without it."""

import gc
import resource
import time

import httpx
import pytest
from fastapi import FastAPI

app = FastAPI()


@app.get("/ping")
async def ping() -> dict[str, bool]:
    return {{"ok": True}}


def interleaved(pairs: int) -> list[object]:
    params = []
    for index in range(pairs):
        for marked in (True, False) if index % 2 == 0 else (False, True):
            params.append(
                pytest.param(
                    index,
                    marked,
                    marks=[pytest.mark.noblock] if marked else [],
                    id=f"{{index:04d}}-{{'marked' if marked else 'plain'}}",
                )
            )
    return params


def process_cpu() -> float:
    # getrusage, not time.process_time(): the latter reads low while a process-wide
    # ITIMER_VIRTUAL is armed (pytest-noblock arms one in marked tests).
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def timed_requests(count: int) -> tuple[float, float]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        assert (await client.get("/ping")).status_code == 200
        gc.collect()  # so that a full collection left over by an earlier test lands in neither
        wall, cpu = time.perf_counter(), process_cpu()
        for _ in range(count):
            response = await client.get("/ping")
            assert response.status_code == 200
        return time.perf_counter() - wall, process_cpu() - cpu


async def test_a_warm_up() -> None:
    await timed_requests({BATCH})


@pytest.mark.parametrize(("index", "marked"), interleaved({ROUNDS * PAIRS}))
async def test_b_requests(index: int, marked: bool, bench_record) -> None:
    wall, cpu = await timed_requests({BATCH})
    bench_record(kind="requests", round=index // {PAIRS}, marked=marked, wall=wall, cpu=cpu)


@pytest.mark.bench_fixed_cost
@pytest.mark.parametrize(("index", "marked"), interleaved({FIXED_PAIRS}))
async def test_c_empty(index: int, marked: bool) -> None:
    pass
'''


@dataclass(frozen=True)
class Overhead:
    requests_each: int
    rounds: int
    wall_marked_s: float
    wall_plain_s: float
    cpu_marked_s: float
    cpu_plain_s: float
    wall_overheads: tuple[float, ...]
    cpu_overheads: tuple[float, ...]
    fixed_marked_ms: float
    fixed_plain_ms: float
    fixed_pairs: int

    @property
    def wall_overhead(self) -> float:
        return float(statistics.median(self.wall_overheads))

    @property
    def cpu_overhead(self) -> float:
        return float(statistics.median(self.cpu_overheads))

    @property
    def fixed_cost_ms(self) -> float:
        return self.fixed_marked_ms - self.fixed_plain_ms


def write_project(root: Path, source: str = TEST_MODULE) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text(INI)
    (root / "conftest.py").write_text('"""Overhead runs: nothing to set up."""\n')
    (root / "test_overhead.py").write_text(source)


def read_timings(path: Path) -> Overhead | None:
    if not path.exists():
        return None
    records: list[dict[str, Any]] = [
        json.loads(line) for line in path.read_text().splitlines() if line.strip()
    ]
    requests = [record for record in records if record.get("kind") == "requests"]
    fixed = [record for record in records if record.get("fixed")]
    if not requests or not fixed:
        return None
    rounds = sorted({int(record["round"]) for record in requests})

    def total(marked: bool, key: str, only: int | None = None) -> float:
        return float(
            sum(
                record[key]
                for record in requests
                if record["marked"] is marked and (only is None or record["round"] == only)
            )
        )

    def ratios(key: str) -> tuple[float, ...]:
        return tuple(total(True, key, number) / total(False, key, number) - 1 for number in rounds)

    def median_ms(marked: bool) -> float:
        return float(
            statistics.median(record["wall"] for record in fixed if record["marked"] is marked)
        )

    return Overhead(
        requests_each=BATCH * PAIRS,
        rounds=len(rounds),
        wall_marked_s=total(True, "wall"),
        wall_plain_s=total(False, "wall"),
        cpu_marked_s=total(True, "cpu"),
        cpu_plain_s=total(False, "cpu"),
        wall_overheads=ratios("wall"),
        cpu_overheads=ratios("cpu"),
        fixed_marked_ms=median_ms(True) * 1000,
        fixed_plain_ms=median_ms(False) * 1000,
        fixed_pairs=sum(1 for record in fixed if record["marked"]),
    )
