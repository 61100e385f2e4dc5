"""The drivers group: the same kinds of cases, driven by `TestClient` and on trio.

Every case in `corpus.apps` is an `async def` test on asyncio with an `httpx.AsyncClient`.
Here the app is driven the two other ways pytest-noblock supports:

- `testclient`: a sync test, `with TestClient(app) as client: client.get(...)` (or a bare
  `client = TestClient(app)`); the app runs on a loop in TestClient's portal thread;
- `trio`: an `async def` test run by anyio's pytest plugin on trio, with the tool's
  `httpx.AsyncClient(transport=ASGITransport(app))`.

The apps use anyio, never asyncio-only calls, so they run on both. Labels work as in
`corpus.apps` (`# BLOCKS: name`; one line may label the same call for several cases).
They live outside `corpus.apps` so that the asyncio benchmark's totals stay as they were.
"""

from __future__ import annotations

import dataclasses
import importlib

from corpus import CORPUS_DIR, Case, scan_labels

DRIVER_MODULES = ("corpus.drivers.apps",)
DRIVERS = ("testclient", "trio")


def sync_get(path: str, status: int = 200) -> str:
    """The usual body of a TestClient case: one GET, checked like a user would."""
    return f'r = client.get("{path}")\nassert r.status_code == {status}, r.text\n'


def load_driver_cases() -> list[Case]:
    labels = scan_labels(sorted((CORPUS_DIR / "drivers").glob("*.py")))
    cases: list[Case] = []
    for name in DRIVER_MODULES:
        module = importlib.import_module(name)
        for case in module.CASES:
            cases.append(
                dataclasses.replace(case, module=name, labels=tuple(labels.pop(case.name, ())))
            )
    names = [case.name for case in cases]
    problems = [f"{name}: declared twice" for name in sorted(set(names)) if names.count(name) > 1]
    for case in cases:
        if case.driver not in DRIVERS:
            problems.append(f"{case.name}: unknown driver {case.driver!r}")
        if case.blocking and (not case.labels or case.probe is None):
            problems.append(f"{case.name}: blocking, but no `# BLOCKS:` label or no probe")
        if not case.blocking and case.labels:
            problems.append(f"{case.name}: clean, but has a BLOCKS label")
    problems += [
        f"label for unknown case {name!r} at {sites[0].short()}" for name, sites in labels.items()
    ]
    if problems:
        raise ValueError("drivers corpus is inconsistent:\n  " + "\n  ".join(problems))
    return cases
