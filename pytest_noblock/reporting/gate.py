"""The CI gate: what a whole run adds up to, for people (summary, annotations) and machines.

Each test's record is built where the test ran (see `records`) and rides on its call
report, so under pytest-xdist every worker watches its own tests and the controller, which
sees all reports, writes the one summary, the one JSON file and the baseline. Nothing here
runs while a test body runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from ..settings import Settings, ini_flag
from .baseline import BaselineKey, Record, baseline_key, entry_key
from .units import milliseconds

SCHEMA_VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("report.schema.json")
BASELINE_KIND = "pytest-noblock baseline"
DEFAULT_DURATIONS = 10
REPORT_ATTRIBUTE = "noblock_record"
# On the report of a test that asked to be watched and was not: why.
UNWATCHED_ATTRIBUTE = "noblock_unwatched"
"""The attribute of a call report that carries the test's record (serialised by xdist)."""


def add_session_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("noblock")
    group.addoption(
        "--noblock-all",
        dest="noblock_all",
        action="store_true",
        default=None,
        help="watch every async test as if marked; @pytest.mark.noblock(False) opts one out.",
    )
    group.addoption(
        "--noblock-durations",
        dest="noblock_durations",
        default=None,
        metavar="N",
        help=f"show the N longest holds of the run (0 = all; default {DEFAULT_DURATIONS}).",
    )
    group.addoption(
        "--noblock-report",
        dest="noblock_report",
        default=None,
        metavar="PATH",
        help="write a JSON report of every watched test to PATH (schema: report.schema.json).",
    )
    group.addoption(
        "--noblock-baseline",
        dest="noblock_baseline",
        default=None,
        metavar="PATH",
        help="record today's findings in PATH if it does not exist; then fail only on new ones.",
    )
    group.addoption(
        "--noblock-no-annotations",
        dest="noblock_annotations",
        action="store_false",
        default=None,
        help="do not print GitHub Actions ::error annotations (printed when GITHUB_ACTIONS=true).",
    )
    group.addoption(
        "--noblock-require-requests",
        dest="noblock_require_requests",
        action="store_true",
        default=None,
        help="fail the run when no watched test sent a request the plugin saw (a gate that "
        "watched nothing must not pass).",
    )
    parser.addini(
        "noblock_require_requests",
        help="fail the run when no watched test sent a request the plugin saw.",
        type="bool",
        default=False,
    )
    parser.addini(
        "noblock_all",
        help="watch every async test as if marked with @pytest.mark.noblock.",
        type="bool",
        default=False,
    )
    parser.addini(
        "noblock_annotations",
        help="print GitHub Actions annotations when GITHUB_ACTIONS=true (default true).",
        type="bool",
        default=True,
    )


def load_schema() -> Any:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def _durations(value: object) -> int:
    if value is None:
        return DEFAULT_DURATIONS
    try:
        number = int(str(value))
    except ValueError:
        number = -1
    if number < 0:
        raise pytest.UsageError(
            f"noblock: --noblock-durations must be a whole number >= 0, got {value!r}"
        )
    return number


def _load_baseline(path: Path, shown: str) -> list[Record]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("kind") != BASELINE_KIND:
            raise ValueError
        version = data.get("version")
        findings = data["findings"]
        if not isinstance(findings, list) or not all(map(_is_entry, findings)):
            raise ValueError
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        raise pytest.UsageError(
            f"noblock: --noblock-baseline={shown} is not a noblock baseline "
            "(delete it to record a new one)"
        ) from None
    if version != SCHEMA_VERSION:
        raise pytest.UsageError(
            f"noblock: --noblock-baseline={shown} is version {version!r} of the baseline "
            f"format; this pytest-noblock reads version {SCHEMA_VERSION} "
            "(delete it to record a new one)"
        )
    return findings


def _is_entry(entry: object) -> bool:
    """What a finding is matched by (see `baseline.entry_key`): text, or null."""
    return isinstance(entry, dict) and all(
        isinstance(entry.get(key), (str, type(None))) for key in ("function", "source", "handler")
    )


