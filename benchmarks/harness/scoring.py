"""From raw findings to the numbers the benchmark reports, per case, per tool and in total."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from corpus import Case

from harness.overhead import Overhead
from harness.tools import Finding, Tool

NO_RESULT = Finding(blocked=False, problem="no result (test not run or not reported)")

# Targets (issue 3; the cost figures, issue 13).
DETECTION_TARGET = 1.0
EXACT_SITE_TARGET = 0.95
DURATION_ABS_MS = 2.0
DURATION_REL = 0.05
WALL_OVERHEAD_TARGET = 0.015
FIXED_COST_TARGET_MS = 0.15
CLEAN_REQUESTS_TARGET = 2000


@dataclass(frozen=True)
class Probe:
    true_ms: float
    true_wall_ms: float
    held_ms: tuple[float, ...]
    in_place_ms: float | None = None


def read_probes(path: Path) -> dict[str, Probe]:
    probes: dict[str, Probe] = {}
    if not path.exists():
        return probes
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            probes[record["case"]] = Probe(
                record["true_ms"],
                record["true_wall_ms"],
                tuple(record["held_ms"]),
                record.get("in_place_ms"),
            )
    return probes


def tolerance_ms(true_ms: float) -> float:
    return DURATION_ABS_MS + DURATION_REL * true_ms


def duration_ok(reported_ms: float, true_ms: float) -> bool:
    return abs(reported_ms - true_ms) <= tolerance_ms(true_ms)


@dataclass
class ToolScore:
    """One tool's results over the whole corpus."""

    tool: Tool
    installed: bool
    detect: dict[str, Finding] = field(default_factory=dict)
    clean: dict[tuple[str, int], Finding] = field(default_factory=dict)
    seconds: float = 0.0
    logs: list[str] = field(default_factory=list)

    def finding(self, case: Case) -> Finding:
        return self.detect.get(case.name, NO_RESULT)

    def detected(self, case: Case) -> bool:
        return self.finding(case).blocked

    def exact(self, case: Case) -> bool:
        found = self.finding(case)
        return bool(
            found.blocked and found.path and found.line and case.matches(found.path, found.line)
        )

    def clean_runs(self, case: Case, repeat: int) -> list[Finding]:
        return [self.clean.get((case.name, rep), NO_RESULT) for rep in range(repeat)]


@dataclass
class Totals:
    blocking: int
    detected: int
    exact: int
    clean_tests: int
    false_alarms: int
    clean_errors: int
    detect_errors: int

    @property
    def detection(self) -> float:
        return self.detected / self.blocking if self.blocking else 0.0

    @property
    def exact_rate(self) -> float:
        return self.exact / self.blocking if self.blocking else 0.0


def totals(
    score: ToolScore, blocking: Sequence[Case], clean: Sequence[Case], repeat: int
) -> Totals:
    runs = [run for case in clean for run in score.clean_runs(case, repeat)]
    return Totals(
        blocking=len(blocking),
        detected=sum(score.detected(case) for case in blocking),
        exact=sum(score.exact(case) for case in blocking),
        clean_tests=len(runs),
        false_alarms=sum(run.blocked for run in runs),
        clean_errors=sum(run.problem is not None for run in runs),
        detect_errors=sum(score.finding(case).problem is not None for case in blocking),
    )


@dataclass(frozen=True)
class Duration:
    """A reported hold beside two measures of the truth.

    `true_ms` is the blocking call alone, off the loop, right after the test (the probe).
    `in_place_ms` is the longest loop step of the case's own test, timed around asyncio's
    `Handle._run` by the harness (CPU waits taken out the same way). The step is what
    the loop was held for:
    a probe misses what the same call costs inside a request (a C encoder working on a
    heap the app has churned runs measurably slower there), so when both exist the step
    is the reference.
    """

    case: str
    reported_ms: float
    true_ms: float
    true_wall_ms: float
    spread_ms: float
    in_place_ms: float | None = None

    @property
    def reference_ms(self) -> float:
        return self.in_place_ms if self.in_place_ms is not None else self.true_ms

    @property
    def error_ms(self) -> float:
        return self.reported_ms - self.reference_ms

    @property
    def probe_error_ms(self) -> float:
        return self.reported_ms - self.true_ms

    @property
    def reliable(self) -> bool:
        """Whether the true hold itself reproduces within the tolerance (its 3 runs agree).

        When the blocking call alone varies more than that from run to run (a machine
        busy with other work, fresh memory from the hypervisor), no reported figure can
        be judged against it, and the case is left out of the duration target.
        """
        return self.spread_ms <= tolerance_ms(self.true_ms)

    @property
    def ok(self) -> bool:
        return duration_ok(self.reported_ms, self.reference_ms)


def durations(
    score: ToolScore, blocking: Sequence[Case], probes: dict[str, Probe]
) -> list[Duration]:
    found = []
    for case in blocking:
        finding = score.finding(case)
        probe = probes.get(case.name)
        if finding.blocked and finding.ms is not None and probe is not None:
            spread = max(probe.held_ms) - min(probe.held_ms)
            found.append(
                Duration(
                    case.name,
                    finding.ms,
                    probe.true_ms,
                    probe.true_wall_ms,
                    spread,
                    probe.in_place_ms,
                )
            )
    return found


@dataclass
class Benchmark:
    """Everything one run measured."""

    cases: list[Case]
    scores: list[ToolScore]
    probes: dict[str, Probe]
    overhead: Overhead | None
    repeat: int
    detect_budget_ms: float
    clean_budget_ms: float
    burner: bool
    seconds: float = 0.0
    machine: dict[str, str] = field(default_factory=dict)

    @property
    def blocking(self) -> list[Case]:
        return [case for case in self.cases if case.blocking]

    @property
    def clean(self) -> list[Case]:
        return [case for case in self.cases if not case.blocking]

    @property
    def clean_requests(self) -> int:
        return sum(case.requests for case in self.clean) * self.repeat

    def totals(self, score: ToolScore) -> Totals:
        return totals(score, self.blocking, self.clean, self.repeat)

    @property
    def ours(self) -> ToolScore:
        return self.scores[0]

    def durations(self) -> list[Duration]:
        return durations(self.ours, self.blocking, self.probes)
