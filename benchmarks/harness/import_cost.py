"""What installing the plugin costs a pytest run that watches nothing.

pytest imports every installed plugin at start-up. One pytest process runs one trivial sync
test, with the plugin and with `-p no:noblock`, the order flipping every round so that a
drift in machine speed hits both sides alike; the cost is the difference between each side's
fastest whole run. The machine's noise only ever adds time (another process, a cold cache):
a run spreads by some 27 ms here, and the median of the round-by-round differences moved by
±9 ms between runs of 15 rounds, around a target of 10 ms; the fastest runs are the nearest
to what the plugin itself costs (as `timeit` takes the fastest repetition). The median is
shown beside it. Twice: in a bare run (no other plugin loaded,
`PYTEST_DISABLE_PLUGIN_AUTOLOAD`: what the plugin alone adds, the target's figure) and with
every plugin installed here (which import asyncio or anyio themselves). Beside them, the
plugin module's own import time (`python -X importtime`, after pytest), median of the rounds.

A bare run loads the plugin with `-p pytest_noblock.plugin`, and pytest first looks every
`-p` name up among the installed distributions' entry points: 6 to 8 ms here, paid for any
plugin named so. The bare run without the plugin names an empty plugin module the same way,
so the difference is the plugin's own.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness import project

ROUNDS = 30
# The module the bare run without the plugin names with `-p` (`python -m` finds it in the
# project folder).
EMPTY_PLUGIN = "empty_plugin"
TARGET_MS = 10.0

TEST = '''"""One trivial sync test: what every suite has, watched or not."""


def test_trivial() -> None:
    assert sum([1, 2]) == 3
'''


@dataclass(frozen=True)
class ImportCost:
    # Whole-run wall times, seconds, one per round.
    bare_with_s: tuple[float, ...]
    bare_without_s: tuple[float, ...]
    installed_with_s: tuple[float, ...]
    installed_without_s: tuple[float, ...]
    # `import pytest_noblock.plugin` after pytest, cumulative, milliseconds.
    import_ms: tuple[float, ...]
    failed_runs: int

    @staticmethod
    def _extra_ms(with_s: tuple[float, ...], without_s: tuple[float, ...]) -> float:
        return (min(with_s) - min(without_s)) * 1000

    @staticmethod
    def _median_extra_ms(with_s: tuple[float, ...], without_s: tuple[float, ...]) -> float:
        pairs = zip(with_s, without_s, strict=True)
        return float(statistics.median(a - b for a, b in pairs)) * 1000

    @property
    def bare_ms(self) -> float:
        return self._extra_ms(self.bare_with_s, self.bare_without_s)

    @property
    def bare_median_ms(self) -> float:
        return self._median_extra_ms(self.bare_with_s, self.bare_without_s)

    @property
    def installed_ms(self) -> float:
        return self._extra_ms(self.installed_with_s, self.installed_without_s)

    @property
    def module_import_ms(self) -> float:
        return float(statistics.median(self.import_ms))

    @property
    def met(self) -> bool:
        return self.failed_runs == 0 and self.bare_ms <= TARGET_MS


def write_project(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "test_trivial.py").write_text(TEST)
    (root / f"{EMPTY_PLUGIN}.py").write_text(
        '"""Loaded with -p by the bare run without pytest-noblock: the same look-up."""\n'
    )


def _environment(scratch: Path) -> dict[str, str]:
    env = project.environment(scratch)
    # As after `pip install`: bytecode cached. Without it every run compiles the plugin's
    # modules again, which is most of what an import costs and no user pays.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _run(root: Path, scratch: Path, *, bare: bool, plugin: bool) -> tuple[float, int]:
    env = _environment(scratch)
    options = ["-p", "no:cacheprovider"]
    if bare:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        options += ["-p", "pytest_noblock.plugin" if plugin else EMPTY_PLUGIN]
    else:
        env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
        options += [] if plugin else ["-p", "no:noblock"]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *options],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
        preexec_fn=project.prioritised,
    )
    return time.perf_counter() - started, done.returncode


def _module_import_ms(root: Path, scratch: Path) -> float:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import pytest; import pytest_noblock.plugin"],
        cwd=root,
        env=_environment(scratch),
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=project.prioritised,
    )
    found = re.search(r"\|\s*(\d+) \|\s*pytest_noblock\.plugin$", done.stderr, re.MULTILINE)
    return int(found.group(1)) / 1000 if found else float("nan")


def run(
    workdir: Path, scratch: Path, log: Callable[[str], None], rounds: int = ROUNDS
) -> ImportCost:
    root = workdir / "import-cost"
    write_project(root)
    log(f"import cost: one trivial test, with and without the plugin, {rounds} rounds")
    times: dict[tuple[bool, bool], list[float]] = {
        (bare, plugin): [] for bare in (True, False) for plugin in (True, False)
    }
    imports: list[float] = []
    failed = 0
    for bare in (True, False):
        _run(root, scratch, bare=bare, plugin=True)  # warm-up: bytecode caches, the page cache
    for number in range(rounds):
        order = (True, False) if number % 2 == 0 else (False, True)
        for bare in (True, False):
            for plugin in order:
                seconds, returncode = _run(root, scratch, bare=bare, plugin=plugin)
                times[(bare, plugin)].append(seconds)
                failed += returncode != 0
        imports.append(_module_import_ms(root, scratch))
    cost = ImportCost(
        bare_with_s=tuple(times[(True, True)]),
        bare_without_s=tuple(times[(True, False)]),
        installed_with_s=tuple(times[(False, True)]),
        installed_without_s=tuple(times[(False, False)]),
        import_ms=tuple(imports),
        failed_runs=failed,
    )
    log(f"  {console(cost)}")
    return cost


def console(cost: ImportCost) -> str:
    return (
        f"import cost of a run watching nothing: {cost.bare_ms:+.1f} ms bare, "
        f"{cost.installed_ms:+.1f} ms with the installed plugins (fastest runs of "
        f"{len(cost.import_ms)} rounds; bare, median difference {cost.bare_median_ms:+.1f} ms; "
        f"plugin module import {cost.module_import_ms:.1f} ms)"
    )


def markdown(cost: ImportCost) -> str:
    def fastest_s(values: tuple[float, ...]) -> str:
        return f"{min(values):.3f} s"

    lines = [
        "## Cost of the plugin in a run that watches nothing",
        "",
        "One trivial sync test, a pytest process per run, with the plugin and with "
        "`-p no:noblock`, the order flipping every round; bare: no other plugin loaded "
        "(`PYTEST_DISABLE_PLUGIN_AUTOLOAD`), the plugin named with `-p pytest_noblock.plugin` "
        "and, in the run without it, an empty plugin module named the same way (pytest looks "
        "every `-p` name up among the installed entry points first, whatever the plugin). "
        "The figure is the difference between each side's fastest run: noise only adds time. "
        f"Target: at most {TARGET_MS:g} ms more, bare.",
        "",
        f"- bare, fastest of {len(cost.bare_with_s)} rounds: **{cost.bare_ms:+.1f} ms** "
        f"({'met' if cost.met else 'missed'}); fastest runs {fastest_s(cost.bare_with_s)} with, "
        f"{fastest_s(cost.bare_without_s)} without; median of the round-by-round differences "
        f"{cost.bare_median_ms:+.1f} ms",
        f"- every installed plugin loaded: {cost.installed_ms:+.1f} ms; fastest runs "
        f"{fastest_s(cost.installed_with_s)} with, {fastest_s(cost.installed_without_s)} without",
        f"- `import pytest_noblock.plugin` after pytest (`-X importtime`): "
        f"{cost.module_import_ms:.1f} ms",
    ]
    if cost.failed_runs:
        lines.append(f"- {cost.failed_runs} runs did not pass: the figures are not comparable")
    return "\n".join(lines) + "\n"


def to_json(cost: ImportCost) -> dict[str, object]:
    return {
        "bare_ms": cost.bare_ms,
        "bare_median_ms": cost.bare_median_ms,
        "installed_ms": cost.installed_ms,
        "module_import_ms": cost.module_import_ms,
        "bare_with_s": cost.bare_with_s,
        "bare_without_s": cost.bare_without_s,
        "installed_with_s": cost.installed_with_s,
        "installed_without_s": cost.installed_without_s,
        "import_ms": cost.import_ms,
        "failed_runs": cost.failed_runs,
        "target_ms": TARGET_MS,
        "met": cost.met,
    }
