"""Litestar apps: named as Litestar's router names them, through every client that calls them.

`noblock_client` (httpx's `ASGITransport`) runs the app on the test's own loop; Litestar's
`AsyncTestClient` and `TestClient` run it on a blocking portal's loop in a thread of their
own, whichever test calls them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

# Imported here, in the outer process, so every in-process pytester run shares one copy of
# Litestar (a half-imported package left over between runs breaks its routing).
pytest.importorskip("litestar", reason="Litestar does not install on this Python")
import litestar.testing  # noqa: F401
from conftest import Project, line_of, run_example
from test_examples import call_in


@pytest.fixture(autouse=True)
def root_logger_kept() -> Iterator[None]:
    """Litestar's default logging config gives the root logger a handler at INFO: every later
    in-process run would print httpx's request lines (with the ids the tests look for)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


APP = """
import threading
import time

from litestar import Controller, Litestar, get


@get("/users/{user_id:int}")
async def get_user(user_id: int) -> dict[str, int]:
    threading.Event().wait(0.2)
    return {"id": user_id}


@get("/fast/{user_id:int}")
async def fast_user(user_id: int) -> dict[str, int]:
    return {"id": user_id}


@get("/quick-sleep")
async def quick_sleep() -> dict[str, bool]:
    time.sleep(0.001)
    return {"ok": True}


class Reports(Controller):
    path = "/reports"

    @get("/{name:str}")
    async def report(self, name: str) -> dict[str, str]:
        time.sleep(0.2)
        return {"name": name}


app = Litestar([get_user, fast_user, quick_sleep, Reports])
"""

WAIT_LINE = line_of(APP, "threading.Event().wait(0.2)")
SLEEP_LINE = line_of(APP, "time.sleep(0.2)")
QUICK_SLEEP_LINE = line_of(APP, "time.sleep(0.001)")

# GET /users/3, as Litestar's router knows it, with the advice in Litestar's words.
USER_REPORT = [
    f"noblock: GET /users/{{user_id}} held the event loop for * ms at app.py:{WAIT_LINE} "
    "(budget 50 ms)",
    "  handler   app:get_user",
    f"  call      app.py:{WAIT_LINE} in get_user",
    "                threading.Event().wait(0.2)",
    "                ^^^^^^^^^^^^^^^^^^^^^^^^^^^",
    "  why       a blocking wait on a lock, event or queue",
    "  instead   use `asyncio.Lock`/`Event`/`Queue` (or anyio's), or "
    "`await anyio.to_thread.run_sync(...)` around the wait",
    "            or make the handler a plain `def` with `sync_to_thread=True`: "
    "Litestar runs it in a worker thread",
]

REPORT_REPORT = [
    f"noblock: GET /reports/{{name}} held the event loop for * ms at app.py:{SLEEP_LINE} "
    "(budget 50 ms)",
    "  handler   app:Reports.report",
    f"  call      app.py:{SLEEP_LINE} in Reports.report",
    "  why       `time.sleep` stops the whole loop",
]


def assert_in_a_row(result: pytest.RunResult, expected: list[str]) -> None:
    """The lines one right after the other (an underline must sit under its source line)."""
    lines = result.stdout.lines
    for start in range(len(lines) - len(expected) + 1):
        if all(
            _fnmatch(line, pattern)
            for line, pattern in zip(lines[start : start + len(expected)], expected, strict=True)
        ):
            return
    pytest.fail(
        "lines not found in a row:\n" + "\n".join(expected) + "\n--- in ---\n" + result.stdout.str()
    )


