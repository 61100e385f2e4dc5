"""RESULTS.md and the console summary, both written from one `Benchmark`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from corpus import Case

from harness.scoring import (
    CLEAN_REQUESTS_TARGET,
    DETECTION_TARGET,
    DURATION_ABS_MS,
    DURATION_REL,
    EXACT_SITE_TARGET,
    FIXED_COST_TARGET_MS,
    WALL_OVERHEAD_TARGET,
    Benchmark,
    Duration,
    ToolScore,
    Totals,
)


def _pct(value: float) -> str:
    return f"{value * 100:.0f}%" if value in (0.0, 1.0) else f"{value * 100:.1f}%"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _short_path(path: str) -> str:
    marker = "corpus/"
    return path[path.index(marker) :] if marker in path else path


def verdict_cell(score: ToolScore, case: Case) -> str:
    """How one tool did on one blocking case, in a few words."""
    if not score.installed:
        return "n/a"
    found = score.finding(case)
    if found.problem is not None:
        return f"error: {found.problem[:60]}"
    if not found.blocked:
        return "missed"
    if score.exact(case):
        return "site"
    if found.site is not None:
        return f"wrong site {_short_path(found.path or '')}:{found.line}"
    return "detected" if not score.tool.reports_site else "detected, no app site"


def clean_cell(score: ToolScore, case: Case, repeat: int) -> str:
    if not score.installed:
        return "n/a"
    runs = score.clean_runs(case, repeat)
    alarms = sum(run.blocked for run in runs)
    errors = sum(run.problem is not None for run in runs)
    text = f"{alarms}/{len(runs)}"
    return text + (f" ({errors} errors)" if errors else "")


def targets(bench: Benchmark) -> list[tuple[str, str, str]]:
    """(target, result, met?) for our plugin."""
    ours = bench.ours
    total = bench.totals(ours)
    rows: list[tuple[str, str, str]] = []

    def met(ok: bool) -> str:
        return "met" if ok else "**MISSED**"

    rows.append(
        (
            f"detection {_pct(DETECTION_TARGET)} at {bench.detect_budget_ms:g} ms",
            f"{total.detected}/{total.blocking} ({_pct(total.detection)})",
            met(total.detection >= DETECTION_TARGET),
        )
    )
    rows.append(
        (
            f"exact site >= {_pct(EXACT_SITE_TARGET)}",
            f"{total.exact}/{total.blocking} ({_pct(total.exact_rate)})",
            met(total.exact_rate >= EXACT_SITE_TARGET),
        )
    )
    enough = bench.clean_requests >= CLEAN_REQUESTS_TARGET and bench.burner
    rows.append(
        (
            f"0 false alarms, >= {CLEAN_REQUESTS_TARGET} clean requests at "
            f"{bench.clean_budget_ms:g} ms, other core busy",
            f"{total.false_alarms} in {total.clean_tests} tests / {bench.clean_requests} requests"
            + ("" if bench.burner else " (no burner)"),
            met(total.false_alarms == 0 and total.clean_errors == 0)
            + ("" if enough else " (run too small to count)"),
        )
    )
    found = [item for item in bench.durations() if item.reliable]
    left_out = len(bench.durations()) - len(found)
    ok = sum(duration.ok for duration in found)
    rows.append(
        (
            f"duration within {DURATION_ABS_MS:g} ms + {_pct(DURATION_REL)} of the true hold",
            f"{ok}/{len(found)} cases"
            + (f" ({left_out} left out: true hold not reproducible)" if left_out else ""),
            met(bool(found) and ok == len(found)),
        )
    )
    if bench.overhead is not None:
        overhead = bench.overhead
        rows.append(
            (
                f"overhead <= {_pct(WALL_OVERHEAD_TARGET)} wall, {overhead.requests_each} "
                f"trivial requests (median of {overhead.rounds} rounds)",
                f"wall {overhead.wall_overhead * 100:+.1f}%, "
                f"CPU {overhead.cpu_overhead * 100:+.1f}%",
                met(overhead.wall_overhead <= WALL_OVERHEAD_TARGET),
            )
        )
        rows.append(
            (
                f"fixed cost <= {FIXED_COST_TARGET_MS:g} ms per marked test",
                f"{overhead.fixed_cost_ms:.2f} ms",
                met(overhead.fixed_cost_ms <= FIXED_COST_TARGET_MS),
            )
        )
    rows += _ahead(bench)
    return rows


def _ahead(bench: Benchmark) -> list[tuple[str, str, str]]:
    """Ours against the best peer on each metric (fewer false alarms is better)."""
    peers = [score for score in bench.scores[1:] if score.installed]
    if not peers:
        return []
    ours = bench.totals(bench.ours)
    rows = []
    metrics: tuple[tuple[str, Callable[[Totals], int], bool], ...] = (
        ("detection", lambda total: total.detected, False),
        ("exact site", lambda total: total.exact, True),
        ("false alarms", lambda total: -total.false_alarms, False),
    )
    for metric, value, needs_site in metrics:
        considered = [score for score in peers if score.tool.reports_site or not needs_site]
        if not considered:
            continue
        best = max(considered, key=lambda score: value(bench.totals(score)))
        mine, theirs = value(ours), value(bench.totals(best))
        result = "met" if mine > theirs else "tied" if mine == theirs else "**MISSED**"
        rows.append(
            (
                f"{metric}: ahead of every peer",
                f"ours {abs(mine)}, best peer {abs(theirs)} ({best.tool.title})",
                result,
            )
        )
    return rows


def totals_rows(bench: Benchmark) -> list[list[str]]:
    rows = []
    for score in bench.scores:
        if not score.installed:
            rows.append([score.tool.title, "not installed", "", "", ""])
            continue
        total = bench.totals(score)
        site = f"{total.exact}/{total.blocking} ({_pct(total.exact_rate)})"
        if not score.tool.reports_site:
            site = "no location reported"
        errors = total.clean_errors + total.detect_errors
        rows.append(
            [
                score.tool.title,
                f"{total.detected}/{total.blocking} ({_pct(total.detection)})",
                site,
                f"{total.false_alarms}/{total.clean_tests}",
                str(errors),
            ]
        )
    return rows


TOTALS_HEADER = ["tool", "detection", "exact site", "false alarms (clean tests)", "errors"]


def console(bench: Benchmark) -> str:
    lines = _table(TOTALS_HEADER, totals_rows(bench))
    lines += ["", "pytest-noblock against the targets:"]
    lines += [
        f"  [{result.replace('*', '')}] {target}: {value}"
        for target, value, result in targets(bench)
    ]
    return "\n".join(lines)


def header(command: str) -> str:
    """The title and the command that wrote the file (alone, when no asyncio case ran)."""
    lines = ["# pytest-noblock benchmark", ""]
    lines += [
        "Generated by `benchmarks/run.py`; do not edit by hand. To regenerate:",
        "",
        "```",
        command,
        "```",
        "",
    ]
    return "\n".join(lines) + "\n"


def markdown(bench: Benchmark, command: str) -> str:
    out: list[str] = header(command).splitlines()
    out += [f"- {key}: {value}" for key, value in bench.machine.items()]
    out += [
        f"- corpus: {len(bench.blocking)} blocking cases, {len(bench.clean)} clean cases",
        f"- blocking cases: each run once per tool at a {bench.detect_budget_ms:g} ms budget",
        f"- clean cases: each repeated {bench.repeat} times per tool at a "
        f"{bench.clean_budget_ms:g} ms budget, "
        + (
            "while another process burns the other core"
            if bench.burner
            else "**without** the CPU burner"
        )
        + f" ({bench.clean_requests} requests per tool)",
        f"- whole run: {bench.seconds:.0f} s",
        "",
        "## Totals",
        "",
    ]
    out += _table(TOTALS_HEADER, totals_rows(bench))
    out += ["", "## pytest-noblock against its targets", ""]
    out += _table(["target", "result", ""], [list(row) for row in targets(bench)])
    out += ["", *_overhead_section(bench), *_duration_section(bench)]
    out += ["## Blocking cases", ""]
    titles = [score.tool.title for score in bench.scores]
    rows = [
        [
            case.name,
            case.kind,
            case.where,
            case.label_text(),
            *[verdict_cell(score, case) for score in bench.scores],
        ]
        for case in bench.blocking
    ]
    out += _table(["case", "blocks on", "where", "label", *titles], rows)
    out += ["", "## Clean cases (false alarms / runs)", ""]
    rows = [
        [
            case.name,
            case.kind,
            case.where,
            str(case.requests),
            *[clean_cell(score, case, bench.repeat) for score in bench.scores],
        ]
        for case in bench.clean
    ]
    out += _table(["case", "what", "where", "requests", *titles], rows)
    out += ["", *_misses_section(bench), *_method_section(bench)]
    return "\n".join(out) + "\n"


def _overhead_section(bench: Benchmark) -> list[str]:
    overhead = bench.overhead
    if overhead is None:
        return []

    def spread(values: Sequence[float]) -> str:
        return ", ".join(f"{value * 100:+.1f}%" for value in values)

    return [
        "## Overhead of the marker",
        "",
        f"{overhead.rounds} rounds of {overhead.requests_each} trivial requests each way "
        "(batches of 100), marked and unmarked tests interleaved in one process, same app "
        "and client code. Overhead = marked / unmarked - 1, median over the rounds:",
        "",
        *_table(
            ["", "marked (all rounds)", "unmarked (all rounds)", "overhead", "per round"],
            [
                [
                    "wall",
                    f"{overhead.wall_marked_s * 1000:.0f} ms",
                    f"{overhead.wall_plain_s * 1000:.0f} ms",
                    f"{overhead.wall_overhead * 100:+.1f}%",
                    spread(overhead.wall_overheads),
                ],
                [
                    "CPU (process, all threads)",
                    f"{overhead.cpu_marked_s * 1000:.0f} ms",
                    f"{overhead.cpu_plain_s * 1000:.0f} ms",
                    f"{overhead.cpu_overhead * 100:+.1f}%",
                    spread(overhead.cpu_overheads),
                ],
            ],
        ),
        "",
        f"Fixed cost of an empty marked test: median {overhead.fixed_marked_ms:.2f} ms vs "
        f"{overhead.fixed_plain_ms:.2f} ms unmarked, over {overhead.fixed_pairs} pairs: "
        f"**{overhead.fixed_cost_ms:.2f} ms**.",
        "",
    ]


def duration_table(found: Sequence[Duration]) -> list[str]:
    """Reported holds beside both true holds, one row per case."""
    rows = [
        [
            item.case,
            f"{item.true_ms:.1f}",
            f"{item.spread_ms:.1f}",
            ms_or_dash(item.in_place_ms),
            f"{item.reported_ms:.0f}",
            f"{item.error_ms:+.1f}",
            f"{item.probe_error_ms:+.1f}",
            ("ok" if item.ok else "**off**") if item.reliable else "left out (spread)",
        ]
        for item in found
    ]
    return _table(
        [
            "case",
            "alone ms",
            "alone spread ms",
            "in place ms",
            "reported ms",
            "error ms",
            "error vs alone ms",
            "",
        ],
        rows,
    )


def _duration_section(bench: Benchmark) -> list[str]:
    found = bench.durations()
    if not found:
        return []
    kept = [item for item in found if item.reliable]
    errors = sorted(abs(item.error_ms) for item in kept) or [0.0]
    probe_errors = sorted(abs(item.probe_error_ms) for item in kept) or [0.0]
    return [
        "## Duration: reported hold vs true hold (pytest-noblock)",
        "",
        "Two measures of the truth, both with the time the thread waited for a CPU taken "
        "out (the kernel's per-thread schedstat), as the plugin does. **In place**: the "
        "longest loop step of the case's own test, timed by the harness around asyncio's "
        "`Handle._run` with `perf_counter`, independently of the plugin. **Alone**: the "
        "case's blocking call run off the loop right after its test, 3 times (after one "
        "untimed warm-up call), median. The loop is held for the whole step, so the step is "
        "the reference: the same call can cost more inside the request than alone "
        "(`json.dumps` of the same document, timed inside the handler, ran 10 to 16 ms "
        "longer than alone, and the plugin reported the longer figure). "
        f"Target: within {DURATION_ABS_MS:g} ms + {_pct(DURATION_REL)} of the reference. "
        "A case whose 3 runs alone spread more than the tolerance is left out of the target "
        "(its true hold cannot be pinned down on this machine). "
        f"Median |error| {errors[len(errors) // 2]:.1f} ms, worst {errors[-1]:.1f} ms; "
        f"against the probe alone: median {probe_errors[len(probe_errors) // 2]:.1f} ms, "
        f"worst {probe_errors[-1]:.1f} ms (cases kept).",
        "",
        *duration_table(found),
        "",
    ]


def ms_or_dash(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def verdict_misses(
    ours: ToolScore, blocking: Sequence[Case], clean: Sequence[Case], repeat: int
) -> list[str]:
    """One line per blocking case missed or placed elsewhere, per clean case that alarmed."""
    lines: list[str] = []
    for case in blocking:
        found = ours.finding(case)
        if not found.blocked:
            lines.append(
                f"- `{case.name}`: not detected (expected a hold at {case.label_text()})"
                + (f"; {found.problem}" if found.problem else "")
            )
        elif not ours.exact(case):
            lines.append(
                f"- `{case.name}`: site {found.site or 'none'}, expected {case.label_text()}"
            )
    for case in clean:
        runs = ours.clean_runs(case, repeat)
        alarms = [run for run in runs if run.blocked]
        errors = [run for run in runs if run.problem is not None]
        if alarms:
            worst = max(alarms, key=lambda run: run.ms or 0)
            lines.append(
                f"- `{case.name}`: {len(alarms)}/{len(runs)} false alarms, worst "
                f"{worst.ms or 0:.0f} ms at {worst.site or 'no site'}"
            )
        if errors:
            lines.append(f"- `{case.name}`: {len(errors)} errors: {errors[0].problem}")
    return lines


def _misses_section(bench: Benchmark) -> list[str]:
    lines = verdict_misses(bench.ours, bench.blocking, bench.clean, bench.repeat)
    for item in bench.durations():
        if item.reliable and not item.ok:
            lines.append(
                f"- `{item.case}`: reported {item.reported_ms:.0f} ms, in place "
                f"{ms_or_dash(item.in_place_ms)} ms, alone {item.true_ms:.1f} ms "
                f"(wall {item.true_wall_ms:.1f} ms)"
            )
    if not lines:
        return ["## pytest-noblock misses", "", "None.", ""]
    return ["## pytest-noblock misses", "", *lines, ""]


def _method_section(bench: Benchmark) -> list[str]:
    return [
        "## Method",
        "",
        "- Every case is a test module generated from the corpus (`benchmarks/corpus/apps`), "
        "run by pytest in a subprocess per tool and phase; verdicts are read from `--junitxml`.",
        "- Labels: each blocking call carries a `# BLOCKS: <case>` comment; for a CPU loop every "
        "line of the loop (header and body), for a recursive function every line of its body. "
        "Exact site means the reported `file:line` is one of those lines.",
        "- pytest-noblock: `@pytest.mark.noblock(budget_ms=...)` with `noblock_client` (or the "
        "test's own `ASGITransport` client); the verdict is the first line of its failure.",
        "- pyleak: `@pytest.mark.no_leaks(tasks=False, threads=False, blocking=True, "
        "blocking_threshold=budget)`; site = deepest corpus frame of the reported blocking stack.",
        "- blockbuster: an autouse fixture around each test with `blockbuster_ctx()`; it has no "
        "budget (any blocking call it knows fails the test); site = the corpus frame that called "
        "into blockbuster's wrapper, read from the traceback.",
        "- fastapi-loopguard: `@pytest.mark.no_blocking(threshold_ms=budget)`; reports a lag, "
        "no location.",
        "- asyncio debug mode: the test's loop in debug mode with `slow_callback_duration` = "
        "budget, failing on the asyncio logger's `Executing ... took` warnings; site = a corpus "
        "`file:line` in that message, if any.",
        "- Peers get a plain `httpx.AsyncClient` over `httpx.ASGITransport` (`bench_client`); the "
        "other tools' pytest plugins are disabled in each run (`-p no:...`).",
        "- The apps call a slow local HTTP server on 127.0.0.1, a process of its own started by "
        "the runner; slow files are named pipes drained by a thread (a slow disk, reproducibly).",
        "- The CPU burner is `python -c 'while True: pass'`, pinned to the last CPU, started "
        "before the clean phase and stopped by its PID after it. `--nice N` runs it, the "
        "upstream and every pytest process at that priority (the machine is shared).",
        "",
    ]
