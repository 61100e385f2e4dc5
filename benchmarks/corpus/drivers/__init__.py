"""The drivers group: the same kinds of cases, driven each other way a suite runs the app.

Every case in `corpus.apps` is an `async def` test on asyncio with an `httpx.AsyncClient`.
Here the app is driven the other ways pytest-noblock supports:

- `testclient`: a sync test, `with TestClient(app) as client: client.get(...)` (or a bare
  `client = TestClient(app)`); the app runs on a loop in TestClient's portal thread;
- `trio`: an `async def` test run by anyio's pytest plugin on trio, with the tool's
  `httpx.AsyncClient(transport=ASGITransport(app))`;
- `uvloop`: an `async def` test on pytest-asyncio whose loop comes from uvloop's
  `EventLoopPolicy`, with the tool's client;
- `schemathesis`: a sync test calling `case.call()` on a schema loaded with `from_asgi`
  (the app runs on schemathesis's session-long loop thread);
- `litestar`: a sync test with Litestar's `TestClient` (`litestar_app.py`);
- `django`: an `async def` test with `django.test.AsyncClient` (`django_app.py`);
- `quart`: an `async def` test with Quart's `app.test_client()` (`quart_app.py`).

The FastAPI app (`apps.py`) uses anyio, never asyncio-only calls, so it runs on all of its
drivers. Labels work as in
`corpus.apps` (`# BLOCKS: name`; one line may label the same call for several cases).
They live outside `corpus.apps` so that the asyncio benchmark's totals stay as they were.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util

from corpus import CORPUS_DIR, Case, scan_labels

# Each module of cases, and the package it needs (None: the timing corpus's own).
DRIVER_MODULES = {
    "corpus.drivers.apps": None,
    "corpus.drivers.litestar_app": "litestar",
    "corpus.drivers.django_app": "django",
    "corpus.drivers.quart_app": "quart",
}
# Each driver, and the package its tests need beyond FastAPI's.
DRIVERS = {
    "testclient": None,
    "trio": "trio",
    "uvloop": "uvloop",
    "schemathesis": "schemathesis",
    "litestar": "litestar",
    "django": "django",
    "quart": "quart",
}


def installed(package: str | None) -> bool:
    return package is None or importlib.util.find_spec(package) is not None


def missing_drivers() -> list[str]:
    """The drivers whose package is not installed here: their cases are not loaded."""
    return [driver for driver, package in DRIVERS.items() if not installed(package)]


def sync_get(path: str, status: int = 200) -> str:
    """The usual body of a TestClient case: one GET, checked like a user would."""
    return f'r = client.get("{path}")\nassert r.status_code == {status}, r.text\n'


def load_driver_cases() -> list[Case]:
    """The cases of every driver whose package is installed (`missing_drivers`: the rest)."""
    modules = [name for name, package in DRIVER_MODULES.items() if installed(package)]
    files = [CORPUS_DIR / "drivers" / f"{name.rpartition('.')[2]}.py" for name in modules]
    labels = scan_labels(files)
    cases: list[Case] = []
    missing = missing_drivers()
    for name in modules:
        module = importlib.import_module(name)
        for case in module.CASES:
            found = tuple(labels.pop(case.name, ()))
            if case.driver not in missing:
                cases.append(dataclasses.replace(case, module=name, labels=found))
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
