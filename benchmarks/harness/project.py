"""Generated test projects: one test module per case, run by pytest in a subprocess.

The tests are written as each tool's user would write them: the tool's marker (or its
fixture, in conftest.py) and a client on the app, or the test's own `ASGITransport` client.
Verdicts come back through pytest's `--junitxml` report.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from corpus import Case

from harness.tools import PASSED, Finding, Tool

BENCH_DIR = Path(__file__).resolve().parent.parent
INI = """[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
junit_family = xunit2
"""


# The drivers group (corpus.drivers) runs anyio's trio tests next to sync TestClient tests
# and pytest-asyncio's: pytest-asyncio must leave `async def` tests to the plugin whose
# marker they carry.
DRIVERS_INI = INI.replace("asyncio_mode = auto", "asyncio_mode = strict")

TRIO_BACKEND = """@pytest.fixture
def anyio_backend():
    return "trio"


"""

UVLOOP_POLICY = """@pytest.fixture(scope="module")
def event_loop_policy():
    return uvloop.EventLoopPolicy()


"""


@dataclass(frozen=True)
class Driver:
    """How a driver's test is written: its imports, whether it is sync, what it is marked
    with, the fixtures beside it, and the block a sync test's body runs in (`client`)."""

    imports: str
    sync: bool = False
    mark: str | None = None
    fixtures: str = ""
    client_block: str | None = None


DRIVERS = {
    "asyncio": Driver(""),
    "testclient": Driver(
        "from fastapi.testclient import TestClient\n",
        sync=True,
        client_block="with TestClient(app) as client:",
    ),
    "trio": Driver("import anyio\n", mark="@pytest.mark.anyio", fixtures=TRIO_BACKEND),
    "uvloop": Driver(
        "import anyio\nimport uvloop\n", mark="@pytest.mark.asyncio", fixtures=UVLOOP_POLICY
    ),
    "schemathesis": Driver("import schemathesis\n", sync=True),
    "litestar": Driver(
        "from litestar.testing import TestClient\n",
        sync=True,
        client_block="with TestClient(app) as client:",
    ),
    "django": Driver("from django.test import AsyncClient\n", mark="@pytest.mark.asyncio"),
    "quart": Driver("", mark="@pytest.mark.asyncio"),
}


def test_module(tool: Tool, case: Case, budget_ms: float, repeat: int) -> str:
    """The source of one generated test module for one case.

    An "asyncio" case (all of `corpus.apps`) is an `async def` test with the tool's client;
    the drivers group's are written as `DRIVERS` says: a "trio" case is the same test marked
    `anyio` with `anyio_backend` returning "trio", a "uvloop" one the same test on
    pytest-asyncio with uvloop's `event_loop_policy`; a sync case ("testclient", "litestar")
    runs its body inside `with TestClient(app) as client:` (unless it builds its own client,
    with `own_client`, as the Django, Quart and schemathesis cases all do). An `app_factory`
    case's app fixture builds a fresh app for each test.
    """
    name, _, attr = f"{case.module}:{case.app_attr}".partition(":")
    driver = DRIVERS[case.driver]
    marker = tool.marker(budget_ms)
    decorators = [marker] if marker else []
    params = []
    if not case.own_client and not driver.sync:
        params.append(tool.client_fixture)
    if driver.mark:
        decorators.insert(0, driver.mark)
    if repeat > 1:
        decorators.append(f'@pytest.mark.parametrize("rep", range({repeat}))')
        params.append("rep")
    if driver.sync:
        body = case.body
        if not case.own_client and driver.client_block:
            body = driver.client_block + "\n" + textwrap.indent(body, "    ")
    else:
        body = ("" if case.own_client else f"client = {tool.client_fixture}\n") + case.body
    body = textwrap.indent(body, "    ")
    kind = "blocking" if case.blocking else "clean"
    built = "app()" if case.app_factory else "app"
    imports = "import asyncio\nimport time\n\nimport httpx\nimport pytest\n" + driver.imports
    return (
        f'"""Case {case.name} ({kind}): {case.kind} in {case.where}."""\n\n'
        f"{imports}\n"
        f"from corpus import work\nfrom {name} import {attr} as app\n\n"
        f"CASE_NAME = {case.name!r}\n\n\n"
        f"@pytest.fixture\ndef {tool.app_fixture}():\n    return {built}\n\n\n"
        + driver.fixtures
        + "".join(line + "\n" for line in decorators)
        + f"{'def' if driver.sync else 'async def'} test_{case.name}({', '.join(params)}):\n{body}"
    )


def write_project(
    root: Path, tool: Tool, cases: Sequence[Case], budget_ms: float, repeat: int, ini: str = INI
) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text(ini)
    (root / "conftest.py").write_text(tool.conftest)
    for case in cases:
        (root / f"test_{case.name}.py").write_text(test_module(tool, case, budget_ms, repeat))


@dataclass
class Run:
    """One pytest process: its findings by (case, repetition), its log, its duration."""

    findings: dict[tuple[str, int], Finding]
    seconds: float
    log: Path
    returncode: int


def environment(scratch: Path) -> dict[str, str]:
    """The pytest processes' environment: the corpus importable, the runner's upstream."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(BENCH_DIR), *filter(None, [env.get("PYTHONPATH")])])
    env["BENCH_SCRATCH"] = str(scratch)
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTHONASYNCIODEBUG", None)
    return env


NICENESS: int | None = None


def set_niceness(value: int | None) -> None:
    """Run every benchmark process (pytest, burner, upstream) at this scheduling priority."""
    global NICENESS
    NICENESS = value


def prioritised() -> None:
    """`preexec_fn` for the benchmark's processes (see `--nice`)."""
    if NICENESS is not None:
        os.setpriority(os.PRIO_PROCESS, 0, NICENESS)


def run_pytest(
    root: Path, tool: Tool, scratch: Path, extra: Sequence[str] = (), timeout: float = 900
) -> Run:
    """Run pytest on a generated project and read the verdict of every test."""
    junit = root / "junit.xml"
    log = root / "pytest.log"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "harness.pytest_bench",
        "-p",
        "no:cacheprovider",
        *[arg for name in tool.disable for arg in ("-p", f"no:{name}")],
        "-q",
        "--tb=native",
        f"--junitxml={junit}",
        *extra,
        str(root),
    ]
    started = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run(
            command,
            cwd=root,
            env=environment(scratch),
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
            preexec_fn=prioritised,
        )
    seconds = time.perf_counter() - started
    findings = read_junit(junit, tool) if junit.exists() else {}
    return Run(findings, seconds, log, done.returncode)


def read_junit(path: Path, tool: Tool) -> dict[tuple[str, int], Finding]:
    findings: dict[tuple[str, int], Finding] = {}
    for testcase in ElementTree.parse(path).getroot().iter("testcase"):
        name = testcase.get("name", "")
        if not name.startswith("test_"):
            continue
        case, _, rest = name[len("test_") :].partition("[")
        param = rest.rstrip("]")
        rep = int(param) if param.isdigit() else 0
        problem = testcase.find("failure")
        if problem is None:
            problem = testcase.find("error")
        if problem is not None:
            text = (problem.get("message") or "") + "\n" + (problem.text or "")
            findings[(case, rep)] = tool.parse(text)
        elif testcase.find("skipped") is not None:
            findings[(case, rep)] = Finding(blocked=False, problem="skipped")
        else:
            findings[(case, rep)] = PASSED
    return findings
