"""Tests on uvloop (what `uvicorn[standard]` runs): watched like asyncio's own loop.

Through pytest-asyncio (uvloop's policy from the `event_loop_policy` fixture, or the
`pytest_asyncio_loop_factories` hook of newer pytest-asyncio) and anyio's plugin
(`anyio_backend = ("asyncio", {"use_uvloop": True})`). Timing tests that also run on
uvloop elsewhere in the suite carry `@on_loops` (see conftest).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import fastapi  # noqa: F401 - kept in sys.modules across pytester's in-process runs
import pytest
import pytest_asyncio.plugin
from conftest import SLOW_AND_FAST_APP, SLOW_REPORT, Project, line_of

pytest.importorskip("uvloop", reason="uvloop does not install on this Python")

APP = SLOW_AND_FAST_APP

ADVICE = [
    "  instead   use `await asyncio.sleep(...)` (or `await anyio.sleep(...)`)",
    "            or make the endpoint a plain `def`: FastAPI runs those in its thread pool",
]

POLICY = """
import uvloop

@pytest.fixture(scope="session")
def event_loop_policy():
    return uvloop.EventLoopPolicy()
"""

FACTORIES_HOOK = """
import uvloop

def pytest_asyncio_loop_factories(config, item):
    return {"uvloop": uvloop.new_event_loop}
"""

ANYIO = """
@pytest.fixture
def anyio_backend():
    return ("asyncio", {"use_uvloop": True})

pytestmark = pytest.mark.anyio
"""

TESTS = """
import asyncio

import httpx
import pytest
import uvloop

from app import app
{setup}

@pytest.mark.noblock
async def test_blocking():
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/fast")).status_code == 200
        assert (await client.get("/slow")).status_code == 200

@pytest.mark.noblock(budget_ms=20)
async def test_clean_look_alike():
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for _ in range(50):
            assert (await client.get("/fast")).json() == {{"ok": True}}
        answers = await asyncio.gather(*(client.get("/fast") for _ in range(50)))
        assert [answer.status_code for answer in answers] == [200] * 50
"""


def module(*parts: str) -> str:
    return "\n".join(textwrap.dedent(part) for part in parts)


def assert_blocking_caught_clean_passes(result: pytest.RunResult) -> None:
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_app.py::test_blocking - *noblock: GET /slow held*"])
    result.stdout.fnmatch_lines([*SLOW_REPORT, "                ^^^^^^^^^^^^^^^"])
    result.stdout.fnmatch_lines(ADVICE)
    result.stdout.no_fnmatch_line("*nothing was watched*")
    result.stdout.no_fnmatch_line("*GET /fast held*")


def test_pytest_asyncio_with_uvloop_policy(project: Project) -> None:
    project.app(APP)
    project.tests(TESTS.format(setup=POLICY))
    assert_blocking_caught_clean_passes(project.run("-W", "ignore::DeprecationWarning"))


@pytest.mark.skipif(
    not hasattr(pytest_asyncio.plugin, "PytestAsyncioSpecs"),
    reason="this pytest-asyncio has no pytest_asyncio_loop_factories hook (added in 1.4)",
)
def test_pytest_asyncio_with_uvloop_loop_factory(project: Project) -> None:
    project.app(APP)
    project.pytester.makeconftest(
        "import pytest\nfrom app import app\n"
        + FACTORIES_HOOK
        + "\n@pytest.fixture\ndef noblock_app():\n    return app\n"
    )
    project.tests(TESTS.format(setup=""))
    assert_blocking_caught_clean_passes(project.run())


def test_anyio_with_use_uvloop(project: Project) -> None:
    project.app(APP)
    project.tests(TESTS.format(setup=ANYIO))
    assert_blocking_caught_clean_passes(project.run("-p", "no:asyncio"))


def test_noblock_client_on_uvloop_names_the_handler(project: Project) -> None:
    project.app(APP)
    project.tests(
        module(
            """
        import pytest
        """,
            POLICY,
            """
        @pytest.mark.noblock
        async def test_slow(noblock_client):
            assert (await noblock_client.get("/slow")).status_code == 200
        """,
        )
    )
    result = project.run("-W", "ignore::DeprecationWarning")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([*SLOW_REPORT, "                ^^^^^^^^^^^^^^^"])


STRICT_APP = """
import time
from fastapi import FastAPI

app = FastAPI()

@app.get("/call")
async def call():
    time.sleep(0.001)  # a known blocking call, well under any budget
    return {}