def _fnmatch(line: str, pattern: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(line, pattern.replace("[", "[[]"))


def no_framework_but_litestar(result: pytest.RunResult) -> None:
    for other in ("*run_in_threadpool*", "*FastAPI*", "*Starlette*", "*not routed*"):
        result.stdout.no_fnmatch_line(other)


# --- httpx's ASGITransport (noblock_client): the app runs on the test's own loop ---------


def test_asgitransport_names_the_handler_and_advises_in_litestars_words(
    project: Project,
) -> None:
    project.app(APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_user(noblock_client):
            assert (await noblock_client.get("/fast/1")).status_code == 200
            assert (await noblock_client.get("/users/3")).json() == {"id": 3}

        @pytest.mark.noblock
        async def test_controller(noblock_client):
            assert (await noblock_client.get("/reports/weekly")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(failed=2)
    assert_in_a_row(result, USER_REPORT[:5])
    result.stdout.fnmatch_lines(USER_REPORT)
    result.stdout.fnmatch_lines(REPORT_REPORT)
    no_framework_but_litestar(result)


CLEAN_ASYNC = """
import asyncio
import pytest

@pytest.mark.noblock(20)
async def test_back_to_back(CLIENT):
    for user_id in range(50):
        assert (await CLIENT.get(f"/fast/{user_id}")).json() == {"id": user_id}

@pytest.mark.noblock(20)
async def test_concurrent(CLIENT):
    responses = await asyncio.gather(*(CLIENT.get(f"/fast/{n}") for n in range(50)))
    assert [r.json()["id"] for r in responses] == list(range(50))
"""


def test_asgitransport_clean_handler_passes_50_and_50(project: Project) -> None:
    project.app(APP)
    project.tests(CLEAN_ASYNC.replace("CLIENT", "noblock_client"))
    result = project.run()
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line("*GET /fast/* held the event loop*")
    result.stdout.no_fnmatch_line("*nothing was watched*")


def test_strict_mode_names_a_fast_blocking_call(project: Project) -> None:
    project.app(APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock(strict=True)
        async def test_quick(noblock_client):
            assert (await noblock_client.get("/quick-sleep")).json() == {"ok": True}
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "noblock strict: GET /quick-sleep called time.sleep on the event loop "
            f"at app.py:{QUICK_SLEEP_LINE}",
            "  request   GET /quick-sleep",
            "  handler   app:quick_sleep",
            f"  call      app.py:{QUICK_SLEEP_LINE} in quick_sleep",
        ]
    )
    no_framework_but_litestar(result)


# --- Litestar's AsyncTestClient, in an async test -------------------------------------


@pytest.mark.parametrize("entered", [True, False], ids=["async-with", "no-with"])
def test_async_test_client_blocking_fails_at_the_handler(project: Project, entered: bool) -> None:
    project.app(APP)
    source = """
        import pytest
        from litestar.testing import AsyncTestClient
        from app import app

        @pytest.mark.noblock
        async def test_user():
            async with AsyncTestClient(app) as client:
                assert (await client.get("/fast/1")).status_code == 200
                assert (await client.get("/users/3")).json() == {"id": 3}

        @pytest.mark.noblock
        async def test_controller():
            async with AsyncTestClient(app) as client:
                assert (await client.get("/reports/weekly")).status_code == 200
        """
    if not entered:
        source = source.replace(
            "async with AsyncTestClient(app) as client:", "if client := AsyncTestClient(app):"
        )
    project.tests(source)
    result = project.run()
    result.assert_outcomes(failed=2)
    assert_in_a_row(result, USER_REPORT[:5])
    result.stdout.fnmatch_lines(USER_REPORT)
    result.stdout.fnmatch_lines(REPORT_REPORT)
    no_framework_but_litestar(result)
    # The test's loop only waited for the portal's: that is neither a hold nor a note.
    result.stdout.no_fnmatch_line("*the test's own code held*")


def test_async_test_client_clean_handler_passes_50_and_50(project: Project) -> None:
    project.app(APP)
    source = CLEAN_ASYNC.replace("CLIENT", "client")
    project.tests(
        source
        + """
@pytest.fixture
async def client():
    from litestar.testing import AsyncTestClient
    from app import app

    async with AsyncTestClient(app) as client:
        yield client
"""
    )
    result = project.run()
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line("*GET /fast/* held the event loop*")
    result.stdout.no_fnmatch_line("*nothing was watched*")


def test_async_test_client_in_a_fixture_is_watched(project: Project) -> None:
    # The usual suite: the client (and its portal) is entered before the test body.
    project.app(APP)
    project.tests(
        """
        import pytest
        from litestar.testing import AsyncTestClient
        from app import app

        @pytest.fixture
        async def client():
            async with AsyncTestClient(app) as client:
                yield client

        @pytest.mark.noblock
        async def test_user(client):
            assert (await client.get("/users/3")).json() == {"id": 3}
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(USER_REPORT[:3])


# --- Litestar's TestClient, in a sync test ---------------------------------------------


@pytest.mark.parametrize("entered", [True, False], ids=["with", "no-with"])
def test_test_client_blocking_fails_clean_passes(project: Project, entered: bool) -> None:
    project.app(APP)
    source = """
        import pytest
        from litestar.testing import TestClient
        from app import app

        @pytest.mark.noblock
        def test_user():
            with TestClient(app) as client:
                assert client.get("/fast/1").status_code == 200
                assert client.get("/users/3").json() == {"id": 3}

        @pytest.mark.noblock(20)
        def test_clean():
            with TestClient(app) as client:
                for user_id in range(50):
                    assert client.get(f"/fast/{user_id}").json() == {"id": user_id}
        """
    if not entered:
        source = source.replace("with TestClient(app) as client:", "if client := TestClient(app):")
    project.tests(source)
    result = project.run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["FAILED test_app.py::test_user - *noblock: GET /users/{user_id} held*"]
    )
    assert_in_a_row(result, USER_REPORT[:5])
    result.stdout.fnmatch_lines(USER_REPORT)
    no_framework_but_litestar(result)
    result.stdout.no_fnmatch_line("*nothing was watched*")


def test_test_client_concurrent_requests_pass(project: Project) -> None:
    project.app(APP)
    project.tests(
        """
        from concurrent.futures import ThreadPoolExecutor
        import pytest
        from litestar.testing import TestClient
        from app import app

        @pytest.mark.noblock(20)
        def test_concurrent():
            with TestClient(app) as client, ThreadPoolExecutor(10) as pool:
                responses = list(pool.map(lambda n: client.get(f"/fast/{n}"), range(50)))
            assert [r.json()["id"] for r in responses] == list(range(50))
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*GET /fast/* held the event loop*")
    result.stdout.no_fnmatch_line("*nothing was watched*")


def test_lifespan_hold_is_a_note(project: Project) -> None:
    project.app(
        """
        import time
        from litestar import Litestar, get

        def warm_cache() -> None:
            time.sleep(0.2)

        @get("/fast")
        async def fast() -> dict[str, bool]:
            return {"ok": True}

        app = Litestar([fast], on_startup=[warm_cache])
        """
    )
    project.tests(
        """
        import pytest
        from litestar.testing import AsyncTestClient, TestClient
        from app import app

        @pytest.mark.noblock
        def test_sync_startup():
            with TestClient(app) as client:
                assert client.get("/fast").status_code == 200

        # The test's loop waits for the portal's while the lifespan starts: not its code.
        @pytest.mark.noblock(count_test_code=True)
        async def test_async_startup():
            async with AsyncTestClient(app) as client:
                assert (await client.get("/fast")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line("*the test's own code held*")
    result.stdout.fnmatch_lines(
        [
            "*= noblock notes =*",
            "test_app.py::test_sync_startup: the app's lifespan held the event loop for * ms at "
            "app.py:5 (budget 50 ms); not counted against the app*",
        ]
    )


# --- nothing left behind ---------------------------------------------------------------


def test_nothing_patched_or_running_after_the_tests(project: Project) -> None:
    project.app(APP)
    project.tests(
        """
        import asyncio
        import threading
        import anyio.from_thread
        import pytest
        import litestar.testing.client.base as base
        from litestar.testing import AsyncTestClient, TestClient
        from litestar.testing.life_span_handler import LifeSpanHandler
        from litestar.testing.transport import TestClientTransport
        from app import app

        def methods():
            return {
                "handle_request": TestClientTransport.__dict__["handle_request"],
                "handle_async_request": TestClientTransport.__dict__["handle_async_request"],
                "__aenter__": AsyncTestClient.__dict__["__aenter__"],
                "__aexit__": AsyncTestClient.__dict__["__aexit__"],
                "lifespan": LifeSpanHandler.__dict__["lifespan"],
            }

        def now():
            return {
                "portal": anyio.from_thread.start_blocking_portal,
                "litestar portal": base.start_blocking_portal,
                "Handle._run": asyncio.Handle._run,
                **methods(),
            }

        ORIGINALS = now()

        @pytest.mark.noblock
        def test_sync_blocking():
            with TestClient(app) as client:
                client.get("/users/3")

        @pytest.mark.noblock
        async def test_async_blocking():
            async with AsyncTestClient(app) as client:
                await client.get("/users/3")

        @pytest.mark.noblock
        async def test_async_error():
            async with AsyncTestClient(app) as client:
                await client.get("/fast/1")
                raise RuntimeError("the test's own failure")

        def test_after():
            assert now() == ORIGINALS
            names = [thread.name for thread in threading.enumerate()]
            assert not [name for name in names if "noblock" in name], names
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1, failed=3)


def test_strict_mode_on_the_async_test_clients_portal(project: Project) -> None:
    # The app runs on the portal's loop thread: its calls there are recorded as well.
    project.app(APP)
    project.tests(
        """
        import pytest
        from litestar.testing import AsyncTestClient
        from app import app

        @pytest.mark.noblock(strict=True)
        async def test_quick():
            async with AsyncTestClient(app) as client:
                assert (await client.get("/quick-sleep")).json() == {"ok": True}

        @pytest.mark.noblock(strict=True)
        async def test_clean():
            async with AsyncTestClient(app) as client:
                assert (await client.get("/fast/1")).json() == {"id": 1}
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "noblock strict: GET /quick-sleep called time.sleep on the event loop "
            f"at app.py:{QUICK_SLEEP_LINE}",
            "  request   GET /quick-sleep",
            "  handler   app:quick_sleep",
            f"  call      app.py:{QUICK_SLEEP_LINE} in quick_sleep",
        ]
    )
    result.stdout.fnmatch_lines(["FAILED test_app.py::test_quick - noblock strict: *"])


def test_the_example_runs_on_its_own() -> None:
    # Not part of `pytest examples/` (the demo's count): run as its README says.
    root = Path(__file__).resolve().parent.parent
    result = run_example("examples/litestar")
    result.assert_outcomes(failed=1, passed=2)
    line = call_in("slow_book", "time.sleep", root / "examples" / "litestar" / "app.py").lineno
    result.stdout.fnmatch_lines(
        [
            "noblock: GET /slow-book held the event loop for * ms "
            f"at examples/litestar/app.py:{line} (budget 50 ms)",
            "  handler   examples.litestar.app:slow_book",
            f"  call      examples/litestar/app.py:{line} in slow_book",
        ]
    )
    result.stdout.no_fnmatch_line("*GET /fast-book held*")
    result.stdout.no_fnmatch_line("*GET /sync-book held*")


def test_trio_portals_and_websocket_sessions_are_watched(project: Project) -> None:
    source = """
        import time
        from litestar import Litestar, WebSocket, get, websocket

        @get("/slow")
        async def slow() -> dict[str, bool]:
            time.sleep(0.2)
            return {"ok": True}

        @websocket("/ws")
        async def echo(socket: WebSocket) -> None:
            await socket.accept()
            text = await socket.receive_text()
            time.sleep(0.25)
            await socket.send_text(text)
            await socket.close()

        app = Litestar([slow, echo])
        """
    project.app(source)
    line = line_of(source, "time.sleep(0.25)")
    project.tests(
        """
        import pytest
        from litestar.testing import AsyncTestClient, TestClient
        from app import app

        @pytest.mark.noblock
        def test_trio_sync():
            with TestClient(app, backend="trio") as client:
                assert client.get("/slow").status_code == 200

        @pytest.mark.noblock
        async def test_trio_async():
            async with AsyncTestClient(app, backend="trio") as client:
                assert (await client.get("/slow")).status_code == 200

        @pytest.mark.noblock
        def test_websocket():
            with TestClient(app) as client, client.websocket_connect("/ws") as socket:
                socket.send_text("hi")
                assert socket.receive_text() == "hi"
        """
    )
    result = project.run()
    result.assert_outcomes(failed=3)
    for name in ("test_trio_sync", "test_trio_async"):
        result.stdout.fnmatch_lines([f"FAILED test_app.py::{name} - *noblock: GET /slow held*"])
    result.stdout.fnmatch_lines(
        [
            f"noblock: WEBSOCKET /ws held the event loop for * ms at app.py:{line} (budget 50 ms)",
            "  handler   app:echo",
        ]
    )
