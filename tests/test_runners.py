"""Where the test runs: pytest-asyncio (auto, strict, each loop scope) and anyio's plugin."""

from __future__ import annotations

# Imported here, in the outer process, so every in-process pytester run shares one copy of
# FastAPI and Starlette (a half-imported Starlette left over between runs breaks routing).
import fastapi  # noqa: F401
import pytest
from conftest import SLOW_AND_FAST_APP, SLOW_REPORT, Project

APP = SLOW_AND_FAST_APP
BLOCKING_REPORT = SLOW_REPORT

ANYIO_BACKEND = """
@pytest.fixture
def anyio_backend():
    return "asyncio"
"""


def two_tests(decorators: str, preamble: str = "") -> str:
    """A blocking test and a clean test, each under `decorators` (one per line)."""
    return (
        "import pytest\n"
        + preamble
        + f"""
{decorators}
async def test_blocking(noblock_client):
    assert (await noblock_client.get("/slow")).status_code == 200

{decorators}
async def test_clean(noblock_client):
    assert (await noblock_client.get("/fast")).json() == {{"ok": True}}
"""
    )


def assert_blocking_fails_clean_passes(result: pytest.RunResult) -> None:
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(BLOCKING_REPORT)
    result.stdout.fnmatch_lines(["FAILED test_app.py::test_blocking - *noblock: GET /slow held*"])
    result.stdout.no_fnmatch_line("FAILED test_app.py::test_clean*")


# --- pytest-asyncio -------------------------------------------------------------------------


def test_asyncio_auto_mode(project: Project) -> None:
    project.app(APP)
    project.tests(two_tests("@pytest.mark.noblock"))
    assert_blocking_fails_clean_passes(project.run())


def test_asyncio_strict_mode(project: Project) -> None:
    project.ini(asyncio_mode="strict")
    project.app(APP)
    project.tests(two_tests("@pytest.mark.asyncio\n@pytest.mark.noblock"))
    assert_blocking_fails_clean_passes(project.run())


@pytest.mark.parametrize("scope", ["function", "module", "session"])
def test_asyncio_loop_scopes(project: Project, scope: str) -> None:
    project.ini(asyncio_mode="strict")
    project.app(APP)
    project.tests(two_tests(f'@pytest.mark.asyncio(loop_scope="{scope}")\n@pytest.mark.noblock'))
    assert_blocking_fails_clean_passes(project.run())


