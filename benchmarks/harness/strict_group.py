"""The strict group: fast blocking calls and clean look-alikes (corpus.strict).

Every blocking case here returns in about a millisecond, so a timing detector cannot see
it: the group compares the detectors of known blocking calls (pytest-noblock's
`strict=True`, blockbuster), with pytest-noblock's plain marker alongside to show the gap.
Blocking cases run once per tool, clean cases `repeat` times, all at a 50 ms budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from corpus import Case
from corpus.strict import load_strict_cases

from harness import overhead, project, tools
from harness.report import _pct, _table, clean_cell, verdict_cell
from harness.scoring import ToolScore

BUDGET_MS = 50.0


@dataclass
class StrictGroup:
    cases: list[Case]
    scores: list[ToolScore]
    repeat: int
    seconds: float = 0.0
    logs: list[str] = field(default_factory=list)
    # What strict mode adds to the plain marker ("marked" = strict, "plain" = the marker).
    overhead: overhead.Overhead | None = None

    @property
    def blocking(self) -> list[Case]:
        return [case for case in self.cases if case.blocking]

    @property
    def clean(self) -> list[Case]:
        return [case for case in self.cases if not case.blocking]


def run(
    peers: bool,
    installed: Callable[[tools.Tool], bool],
    repeat: int,
    workdir: Path,
    scratch: Path,
    log: Callable[[str], None],
    run_overhead: bool = True,
) -> StrictGroup:
    cases = load_strict_cases()
    chosen = [tools.NOBLOCK_STRICT, tools.NOBLOCK] + ([tools.BLOCKBUSTER] if peers else [])
    scores = [ToolScore(tool, installed(tool)) for tool in chosen]
    group = StrictGroup(cases, scores, repeat)
    log(
        f"strict group: {len(group.blocking)} fast blocking cases, "
        f"{len(group.clean)} clean x {repeat}"
    )
    for score in scores:
        if not score.installed:
            log(f"  {score.tool.title} is not installed: skipped")
            continue
        for phase, phase_cases, times in (
            ("strict-detect", group.blocking, 1),
            ("strict-clean", group.clean, repeat),
        ):
            root = workdir / f"{phase}-{score.tool.key}"
            project.write_project(root, score.tool, phase_cases, BUDGET_MS, times)
            result = project.run_pytest(root, score.tool, scratch)
            log(
                f"  {phase:13} {score.tool.title:22} {len(phase_cases) * times:4} tests  "
                f"{result.seconds:6.1f} s  (pytest exit {result.returncode})"
            )
            if phase == "strict-detect":
                score.detect = {case: found for (case, _), found in result.findings.items()}
            else:
                score.clean = result.findings
            score.seconds += result.seconds
            score.logs.append(str(result.log))
    if run_overhead:
        group.overhead = _overhead(workdir, scratch, log)
    return group


# The overhead project, with strict tests against plain marked ones instead of marked
# against unmarked.
_UNMARKED = "marks=[pytest.mark.noblock] if marked else []"
_STRICT = "marks=[pytest.mark.noblock(strict=marked)]"


def _overhead(workdir: Path, scratch: Path, log: Callable[[str], None]) -> overhead.Overhead | None:
    assert _UNMARKED in overhead.TEST_MODULE
    root = workdir / "strict-overhead"
    overhead.write_project(root, overhead.TEST_MODULE.replace(_UNMARKED, _STRICT))
    timings = workdir / "strict-timings.jsonl"
    result = project.run_pytest(root, tools.NOBLOCK, scratch, ["--bench-timings", str(timings)])
    log(f"  strict overhead {result.seconds:.1f} s (pytest exit {result.returncode})")
    return overhead.read_timings(timings)


def totals_rows(group: StrictGroup) -> list[list[str]]:
    rows = []
    blocking = group.blocking
    for score in group.scores:
        if not score.installed:
            rows.append([score.tool.title, "not installed", "", "", ""])
            continue
        detected = sum(score.detected(case) for case in blocking)
        exact = sum(score.exact(case) for case in blocking)
        runs = [run for case in group.clean for run in score.clean_runs(case, group.repeat)]
        alarms = sum(run.blocked for run in runs)
        errors = sum(score.finding(case).problem is not None for case in blocking) + sum(
            run.problem is not None for run in runs
        )
        total = len(blocking)
        rows.append(
            [
                score.tool.title,
                f"{detected}/{total} ({_pct(detected / total)})" if total else "-",
                f"{exact}/{total} ({_pct(exact / total)})" if total else "-",
                f"{alarms}/{len(runs)}",
                str(errors),
            ]
        )
    return rows


HEADER = ["tool", "detection", "exact site", "false alarms (clean tests)", "errors"]


def console(group: StrictGroup) -> str:
    lines = ["strict group (fast blocking calls):", *_table(HEADER, totals_rows(group))]
    cost = group.overhead
    if cost is not None:
        lines.append(
            f"strict mode over the plain marker, {cost.requests_each} trivial requests: "
            f"wall {cost.wall_overhead * 100:+.1f}%, CPU {cost.cpu_overhead * 100:+.1f}%"
        )
    return "\n".join(lines)


def markdown(group: StrictGroup) -> str:
    titles = [score.tool.title for score in group.scores]
    out = [
        "## Strict group: blocking calls that are fast in tests",
        "",
        "Known blocking calls that return in about a millisecond here (a local upstream that "
        "answers at once, a small file, an in-memory SQLite database, `true`): no timing "
        "budget sees them, yet in production the same lines hold every request. "
        "pytest-noblock with `strict=True` and blockbuster report the calls themselves; "
        "pytest-noblock's plain marker is shown alongside. Clean look-alikes make the same "
        "kinds of calls off the loop, or through asyncio, the import system or logging. "
        f"Blocking cases run once per tool, clean cases {group.repeat} times, at a "
        f"{BUDGET_MS:g} ms budget ({group.seconds:.0f} s).",
        "",
        *_table(HEADER, totals_rows(group)),
        "",
        "### Fast blocking cases",
        "",
    ]
    rows = [
        [
            case.name,
            case.kind,
            case.where,
            case.label_text(),
            *[verdict_cell(score, case) for score in group.scores],
        ]
        for case in group.blocking
    ]
    out += _table(["case", "blocks on", "where", "label", *titles], rows)
    out += ["", "### Clean look-alikes (false alarms / runs)", ""]
    rows = [
        [
            case.name,
            case.kind,
            case.where,
            *[clean_cell(s, case, group.repeat) for s in group.scores],
        ]
        for case in group.clean
    ]
    out += _table(["case", "what", "where", *titles], rows)
    cost = group.overhead
    if cost is not None:
        per_round = ", ".join(f"{value * 100:+.1f}%" for value in cost.wall_overheads)
        out += [
            "",
            "### What strict mode costs",
            "",
            f"{cost.rounds} rounds of {cost.requests_each} trivial requests each way, strict "
            "tests and plain marked tests interleaved in one process (the marker's overhead "
            "set-up above, with `strict=True` against the plain marker). Target: at most +5% "
            "wall.",
            "",
            f"- wall: {cost.wall_marked_s * 1000:.0f} ms strict vs "
            f"{cost.wall_plain_s * 1000:.0f} ms plain: **{cost.wall_overhead * 100:+.1f}%** "
            f"(median; per round {per_round})",
            f"- CPU: {cost.cpu_overhead * 100:+.1f}% (median)",
            f"- fixed cost of an empty strict test over a plain marked one: "
            f"{cost.fixed_cost_ms:.2f} ms (median over {cost.fixed_pairs} pairs)",
        ]
    return "\n".join(out) + "\n"


def to_json(group: StrictGroup) -> dict[str, object]:
    return {
        score.tool.key: {
            "blocking": {
                case.name: {**score.finding(case).__dict__, "exact": score.exact(case)}
                for case in group.blocking
            },
            "clean": {
                case.name: [run.__dict__ for run in score.clean_runs(case, group.repeat)]
                for case in group.clean
            },
        }
        for score in group.scores
        if score.installed
    }