"""


def test_strict_mode_on_uvloop(project: Project) -> None:
    project.app(STRICT_APP)
    project.tests(
        module(
            """
        import asyncio
        import pytest
        import uvloop
        """,
            POLICY,
            """
        @pytest.mark.noblock(strict=True, budget_ms=10_000)
        async def test_call(noblock_client):
            assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
            assert (await noblock_client.get("/call")).status_code == 200
        """,
        )
    )
    result = project.run("-W", "ignore::DeprecationWarning")
    result.assert_outcomes(failed=1)
    line = line_of(STRICT_APP, "time.sleep(0.001)")
    result.stdout.fnmatch_lines(
        [
            "time.sleep: called once, longest * ms",
            "*GET /call*",
            f"  call      app.py:{line} in call",
        ]
    )


def test_task_factory_is_given_back_after_passing_failing_and_erroring_tests(
    project: Project,
) -> None:
    """The user's own task factory keeps making the tasks while watched, and is theirs after."""
    project.app(APP)
    project.tests(
        module(
            """
        import asyncio

        import pytest
        import uvloop
        """,
            POLICY,
            """
        pytestmark = pytest.mark.asyncio(loop_scope="module")
        made = []

        def own_factory(loop, coro, **options):
            made.append(coro)
            return asyncio.Task(coro, loop=loop, **options)

        async def nothing():
            return 1

        async def test_set_own_factory():
            asyncio.get_running_loop().set_task_factory(own_factory)

        @pytest.mark.noblock
        async def test_blocking(noblock_client):
            assert (await noblock_client.get("/slow")).status_code == 200

        @pytest.mark.noblock
        async def test_erroring(noblock_client):
            task = asyncio.create_task(nothing())
            assert await task == 1
            assert "nothing" in repr(task)
            raise RuntimeError("the test's own error")

        @pytest.mark.noblock
        async def test_clean(noblock_client):
            assert (await noblock_client.get("/fast")).status_code == 200

        async def test_after():
            loop = asyncio.get_running_loop()
            assert isinstance(loop, uvloop.Loop)
            assert loop.get_task_factory() is own_factory
            before = len(made)
            task = asyncio.create_task(nothing())
            assert await task == 1
            assert made[before:] == [task.get_coro()]
            assert type(task.get_coro()).__name__ == "coroutine"
            # The watched tests' tasks went through the user's factory too.
            assert before > 1
        """,
        )
    )
    result = project.run("-W", "ignore::DeprecationWarning")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(["FAILED test_app.py::test_blocking - *noblock: GET /slow held*"])
    result.stdout.fnmatch_lines(["FAILED test_app.py::test_erroring - RuntimeError*"])


def test_no_task_factory_is_left_behind(project: Project) -> None:
    project.app(APP)
    project.tests(
        module(
            """
        import asyncio

        import pytest
        """,
            POLICY,
            """
        pytestmark = pytest.mark.asyncio(loop_scope="module")

        @pytest.mark.noblock
        async def test_blocking(noblock_client):
            assert (await noblock_client.get("/slow")).status_code == 200

        async def test_after():
            assert asyncio.get_running_loop().get_task_factory() is None
        """,
        )
    )
    result = project.run("-W", "ignore::DeprecationWarning")
    result.assert_outcomes(passed=1, failed=1)


def test_the_uvloop_example(pytester: pytest.Pytester) -> None:
    """examples/uvloop, run as its docstring says (not part of `pytest examples/`)."""
    root = Path(__file__).resolve().parent.parent
    pytester.chdir()
    result = pytester.runpytest_subprocess(
        str(root / "examples" / "uvloop" / "uvloop_tests.py"),
        "-p",
        "no:cacheprovider",
        f"--rootdir={root}",
        "-W",
        "ignore::DeprecationWarning",
    )
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "noblock: GET /slow-quote held the event loop for * ms at examples/uvloop/app.py:*",
            "  handler   examples.uvloop.app:slow_quote",
        ]
    )


CALLBACK_APP = """
import asyncio
import time

from fastapi import FastAPI

app = FastAPI()


def refresh():
    time.sleep(0.2)  # in a plain callback: no task step


@app.get("/later")
async def later():
    asyncio.get_running_loop().call_soon(refresh)
    return {}


@app.get("/fast")
async def fast():
    return {"ok": True}
"""


def test_a_hold_in_a_plain_callback_is_a_note(project: Project) -> None:
    """uvloop runs callbacks the plugin cannot time: such a hold is said, never silent."""
    project.app(CALLBACK_APP)
    project.tests(
        module(
            """
            import asyncio
            import pytest
            """,
            POLICY,
            """
            @pytest.mark.noblock
            async def test_later(noblock_client):
                assert (await noblock_client.get("/later")).status_code == 200
                await asyncio.sleep(0.3)

            @pytest.mark.noblock
            async def test_fast(noblock_client):
                for _ in range(50):
                    assert (await noblock_client.get("/fast")).status_code == 200
                answers = await asyncio.gather(*(noblock_client.get("/fast") for _ in range(50)))
                assert [answer.status_code for answer in answers] == [200] * 50
                await asyncio.sleep(0.1)
            """,
        )
    )
    result = project.run("-W", "ignore::DeprecationWarning")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "test_app.py::test_later: uvloop: the loop was held once outside any task step "
            "(at least * ms): uvloop's plain callbacks (call_soon, call_later, future and "
            "protocol callbacks) and the steps of tasks started before the test are not timed;*"
        ]
    )
    result.stdout.no_fnmatch_line("test_app.py::test_fast: uvloop*")


def test_testclient_portal_on_uvloop(project: Project) -> None:
    """A sync test's TestClient asked for uvloop: its portal's loop is watched the same way."""
    project.app(APP)
    project.tests(
        """
        import pytest
        from fastapi.testclient import TestClient

        from app import app

        @pytest.mark.noblock
        def test_blocking():
            with TestClient(app, backend_options={"use_uvloop": True}) as client:
                assert client.get("/fast").status_code == 200
                assert client.get("/slow").status_code == 200

        @pytest.mark.noblock
        def test_clean_look_alike():
            with TestClient(app, backend_options={"use_uvloop": True}) as client:
                for _ in range(50):
                    assert client.get("/fast").json() == {"ok": True}
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_app.py::test_blocking - *noblock: GET /slow held*"])
    result.stdout.fnmatch_lines([*SLOW_REPORT, "                ^^^^^^^^^^^^^^^"])
    result.stdout.no_fnmatch_line("*not watched*")
    result.stdout.no_fnmatch_line("*nothing was watched*")
