"""The drivers group: the app driven by each client and loop of `corpus.drivers`.

Same phases as the timing benchmark: blocking cases once per tool at the detection budget
(pytest-noblock's run also timing each case's blocking call alone), clean cases `repeat`
times per tool at the clean budget with the CPU burner on. A tool that cannot run a driver
at all (`tools.cannot_run`) is not run on it: its cells read "n/a", not "missed", and the
report says why. Totals are kept per driver, apart from the asyncio table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from corpus import Case
from corpus.drivers import DRIVERS, missing_drivers

from harness import project, tools
from harness.report import (
    _pct,
    _table,
    clean_cell,
    duration_table,
    verdict_cell,
    verdict_misses,
)
from harness.scoring import Probe, ToolScore, durations, read_probes, totals

# Runs of each clean case the false-alarm rule asks for (the timing benchmark's default).
FALSE_ALARM_RUNS = 20
TITLES = {
    "testclient": "TestClient (sync test)",
    "trio": "trio (anyio plugin)",
    "uvloop": "uvloop (pytest-asyncio)",
    "schemathesis": "schemathesis `case.call()` (sync test)",
    "litestar": "Litestar `TestClient` (sync test)",
    "django": "Django `AsyncClient`",
    "quart": "Quart `test_client()`",
}


@dataclass
class DriversGroup:
    cases: list[Case]
    scores: list[ToolScore]
    repeat: int
    detect_budget_ms: float
    clean_budget_ms: float
    burner: bool
    probes: dict[str, Probe] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def drivers(self) -> list[str]:
        return [driver for driver in TITLES if any(case.driver == driver for case in self.cases)]

    def blocking(self, driver: str | None = None) -> list[Case]:
        return [c for c in self.cases if c.blocking and driver in (None, c.driver)]

    def clean(self, driver: str | None = None) -> list[Case]:
        return [c for c in self.cases if not c.blocking and driver in (None, c.driver)]

    @property
    def ours(self) -> ToolScore:
        return self.scores[0]


def run(
    chosen: Sequence[tools.Tool],
    installed: Callable[[tools.Tool], bool],
    cases: Sequence[Case],
    repeat: int,
    detect_budget_ms: float,
    clean_budget_ms: float,
    burner: Callable[[], AbstractContextManager[object]],
    burner_on: bool,
    workdir: Path,
    scratch: Path,
    log: Callable[[str], None],
) -> DriversGroup:
    for driver in missing_drivers():
        package = DRIVERS[driver]
        log(f"  {package} is not installed: {driver} cases skipped (benchmarks/requirements.txt)")
    scores = [ToolScore(tool, installed(tool)) for tool in chosen]
    group = DriversGroup(list(cases), scores, repeat, detect_budget_ms, clean_budget_ms, burner_on)
    log(
        f"drivers group ({', '.join(group.drivers)}): {len(group.blocking())} blocking cases at "
        f"{detect_budget_ms:g} ms, {len(group.clean())} clean x {repeat} at {clean_budget_ms:g} ms"
    )
    probes_file = workdir / "drivers-probes.jsonl"

    def runnable(score: ToolScore, phase_cases: list[Case]) -> list[Case]:
        return [case for case in phase_cases if tools.cannot_run(score.tool, case.driver) is None]

    def phase(
        name: str, score: ToolScore, phase_cases: list[Case], budget: float, times: int
    ) -> project.Run:
        root = workdir / f"{name}-{score.tool.key}"
        project.write_project(root, score.tool, phase_cases, budget, times, project.DRIVERS_INI)
        extra = (
            ["--bench-probes", str(probes_file)]
            if name == "drivers-detect" and score is group.ours
            else []
        )
        result = project.run_pytest(root, score.tool, scratch, extra)
        log(
            f"  {name:14} {score.tool.title:22} {len(phase_cases) * times:4} tests  "
            f"{result.seconds:6.1f} s  (pytest exit {result.returncode})"
        )
        if not result.findings:
            log(f"    no results: see {result.log}")
        score.seconds += result.seconds
        score.logs.append(str(result.log))
        return result

    active = [score for score in scores if score.installed]
    for score in scores:
        if not score.installed:
            log(f"  {score.tool.title} is not installed: skipped")
        elif not runnable(score, group.cases):
            log(f"  {score.tool.title} cannot run any of these drivers: n/a")
    for score in active:
        cases_here = runnable(score, group.blocking())
        if cases_here:
            result = phase("drivers-detect", score, cases_here, detect_budget_ms, 1)
            score.detect = {case: found for (case, _), found in result.findings.items()}
    with burner():
        for score in active:
            cases_here = runnable(score, group.clean())
            if cases_here:
                score.clean = phase(
                    "drivers-clean", score, cases_here, clean_budget_ms, repeat
                ).findings
    group.probes = read_probes(probes_file)
    group.seconds = sum(score.seconds for score in scores)
    return group


def _na(score: ToolScore, driver: str) -> str | None:
    if not score.installed:
        return "not installed"
    return "n/a" if tools.cannot_run(score.tool, driver) is not None else None


def totals_rows(group: DriversGroup) -> list[list[str]]:
    rows = []
    for driver in group.drivers:
        blocking, clean = group.blocking(driver), group.clean(driver)
        for score in group.scores:
            na = _na(score, driver)
            if na is not None:
                rows.append([TITLES[driver], score.tool.title, na, "", "", ""])
                continue
            total = totals(score, blocking, clean, group.repeat)
            site = f"{total.exact}/{total.blocking} ({_pct(total.exact_rate)})" if blocking else "-"
            if not score.tool.reports_site:
                site = "no location reported"
            rows.append(
                [
                    TITLES[driver],
                    score.tool.title,
                    f"{total.detected}/{total.blocking} ({_pct(total.detection)})"
                    if blocking
                    else "-",
                    site,
                    f"{total.false_alarms}/{total.clean_tests}",
                    str(total.clean_errors + total.detect_errors),
                ]
            )
    return rows


HOW = (
    (
        "noblock",
        "- pytest-noblock: the same marker; a TestClient, Litestar `TestClient` or "
        "schemathesis test needs nothing else (the plugin watches the portal loops the marked "
        "test's requests run on), a trio or uvloop test uses `noblock_client`, a Django or "
        "Quart test its framework's own client.",
    ),
    (
        "pyleak",
        "- pyleak (trio): the same marker; on trio its detector pings the loop through trio's "
        "token instead of asyncio's `call_soon_threadsafe`.",
    ),
    (
        "blockbuster",
        "- blockbuster (TestClient): the same autouse fixture; its wrappers fire in the portal "
        "thread, where TestClient's loop runs, and the `BlockingError` reaches the test as "
        "TestClient re-raises the app's exception.",
    ),
    (
        "asyncio-debug",
        "- asyncio debug mode (TestClient): the sync test runs under an event-loop policy whose "
        "loops are in debug mode with `slow_callback_duration` = the budget (what "
        "`PYTHONASYNCIODEBUG=1` does, with the budget), so TestClient's portal loop is watched.",
    ),
)

HEADER = ["driver", "tool", "detection", "exact site", "false alarms (clean tests)", "errors"]


def console(group: DriversGroup) -> str:
    title = f"drivers group ({', '.join(group.drivers)}):"
    return "\n".join([title, *_table(HEADER, totals_rows(group))])


def markdown(group: DriversGroup) -> str:
    titles = [score.tool.title for score in group.scores]
    out = [
        "## Drivers group: TestClient, trio, uvloop, schemathesis, Litestar, Django, Quart",
        "",
        "The same kinds of blocking and clean cases (`benchmarks/corpus/drivers`), with the app "
        "driven the other ways pytest-noblock supports: a sync test "
        "`with TestClient(app) as client: client.get(...)` (two cases build a bare "
        "`TestClient(app)` instead: a portal and a loop per request), where the app runs on a "
        "loop in TestClient's portal thread; an `async def` test on trio through anyio's "
        'plugin (`@pytest.mark.anyio`, `anyio_backend` = `"trio"`) with the tool\'s '
        "`httpx.AsyncClient` over `ASGITransport`; the same test on pytest-asyncio with "
        "uvloop's `EventLoopPolicy` (`event_loop_policy` fixture); a sync test calling "
        "schemathesis's `case.call()` (`from_asgi`: the app runs on schemathesis's loop "
        "thread); a sync test with Litestar's `TestClient`; an `async def` test with Django's "
        "`AsyncClient` (async views); an `async def` test with Quart's `app.test_client()`. "
        "The FastAPI app uses anyio only. "
        f"Blocking cases run once per tool at a {group.detect_budget_ms:g} ms budget; clean "
        f"cases {group.repeat} times per tool at a {group.clean_budget_ms:g} ms budget, "
        + (
            "while another process burns the other core"
            if group.burner
            else "**without** the CPU burner"
        )
        + f" ({group.seconds:.0f} s of pytest)"
        + (
            f"; {group.repeat} runs of each clean case is fewer than the {FALSE_ALARM_RUNS} the "
            "false-alarm rule asks for (`--drivers-repeat`): read its false alarms as a sample"
            if group.repeat < FALSE_ALARM_RUNS
            else ""
        )
        + ". Totals are per driver and kept out of the asyncio table above, so that one stays "
        "comparable with past runs.",
        "",
        *_table(HEADER, totals_rows(group)),
        "",
    ]
    keys = {score.tool.key for score in group.scores}
    notes = [note for key, note in HOW if key in keys]
    out += ["How the tools run here:", "", *notes, ""]
    reasons = [
        f"- {score.tool.title} on {TITLES[driver]}: {reason}."
        for driver in group.drivers
        for score in group.scores
        if (reason := tools.cannot_run(score.tool, driver)) is not None
    ]
    if reasons:
        out += [
            "**n/a**: the tool cannot run a test driven this way at all, so it is not run on "
            "it, and it counts neither as a miss nor as a clean pass:",
            "",
            *reasons,
            "",
        ]

    def verdict(score: ToolScore, case: Case) -> str:
        return _na(score, case.driver) or verdict_cell(score, case)

    def clean(score: ToolScore, case: Case) -> str:
        return _na(score, case.driver) or clean_cell(score, case, group.repeat)

    out += ["### Blocking cases", ""]
    rows = [
        [
            case.name,
            case.driver,
            case.kind,
            case.where,
            case.label_text(),
            *[verdict(score, case) for score in group.scores],
        ]
        for case in group.blocking()
    ]
    out += _table(["case", "driver", "blocks on", "where", "label", *titles], rows)
    out += ["", "### Clean cases (false alarms / runs)", ""]
    rows = [
        [
            case.name,
            case.driver,
            case.kind,
            case.where,
            str(case.requests),
            *[clean(score, case) for score in group.scores],
        ]
        for case in group.clean()
    ]
    out += _table(["case", "driver", "what", "where", "requests", *titles], rows)
    out += ["", *_durations(group), *_misses(group)]
    return "\n".join(out) + "\n"


def _durations(group: DriversGroup) -> list[str]:
    found = durations(group.ours, group.blocking(), group.probes)
    if not found:
        return []
    return [
        "### Duration: reported hold vs true hold (pytest-noblock)",
        "",
        "Measured as for the asyncio cases: against the longest loop step in place where the "
        "loop is asyncio's (TestClient's and Litestar's portal loops, schemathesis's loop "
        "thread, Django's and Quart's test loops), else (trio, uvloop) against the blocking "
        "call alone, right after its test.",
        "",
        *duration_table(found),
        "",
    ]


def _misses(group: DriversGroup) -> list[str]:
    lines = verdict_misses(group.ours, group.blocking(), group.clean(), group.repeat)
    return ["### pytest-noblock misses (drivers group)", "", *(lines or ["None."]), ""]


def to_json(group: DriversGroup) -> dict[str, object]:
    out: dict[str, object] = {}
    for score in group.scores:
        if not score.installed:
            continue
        out[score.tool.key] = {
            "cannot_run": {
                driver: reason
                for driver in group.drivers
                if (reason := tools.cannot_run(score.tool, driver)) is not None
            },
            "blocking": {
                case.name: {**asdict(score.finding(case)), "exact": score.exact(case)}
                for case in group.blocking()
                if tools.cannot_run(score.tool, case.driver) is None
            },
            "clean": {
                case.name: [asdict(run) for run in score.clean_runs(case, group.repeat)]
                for case in group.clean()
                if tools.cannot_run(score.tool, case.driver) is None
            },
        }
    out["labels"] = {case.name: case.label_text() for case in group.blocking()}
    out["durations"] = [
        {**asdict(item), "ok": item.ok, "reliable": item.reliable}
        for item in durations(group.ours, group.blocking(), group.probes)
    ]
    out["repeat"] = group.repeat
    return out