def _output_path(start: Path, option: str, value: str | None) -> Path | None:
    """Where an output goes; a path it plainly cannot go to stops the run before the tests."""
    if value is None:
        return None
    if not value.strip():
        raise pytest.UsageError(f"noblock: {option} needs a file path, got {value!r}")
    path = start / value
    problem = _path_problem(start, path)
    if problem is not None:
        raise pytest.UsageError(f"noblock: {option}={value} cannot be written: {problem}")
    return path


def _path_problem(start: Path, path: Path) -> str | None:
    """What keeps a file from being written at `path`, when the file system shows it."""
    if path.is_dir():
        return "it is a folder"
    for folder in path.parents:
        if folder.exists():
            return None if folder.is_dir() else f"{_shown(start, folder)} is a file, not a folder"
    return None


def _shown(start: Path, path: Path) -> str:
    """`path` as the user would give it: relative to where pytest was started, if under it."""
    try:
        return str(path.relative_to(start))
    except ValueError:
        return str(path)


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "pytest": pytest.__version__}
    for name in ("pytest-noblock", "pytest-asyncio", "anyio", "httpx", "pytest-xdist"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name.replace("-", "_")] = metadata.version(name)
    return versions


def _annotation_text(text: str) -> str:
    # GitHub's workflow commands escape these three in the message.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _annotation_property(text: str) -> str:
    # ... and these two more in a property such as file=.
    return _annotation_text(text).replace(":", "%3A").replace(",", "%2C")


def _noted_warm_up(hold: Record) -> bool:
    return bool(hold.get("warm_up")) and not hold["failing"]


def _noted_lifespan(hold: Record) -> bool:
    return hold["origin"] == "lifespan" and not hold["failing"]


def _site(hold: Record) -> str:
    site = hold.get("call_site")
    if not site:
        return "(call not caught)"
    return f"{site['file']}:{site['line']} in {site['function']}"