@pytest.mark.parametrize("scope", ["module", "session"])
def test_asyncio_shared_loop_scope_in_auto_mode(project: Project, scope: str) -> None:
    """A loop shared by several tests: each test is judged on its own body only."""
    project.app(APP)
    project.tests(
        f"""
        import pytest

        pytestmark = pytest.mark.asyncio(loop_scope="{scope}")

        @pytest.mark.noblock
        async def test_clean_first(noblock_client):
            assert (await noblock_client.get("/fast")).status_code == 200

        @pytest.mark.noblock
        async def test_blocking(noblock_client):
            assert (await noblock_client.get("/slow")).status_code == 200

        @pytest.mark.noblock
        async def test_clean_after(noblock_client):
            assert (await noblock_client.get("/fast")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(BLOCKING_REPORT)
    result.stdout.fnmatch_lines(["FAILED test_app.py::test_blocking - *"])


# --- anyio ----------------------------------------------------------------------------------


@pytest.mark.parametrize("asyncio_mode", ["strict", "auto"])
def test_anyio_plugin(project: Project, asyncio_mode: str) -> None:
    project.ini(asyncio_mode=asyncio_mode)
    project.app(APP)
    project.tests(two_tests("@pytest.mark.anyio\n@pytest.mark.noblock", ANYIO_BACKEND))
    assert_blocking_fails_clean_passes(project.run())


def test_anyio_plugin_with_parametrized_backend(project: Project) -> None:
    project.ini(asyncio_mode="strict")
    project.app(APP)
    backend = """
@pytest.fixture(params=["asyncio"])
def anyio_backend(request):
    return request.param
"""
    project.tests(two_tests("@pytest.mark.anyio\n@pytest.mark.noblock", backend))
    result = project.run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(BLOCKING_REPORT)
    result.stdout.fnmatch_lines(["FAILED test_app.py::test_blocking[[]asyncio[]] - *"])


# --- only the test body is watched ----------------------------------------------------------


def test_blocking_pytest_asyncio_fixture_does_not_fail_the_test(project: Project) -> None:
    project.app(APP)
    project.tests(
        """
        import time
        import pytest

        @pytest.fixture
        async def slow_setup_and_teardown():
            time.sleep(0.2)
            yield
            time.sleep(0.2)

        @pytest.mark.noblock
        async def test_x(slow_setup_and_teardown, noblock_client):
            assert (await noblock_client.get("/fast")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*held the event loop*")


def test_blocking_pytest_asyncio_fixture_in_strict_mode(project: Project) -> None:
    project.ini(asyncio_mode="strict")
    project.app(APP)
    project.tests(
        """
        import time
        import pytest
        import pytest_asyncio

        @pytest_asyncio.fixture
        async def slow_setup_and_teardown():
            time.sleep(0.2)
            yield
            time.sleep(0.2)

        @pytest.mark.asyncio
        @pytest.mark.noblock
        async def test_x(slow_setup_and_teardown, noblock_client):
            assert (await noblock_client.get("/fast")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*held the event loop*")


def test_blocking_anyio_fixture_does_not_fail_the_test(project: Project) -> None:
    project.ini(asyncio_mode="strict")
    project.app(APP)
    project.tests(
        """
        import time
        import pytest

        @pytest.fixture
        def anyio_backend():
            return "asyncio"

        @pytest.fixture
        async def slow_setup_and_teardown(anyio_backend):
            time.sleep(0.2)
            yield
            time.sleep(0.2)

        @pytest.mark.anyio
        @pytest.mark.noblock
        async def test_x(slow_setup_and_teardown, noblock_client):
            assert (await noblock_client.get("/fast")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*held the event loop*")


def test_fixture_making_a_blocking_request_does_not_fail_the_test(project: Project) -> None:
    """A blocking request made by a fixture's setup happens before the body: not watched."""
    project.app(APP)
    project.tests(
        """
        import pytest

        @pytest.fixture
        async def warmed_up(noblock_client):
            await noblock_client.get("/slow")
            return noblock_client

        @pytest.mark.noblock
        async def test_x(warmed_up):
            assert (await warmed_up.get("/fast")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*held the event loop*")


# --- no async plugin runs the test ----------------------------------------------------------


def test_async_test_that_no_plugin_runs_fails_with_one_line(project: Project) -> None:
    project.ini(asyncio_mode="strict")
    project.app(APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_x(noblock_client):
            assert (await noblock_client.get("/fast")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "noblock: test_x is `async def` but no async plugin runs it, *",
            "FAILED test_app.py::test_x - Failed: noblock: test_x is `async def`*",
        ]
    )
    result.stdout.no_fnmatch_line("*was never awaited*")
    result.stdout.no_fnmatch_line("*RuntimeWarning*")
    result.stdout.no_fnmatch_line("*Traceback*")
    assert "never awaited" not in result.stderr.str()


def test_async_test_that_no_plugin_runs_in_a_subprocess(project: Project) -> None:
    """Same check in a fresh interpreter, where a leaked coroutine warning would reach stderr."""
    project.ini(asyncio_mode="strict")
    project.app(APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_x(noblock_client):
            await noblock_client.get("/fast")
        """
    )
    result = project.run_subprocess("-W", "default")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["noblock: test_x is `async def` but no async plugin runs it, *"])
    assert "never awaited" not in result.stdout.str()
    assert "never awaited" not in result.stderr.str()


# --- no loop at all -------------------------------------------------------------------------


def test_marked_sync_test_passes_with_a_note(project: Project) -> None:
    project.app(APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        def test_sync():
            assert 1 + 1 == 2
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*= noblock notes =*", "test_app.py::test_sync: nothing was watched*"]
    )


def test_unmarked_tests_get_no_notes(project: Project) -> None:
    project.app(APP)
    project.tests(
        """
        def test_sync():
            pass

        async def test_async():
            pass
        """
    )
    result = project.run()
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line("*noblock notes*")


# --- the plugin switched off ----------------------------------------------------------------


def test_plugin_can_be_disabled(project: Project) -> None:
    project.pytester.makepyfile(app=APP)
    project.tests(
        """
        import httpx
        import pytest

        from app import app

        @pytest.mark.noblock
        async def test_blocking():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                assert (await client.get("/slow")).status_code == 200
        """
    )
    enabled = project.run()
    enabled.assert_outcomes(failed=1)
    enabled.stdout.fnmatch_lines(["noblock: GET /slow held the event loop*"])

    # In a subprocess: in-process, pytest remembers markers registered by earlier runs.
    disabled = project.run_subprocess("-p", "no:noblock")
    disabled.assert_outcomes(passed=1, warnings=1)
    disabled.stdout.fnmatch_lines(["*PytestUnknownMarkWarning: Unknown pytest.mark.noblock*"])
    disabled.stdout.no_fnmatch_line("*held the event loop*")


def test_disabled_plugin_has_no_fixtures(project: Project) -> None:
    project.app(APP)
    project.tests(
        """
        async def test_x(noblock_client):
            pass
        """
    )
    result = project.run("-p", "no:noblock")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'noblock_client' not found*"])
