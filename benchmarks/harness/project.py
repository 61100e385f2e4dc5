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


# The drivers group (corpus.drivers) runs anyio's trio tests next to sync TestClient tests:
# pytest-asyncio must leave `async def` tests to the plugin whose marker they carry.
DRIVERS_INI = INI.replace("asyncio_mode = auto", "asyncio_mode = strict")

TRIO_BACKEND = """@pytest.fixture
def anyio_backend():
    return "trio"


"""


def test_module(tool: Tool, case: Case, budget_ms: float, repeat: int) -> str:
    """The source of one generated test module for one case.

    An "asyncio" case (all of `corpus.apps`) is an `async def` test with the tool's client;
    a "trio" case is the same test marked `anyio` with `anyio_backend` returning "trio"; a
    "testclient" case is a sync test whose body runs inside `with TestClient(app) as client:`
    (or builds its own client, with `own_client`). An `app_factory` case's app fixture
    builds a fresh app for each test.
    """
    name, _, attr = f"{case.module}:{case.app_attr}".partition(":")
    marker = tool.marker(budget_ms)
    decorators = [marker] if marker else []
    sync = case.driver == "testclient"
    params = []
    if not case.own_client and not sync:
        params.append(tool.client_fixture)
    if case.driver == "trio":
        decorators.insert(0, "@pytest.mark.anyio")
    if repeat > 1:
        decorators.append(f'@pytest.mark.parametrize("rep", range({repeat}))')
        params.append("rep")
    if sync:
        body = case.body
        if not case.own_client:
            body = "with TestClient(app) as client:\n" + textwrap.indent(body, "    ")
    else:
        body = ("" if case.own_client else f"client = {tool.client_fixture}\n") + case.body
    body = textwrap.indent(body, "    ")
    kind = "blocking" if case.blocking else "clean"
    built = "app()" if case.app_factory else "app"
    imports = "import asyncio\nimport time\n\nimport httpx\nimport pytest\n"
    if case.driver != "asyncio":
        imports = (
            "import asyncio\nimport time\n\nimport anyio\nimport httpx\nimport pytest\n"
            "from fastapi.testclient import TestClient\n"
        )
    return (
        f'"""Case {case.name} ({kind}): {case.kind} in {case.where}."""\n\n'
        f"{imports}\n"
        f"from corpus import work\nfrom {name} import {attr} as app\n\n"
        f"CASE_NAME = {case.name!r}\n\n\n"
        f"@pytest.fixture\ndef {tool.app_fixture}():\n    return {built}\n\n\n"
        + (TRIO_BACKEND if case.driver == "trio" else "")
        + "".join(line + "\n" for line in decorators)
        + f"{'def' if sync else 'async def'} test_{case.name}({', '.join(params)}):\n{body}"
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