class Gate:
    """The run-wide state: options, the baseline, and the records the reports bring in."""

    def __init__(self, config: pytest.Config, defaults: Settings) -> None:
        self.config = config
        self.defaults = defaults
        self.is_worker = hasattr(config, "workerinput")
        cli_all = config.getoption("noblock_all")
        self.watch_all = ini_flag(config, "noblock_all") or bool(cli_all)
        self.durations = _durations(config.getoption("noblock_durations"))
        start = config.invocation_params.dir
        self.report_path = _output_path(
            start, "--noblock-report", config.getoption("noblock_report")
        )
        cli_annotations = config.getoption("noblock_annotations")
        # Read on every run: a bad value says so here, not only on GitHub.
        ini_annotations = ini_flag(config, "noblock_annotations")
        self.annotations = (
            os.environ.get("GITHUB_ACTIONS") == "true"
            and cli_annotations is not False
            and ini_annotations
        )
        baseline = config.getoption("noblock_baseline")
        self.baseline_shown = baseline
        self.baseline_path = _output_path(start, "--noblock-baseline", baseline)
        self.recording = self.baseline_path is not None and not self.baseline_path.exists()
        self.baseline: list[Record] = []
        if self.baseline_path is not None and not self.recording:
            self.baseline = _load_baseline(self.baseline_path, str(baseline))
        self.known: set[BaselineKey] = {entry_key(entry) for entry in self.baseline}
        # One record per test, its last attempt's (pytest-rerunfailures reruns a failed test).
        self.records: dict[str, Record] = {}
        self.reruns: Counter[str] = Counter()
        # Tests that asked to be watched and were not, and why.
        self.unwatched: dict[str, str] = {}
        self.require_requests = bool(config.getoption("noblock_require_requests")) or ini_flag(
            config, "noblock_require_requests"
        )
        self.wrote_baseline: int | None = None
        self.problems: list[str] = []
        # Optional top-level fields of the JSON report, made from the records at the end
        # (the sweep's table).
        self.sections: dict[str, Callable[[Mapping[str, Record]], Record]] = {}

    # --- where a test runs (worker or single process) ---

    def accepts(self, hold: Record) -> bool:
        """Whether a failing hold is in the baseline (or being recorded into one)."""
        return self.recording or baseline_key(hold) in self.known

    # --- on the controller ---

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Every call report, the workers' too under xdist, passes here on the controller.

        An attempt pytest-rerunfailures runs again reports "rerun": it is counted, and its
        record (a failed attempt's) stands until the next attempt brings its own.
        """
        rerun = report.outcome == "rerun"  # type: ignore[comparison-overlap]
        if rerun:
            self.reruns[report.nodeid] += 1
        unwatched = getattr(report, UNWATCHED_ATTRIBUTE, None)
        if isinstance(unwatched, str) and report.when == "call":
            self.unwatched[report.nodeid] = unwatched
        record = getattr(report, REPORT_ATTRIBUTE, None)
        if isinstance(record, dict) and report.when == "call":
            outcome = "failed" if rerun else report.outcome
            # Keyed by the record's own test id: some plugins give tests one node id.
            self.records[str(record.get("nodeid", report.nodeid))] = dict(record, outcome=outcome)

    def _tests(self) -> list[Record]:
        return [
            dict(record, attempts=self.reruns[nodeid] + 1)
            for nodeid, record in sorted(self.records.items())
        ]

    def _holds(self) -> Iterable[tuple[Record, Record]]:
        for record in self.records.values():
            for hold in record["holds"]:
                yield record, hold

    def finish(self) -> bool:
        """Writes the report and the baseline asked for; False when one could not be."""
        if self.is_worker:
            return True
        written = True
        if self.report_path is not None:
            written = self._write("--noblock-report", self.report_path, self.report())
        if self.recording and self.baseline_path is not None:
            findings = self._baseline_entries()
            baseline = {"kind": BASELINE_KIND, "version": SCHEMA_VERSION, "findings": findings}
            if self._write("--noblock-baseline", self.baseline_path, baseline):
                self.wrote_baseline = len(findings)
            else:
                written = False
        return written

    def _write(self, option: str, path: Path, data: Record) -> bool:
        # The tests have run: a bad path is told in one line, not an internal error.
        start = self.config.invocation_params.dir
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        except OSError as error:
            why = _path_problem(start, path) or error.strerror or str(error)
            self.problems.append(f"noblock: could not write {option}={_shown(start, path)}: {why}")
            return False
        return True

    def _baseline_entries(self) -> list[Record]:
        entries: dict[BaselineKey, Record] = {}
        for record, hold in self._holds():
            if not hold["failing"]:
                continue
            site = hold.get("call_site") or {}
            entries.setdefault(
                baseline_key(hold),
                {
                    "function": site.get("function"),
                    "source": site.get("source"),
                    "handler": hold.get("handler"),
                    # For people reading the file; matching ignores them.
                    "file": site.get("file"),
                    "line": site.get("line"),
                    "test": record["nodeid"],
                },
            )
        return sorted(entries.values(), key=lambda e: (str(e["file"]), e["line"] or 0))

    def gone(self) -> list[Record]:
        seen = {baseline_key(hold) for _, hold in self._holds() if hold["failing"]}
        return [entry for entry in self.baseline if entry_key(entry) not in seen]

    def report(self) -> Record:
        return {
            "schema_version": SCHEMA_VERSION,
            "settings": {
                "budget_ms": self.defaults.budget_ms,
                "count_test_code": self.defaults.count_test_code,
                "count_lifespan": self.defaults.count_lifespan,
                "count_warmup": self.defaults.count_warmup,
                "noblock_all": self.watch_all,
                "baseline": self.baseline_shown,
                "argv": [str(arg) for arg in self.config.invocation_params.args],
            },
            "versions": _versions(),
            "platform": sys.platform,
            "summary": self._counts(),
            "tests": self._tests(),
            "unwatched": [
                {"nodeid": nodeid, "why": why} for nodeid, why in sorted(self.unwatched.items())
            ],
            "baseline_gone": self.gone() if self.baseline_path and not self.recording else [],
            **{name: make(self.records) for name, make in self.sections.items()},
        }

    def _counts(self) -> dict[str, int]:
        holds = [hold for _, hold in self._holds()]
        return {
            "watched": len(self.records),
            "requests": sum(int(r.get("requests", 0)) for r in self.records.values()),
            "unwatched": len(self.unwatched),
            "failed_on_holds": sum(r["verdict"] == "failed" for r in self.records.values()),
            "baselined": sum(r["verdict"] == "baselined" for r in self.records.values()),
            "holds": len(holds),
            # Noted, not blamed: a test-code hold that count_test_code failed is a failure.
            "holds_in_test_code": sum(
                hold["origin"] == "test code" and not hold["failing"] for hold in holds
            ),
            "warm_up_noted": sum(_noted_warm_up(hold) for hold in holds),
        }

    def watched_nothing(self) -> str | None:
        """With `--noblock-require-requests`: why the run fails, when no request was watched."""
        if self.is_worker or not self.require_requests or self._counts()["requests"]:
            return None
        unwatched = len(self.unwatched)
        why = f" ({unwatched} tests ran unwatched: see their notes)" if unwatched else ""
        return (
            f"noblock: no request was watched in this run{why}; --noblock-require-requests fails it"
        )

    def summary(self, terminal: pytest.TerminalReporter) -> None:
        if self.is_worker:
            return
        if self.records:
            self._write_durations(terminal)
        elif self.unwatched:
            terminal.write_sep("=", "noblock")
            terminal.write_line(
                f"0 tests watched, {len(self.unwatched)} ran unwatched (see their notes)"
            )
        nothing = self.watched_nothing()
        if nothing is not None:
            terminal.write_line(nothing)
        for problem in self.problems:
            terminal.write_line(problem)
        if self.annotations:
            self._write_annotations(terminal)
        if self.wrote_baseline is not None:
            count = self.wrote_baseline
            terminal.write_line(
                f"noblock: wrote a baseline of {count} finding{'s' * (count != 1)} to "
                f"{self.baseline_shown}"
            )
        gone = self.gone() if self.baseline_path is not None and not self.recording else []
        if gone:
            many = len(gone) != 1
            terminal.write_line(
                f"noblock: {len(gone)} baseline entr{'ies are' if many else 'y is'} gone "
                f"(fixed? remove {'them' if many else 'it'} from {self.baseline_shown}):"
            )
            for entry in gone:
                terminal.write_line(
                    f"  {entry.get('handler') or '-'}  {entry.get('file')}:{entry.get('line')} "
                    f"in {entry.get('function')}: {entry.get('source')}"
                )

    def _write_durations(self, terminal: pytest.TerminalReporter) -> None:
        # Warm-up has a section of its own: a suite that builds an app per test would
        # fill this list with it and hide the holds that fail.
        # So does the lifespan, which runs again for every test.
        holds = sorted(
            (
                pair
                for pair in self._holds()
                if not _noted_warm_up(pair[1]) and not _noted_lifespan(pair[1])
            ),
            key=lambda pair: pair[1]["held_ms"],
            reverse=True,
        )
        shown = holds if self.durations == 0 else holds[: self.durations]
        counts = self._counts()
        terminal.write_sep("=", "noblock: longest holds")
        for record, hold in shown:
            who = hold["request"] or hold["who"]
            terminal.write_line(
                f"{milliseconds(hold['held_ms'] / 1000):>9}  {record['nodeid']}  {who}  "
                f"{_site(hold)}"
            )
        if len(holds) > len(shown):
            terminal.write_line(
                f"({len(holds) - len(shown)} shorter holds hidden; --noblock-durations=0 shows all)"
            )
        line = (
            f"{counts['watched']} tests watched ({counts['requests']} requests), "
            f"{counts['failed_on_holds']} failed on holds, "
            f"{counts['holds_in_test_code']} holds in test code (not blamed)"
        )
        if counts["unwatched"]:
            line += f", {counts['unwatched']} ran unwatched (see their notes)"
        if counts["baselined"]:
            line += f", {counts['baselined']} passed on the baseline"
        if counts["warm_up_noted"]:
            line += f", {counts['warm_up_noted']} warm-up holds noted"
        terminal.write_line(line)
        if holds:
            terminal.write_line("holds per call site:")
            for site, count in Counter(_site(hold) for _, hold in holds).most_common():
                terminal.write_line(f"  {count:>5} x {site}")
        self._write_warm_up(terminal)
        self._write_lifespan(terminal)

    def _write_lifespan(self, terminal: pytest.TerminalReporter) -> None:
        """Once per lifespan line: how many tests' lifespans held the loop there."""
        per_site: dict[str, list[Record]] = {}
        for _, hold in self._holds():
            if _noted_lifespan(hold):
                per_site.setdefault(_site(hold), []).append(hold)
        if not per_site:
            return
        terminal.write_line(
            "the app's lifespan (noted, not failed; count_lifespan=True counts it):"
        )
        for site, holds in sorted(per_site.items(), key=lambda item: -len(item[1])):
            longest = max(hold["held_ms"] for hold in holds) / 1000
            terminal.write_line(f"  {len(holds):>5} x {site}, longest {milliseconds(longest)}")

    def _write_warm_up(self, terminal: pytest.TerminalReporter) -> None:
        """Once per route: how many fresh apps warmed it up, and what it cost."""
        per_route: dict[tuple[str, str], list[Record]] = {}
        for _, hold in self._holds():
            if _noted_warm_up(hold):
                key = (str(hold["request"]), str(hold["handler"] or "-"))
                per_route.setdefault(key, []).append(hold)
        if not per_route:
            return
        terminal.write_line(
            "warm-up on a route's first request to a fresh app (noted, not failed; "
            "count_warmup=True counts it):"
        )
        ranked = sorted(per_route.items(), key=lambda item: -sum(h["held_ms"] for h in item[1]))
        for (request, handler), holds in ranked:
            longest = max(holds, key=lambda hold: hold["held_ms"])
            total = sum(hold["held_ms"] for hold in holds) / 1000
            terminal.write_line(
                f"  {len(holds):>5} x {request}  {handler}: {longest['warm_up']}, longest "
                f"{milliseconds(longest['held_ms'] / 1000)}, {milliseconds(total)} in all"
            )

    def _write_annotations(self, terminal: pytest.TerminalReporter) -> None:
        seen: set[tuple[str, int]] = set()
        for record, hold in sorted(self._holds(), key=lambda pair: -pair[1]["held_ms"]):
            site = hold.get("call_site")
            if not hold["failing"] or hold["baselined"] or not site:
                continue
            where = (site["file"], site["line"])
            if where in seen:
                continue
            seen.add(where)
            text = (
                f"{hold['who']} held the event loop for {milliseconds(hold['held_ms'] / 1000)} "
                f"(budget {milliseconds(record['budget_ms'] / 1000)}; {record['nodeid']})"
            )
            if hold.get("handler"):
                text += f" in {hold['handler']}"
            if hold.get("hint"):
                text += f": {hold['hint']['why']} Instead: {hold['hint']['instead']}"
            # Written straight to stdout at column 0, where the runner looks for commands.
            terminal.write_line(
                f"::error file={_annotation_property(self._workspace_path(site['file']))},"
                f"line={site['line']},"
                "title=noblock::" + _annotation_text(text)
            )

    def _workspace_path(self, shown: str) -> str:
        """GitHub marks a line by its path in the repository; records say it from rootdir."""
        workspace = os.environ.get("GITHUB_WORKSPACE")
        if not workspace:
            return shown
        path = self.config.rootpath / shown
        try:
            return path.resolve().relative_to(Path(workspace).resolve()).as_posix()
        except ValueError:
            return shown
