"""Run the pytest-noblock benchmark: the labelled corpus through pytest-noblock and its peers.

    python benchmarks/run.py                      # everything; rewrites benchmarks/RESULTS.md
    python benchmarks/run.py --cases handler_time_sleep,clean_def_sleep --no-peers \\
        --repeat 1 --no-burner --no-overhead --no-results --json out.json

Phases: (1) every blocking case once per tool at a 50 ms budget, with our plugin's run also
timing each case's blocking call alone (its true hold); (2) every clean case `--repeat`
times per tool at a 20 ms budget while a second process burns the other core; (3) the
marker's overhead. Then one table, on the console and in RESULTS.md. After them, in
sections of their own: the strict group (fast blocking calls) and the drivers group (the
same phases with the app driven by TestClient, on trio and uvloop, by schemathesis,
Litestar, Django and Quart), and the cost of `--noblock-all`
on a generated suite of 1000 small tests.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.metadata
import importlib.util
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from corpus import Case, load_cases, work  # noqa: E402
from corpus.drivers import load_driver_cases  # noqa: E402
from harness import (  # noqa: E402
    drivers_group,
    import_cost,
    overhead,
    project,
    report,
    strict_group,
    suite_cost,
    tools,
)
from harness.scoring import Benchmark, ToolScore, read_probes  # noqa: E402

RESULTS = BENCH_DIR / "RESULTS.md"
DRIVERS_REPEAT = 20


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument(
        "--tools",
        help="comma-separated tools (default: all installed): "
        + ",".join(tool.key for tool in tools.ALL),
    )
    parser.add_argument("--no-peers", action="store_true", help="pytest-noblock only")
    parser.add_argument("--repeat", type=int, default=20, help="runs of each clean case (20)")
    parser.add_argument("--no-burner", action="store_true", help="leave the other core idle")
    parser.add_argument("--no-overhead", action="store_true", help="skip the overhead phase")
    parser.add_argument(
        "--strict",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the strict group (fast blocking calls); default: on unless --cases is given",
    )
    parser.add_argument(
        "--strict-repeat", type=int, default=5, help="runs of each strict clean case"
    )
    parser.add_argument(
        "--drivers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the drivers group (TestClient, trio, uvloop, schemathesis, Litestar, Django, "
        "Quart cases); default: on unless --cases is "
        "given (naming a drivers case runs it)",
    )
    parser.add_argument(
        "--drivers-repeat",
        type=int,
        default=DRIVERS_REPEAT,
        help=f"runs of each drivers clean case ({DRIVERS_REPEAT})",
    )
    parser.add_argument(
        "--suite-cost",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="time a generated suite of 1000 small tests with and without --noblock-all; "
        "default: on unless --cases is given",
    )
    parser.add_argument(
        "--suite-cost-rounds",
        type=int,
        default=suite_cost.ROUNDS,
        help=f"rounds of the suite-cost phase ({suite_cost.ROUNDS})",
    )
    parser.add_argument(
        "--suite-cost-tests",
        type=int,
        default=suite_cost.TESTS,
        help=f"tests in the suite-cost phase's suite ({suite_cost.TESTS})",
    )
    parser.add_argument(
        "--import-cost",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="time a run of one trivial test with and without the plugin (what installing it "
        "costs a run that watches nothing); default: on unless --cases is given",
    )
    parser.add_argument(
        "--import-cost-rounds",
        type=int,
        default=import_cost.ROUNDS,
        help=f"rounds of the import-cost phase ({import_cost.ROUNDS})",
    )
    parser.add_argument("--detect-budget-ms", type=float, default=50.0)
    parser.add_argument("--clean-budget-ms", type=float, default=20.0)
    parser.add_argument("--results", default=str(RESULTS), help="where to write RESULTS.md")
    parser.add_argument("--no-results", action="store_true", help="do not write RESULTS.md")
    parser.add_argument("--json", help="also write the results as JSON to this file")
    parser.add_argument("--keep", action="store_true", help="keep the generated projects")
    parser.add_argument(
        "--nice",
        type=int,
        help="run the benchmark's processes (pytest, burner, upstream) at this niceness, e.g. "
        "-10 (root) to keep other work on the machine from skewing the timings",
    )
    args = parser.parse_args(argv)
    counts = (
        args.repeat,
        args.drivers_repeat,
        args.suite_cost_rounds,
        args.suite_cost_tests,
        args.import_cost_rounds,
    )
    if min(counts) < 1:
        parser.error(
            "--repeat, --drivers-repeat, --suite-cost-rounds, --suite-cost-tests and "
            "--import-cost-rounds must be at least 1"
        )
    return args


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def chosen_tools(args: argparse.Namespace) -> list[tools.Tool]:
    if args.no_peers:
        return [tools.NOBLOCK]
    if not args.tools:
        return list(tools.ALL)
    keys = [key.strip() for key in args.tools.split(",") if key.strip()]
    unknown = [key for key in keys if key not in tools.BY_KEY]
    if unknown:
        raise SystemExit(f"unknown tool(s): {', '.join(unknown)}")
    if "noblock" not in keys:
        keys.insert(0, "noblock")
    return [tools.BY_KEY[key] for key in keys]


def installed(tool: tools.Tool) -> bool:
    return tool.module is None or importlib.util.find_spec(tool.module) is not None


@contextlib.contextmanager
def burner(enabled: bool) -> Iterator[int | None]:
    """Another process spinning on one core (the last one) for the length of the block."""
    if not enabled:
        yield None
        return
    process = subprocess.Popen(
        [sys.executable, "-c", "while True: pass"], preexec_fn=project.prioritised
    )
    pid = process.pid
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(pid, {max(os.sched_getaffinity(0))})
    log(f"  burner started (pid {pid})")
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGTERM)
        process.wait(timeout=10)
        log(f"  burner pid {pid} stopped")


@contextlib.contextmanager
def upstream() -> Iterator[str]:
    """The slow HTTP upstream, in a process of its own, for the whole benchmark."""
    process = subprocess.Popen(
        [sys.executable, "-m", "corpus.slowserver"],
        cwd=BENCH_DIR,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=project.prioritised,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError("the slow upstream did not start")
        os.environ[work.SLOW_URL_ENV] = url
        yield url
    finally:
        os.environ.pop(work.SLOW_URL_ENV, None)
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def run_phase(
    phase: str,
    tool: tools.Tool,
    cases: Sequence[Case],
    budget_ms: float,
    repeat: int,
    workdir: Path,
    scratch: Path,
    extra: Sequence[str] = (),
) -> project.Run:
    root = workdir / f"{phase}-{tool.key}"
    project.write_project(root, tool, cases, budget_ms, repeat)
    run = project.run_pytest(root, tool, scratch, [*extra])
    log(
        f"  {phase:6} {tool.title:22} {len(cases) * repeat:4} tests  "
        f"{run.seconds:6.1f} s  (pytest exit {run.returncode})"
    )
    if not run.findings:
        log(f"    no results: see {run.log}")
    return run


def machine_info(load_before: tuple[float, float, float], nice: int | None) -> dict[str, str]:
    info = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"
        + (f" ({_cpu_model()})" if _cpu_model() else ""),
        "python": platform.python_version(),
        "pytest-noblock": _version("pytest-noblock") + _git_state(),
    }
    peers = [
        f"{name} {_version(name)}"
        for name in ("pyleak", "blockbuster", "fastapi-loopguard")
        if _version(name) != "not installed"
    ]
    if peers:
        info["peers"] = ", ".join(peers)
    now = os.getloadavg()
    info["load average (1/5/15 min)"] = (
        f"{load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f} at the start, "
        f"{now[0]:.2f}/{now[1]:.2f}/{now[2]:.2f} at the end (other work on the machine adds noise)"
    )
    if nice is not None:
        info["priority"] = (
            f"benchmark processes (pytest, burner, upstream) ran at niceness {nice}, ahead of "
            "the other work on the machine"
        )
    info["date"] = time.strftime("%Y-%m-%d %H:%M %Z")
    return info


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return ""


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git_state() -> str:
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=BENCH_DIR,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "pytest_noblock"],
            cwd=BENCH_DIR.parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""
    return f" (git {revision}{', plugin has uncommitted changes' if dirty else ''})"


def to_json(bench: Benchmark) -> dict[str, object]:
    def finding(found: tools.Finding) -> dict[str, object]:
        return dataclasses.asdict(found)

    per_tool: dict[str, object] = {}
    for score in bench.scores:
        total = bench.totals(score)
        per_tool[score.tool.key] = {
            "installed": score.installed,
            "totals": {
                **dataclasses.asdict(total),
                "detection": total.detection,
                "exact_rate": total.exact_rate,
            },
            "blocking": {
                case.name: {
                    **finding(score.finding(case)),
                    "exact": score.exact(case),
                }
                for case in bench.blocking
            },
            "clean": {
                case.name: [finding(run) for run in score.clean_runs(case, bench.repeat)]
                for case in bench.clean
            },
        }
    return {
        "machine": bench.machine,
        "seconds": bench.seconds,
        "repeat": bench.repeat,
        "burner": bench.burner,
        "clean_requests": bench.clean_requests,
        "labels": {case.name: case.label_text() for case in bench.blocking},
        "tools": per_tool,
        "durations": [
            {**dataclasses.asdict(item), "ok": item.ok, "reliable": item.reliable}
            for item in bench.durations()
        ],
        "overhead": (
            {
                **dataclasses.asdict(bench.overhead),
                "wall_overhead": bench.overhead.wall_overhead,
                "cpu_overhead": bench.overhead.cpu_overhead,
                "fixed_cost_ms": bench.overhead.fixed_cost_ms,
            }
            if bench.overhead is not None
            else None
        ),
        "targets": [list(row) for row in report.targets(bench)],
    }


def select_cases(names: list[str] | None, drivers: bool | None) -> tuple[list[Case], list[Case]]:
    """The timing corpus's cases and the drivers group's to run.

    Without names: all of both (the drivers group unless `--no-drivers`). With names: the
    named ones from either corpus, and the whole drivers group too with `--drivers`.
    """
    everything = load_driver_cases()
    if names is None:
        return load_cases(), everything if drivers is not False else []
    by_name = {case.name: case for case in everything}
    named = [by_name[name] for name in names if name in by_name]
    main_names = [name for name in names if name not in by_name]
    if drivers and not named:
        named = everything
    return load_cases(main_names), named if drivers is not False else []


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    project.set_niceness(args.nice)
    started = time.perf_counter()
    load_before = os.getloadavg()
    names = [name.strip() for name in args.cases.split(",")] if args.cases else None
    cases, driver_cases = select_cases(names, args.drivers)
    blocking = [case for case in cases if case.blocking]
    clean = [case for case in cases if not case.blocking]
    scores = [ToolScore(tool, installed(tool)) for tool in chosen_tools(args)]
    for score in scores:
        if not score.installed:
            log(f"  {score.tool.title} is not installed: skipped (benchmarks/requirements.txt)")
    active = [score for score in scores if score.installed]

    workdir = Path(tempfile.mkdtemp(prefix="noblock-bench-"))
    shm = Path("/dev/shm")
    scratch = Path(tempfile.mkdtemp(prefix="noblock-bench-", dir=shm if shm.is_dir() else None))
    probes_file = workdir / "probes.jsonl"
    timings_file = workdir / "timings.jsonl"
    bench_overhead = None
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, scratch, ignore_errors=True)
        if args.keep:
            cleanup.callback(log, f"generated projects kept in {workdir}")
        else:
            cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        cleanup.enter_context(upstream())
        if blocking:
            log(f"blocking cases: {len(blocking)}, budget {args.detect_budget_ms:g} ms")
            for score in active:
                extra = ["--bench-probes", str(probes_file)] if score is scores[0] else []
                run = run_phase(
                    "detect",
                    score.tool,
                    blocking,
                    args.detect_budget_ms,
                    1,
                    workdir,
                    scratch,
                    extra,
                )
                score.detect = {case: found for (case, _), found in run.findings.items()}
                score.seconds += run.seconds
                score.logs.append(str(run.log))
        if clean:
            log(
                f"clean cases: {len(clean)} x {args.repeat}, budget {args.clean_budget_ms:g} ms, "
                + ("other core busy" if not args.no_burner else "no burner")
            )
            with burner(not args.no_burner):
                for score in active:
                    run = run_phase(
                        "clean",
                        score.tool,
                        clean,
                        args.clean_budget_ms,
                        args.repeat,
                        workdir,
                        scratch,
                    )
                    score.clean = run.findings
                    score.seconds += run.seconds
                    score.logs.append(str(run.log))
        if not args.no_overhead:
            log("overhead of the marker")
            root = workdir / "overhead"
            overhead.write_project(root)
            run = project.run_pytest(
                root, tools.NOBLOCK, scratch, ["--bench-timings", str(timings_file)]
            )
            log(f"  overhead {run.seconds:.1f} s (pytest exit {run.returncode})")
            bench_overhead = overhead.read_timings(timings_file)
            if bench_overhead is None:
                log(f"    no timings: see {run.log}")
        group = None
        if args.strict if args.strict is not None else not args.cases:
            group = strict_group.run(
                not args.no_peers,
                installed,
                args.strict_repeat,
                workdir,
                scratch,
                log,
                run_overhead=not args.no_overhead,
            )
            group.seconds = sum(score.seconds for score in group.scores)
        drivers = None
        if driver_cases:
            drivers = drivers_group.run(
                chosen_tools(args),
                installed,
                driver_cases,
                args.drivers_repeat,
                args.detect_budget_ms,
                args.clean_budget_ms,
                lambda: burner(not args.no_burner),
                not args.no_burner,
                workdir,
                scratch,
                log,
            )
        suite = None
        if args.suite_cost if args.suite_cost is not None else not args.cases:
            suite = suite_cost.run(
                workdir, scratch, log, args.suite_cost_rounds, args.suite_cost_tests
            )
        imports = None
        if args.import_cost if args.import_cost is not None else not args.cases:
            imports = import_cost.run(workdir, scratch, log, args.import_cost_rounds)
        bench = Benchmark(
            cases=[*blocking, *clean],
            scores=scores,
            probes=read_probes(probes_file),
            overhead=bench_overhead,
            repeat=args.repeat,
            detect_budget_ms=args.detect_budget_ms,
            clean_budget_ms=args.clean_budget_ms,
            burner=not args.no_burner,
        )
        bench.seconds = time.perf_counter() - started
        bench.machine = machine_info(load_before, args.nice)
        if bench.cases:
            print(report.console(bench))
        if group is not None:
            print(strict_group.console(group))
        if drivers is not None:
            print(drivers_group.console(drivers))
        if suite is not None:
            print(suite_cost.console(suite))
        if imports is not None:
            print(import_cost.console(imports))
        if not args.no_results:
            command = "python benchmarks/run.py" + (
                " " + shlex.join(argv if argv is not None else sys.argv[1:])
                if (argv if argv is not None else sys.argv[1:])
                else ""
            )
            text = report.markdown(bench, command) if bench.cases else report.header(command)
            if group is not None:
                text += "\n" + strict_group.markdown(group)
            if drivers is not None:
                text += "\n" + drivers_group.markdown(drivers)
            if suite is not None:
                text += "\n" + suite_cost.markdown(suite)
            if imports is not None:
                text += "\n" + import_cost.markdown(imports)
            Path(args.results).write_text(text)
            log(f"wrote {args.results}")
        if args.json:
            data = to_json(bench)
            if group is not None:
                data["strict"] = strict_group.to_json(group)
            if drivers is not None:
                data["drivers"] = drivers_group.to_json(drivers)
            if suite is not None:
                data["suite_cost"] = suite_cost.to_json(suite)
            if imports is not None:
                data["import_cost"] = import_cost.to_json(imports)
            Path(args.json).write_text(json.dumps(data, indent=2))
        log(f"done in {bench.seconds:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
