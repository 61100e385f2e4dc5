"""Django async views: through `django.test.AsyncClient`, and served by Django's ASGI handler.

Each project runs in a subprocess: Django's settings are configured once per process, and
its URL resolver keeps the URL conf module it first imported.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Project, line_of, run_example

pytest.importorskip("django", reason="Django is in the test extra: pip install -e .[test]")

APP = """
import asyncio
import time

from django.conf import settings

settings.configure(ROOT_URLCONF="app", ALLOWED_HOSTS=["*"], SECRET_KEY="test")

from django.core.asgi import get_asgi_application
from django.http import JsonResponse
from django.urls import path
from django.views import View


async def slow(request):
    time.sleep(0.2)
    return JsonResponse({})


async def fast(request):
    await asyncio.sleep(0)
    return JsonResponse({"ok": True})


async def item(request, pk):
    time.sleep(0.2)
    return JsonResponse({"pk": pk})


class ReportView(View):
    async def get(self, request):
        time.sleep(0.2)
        return JsonResponse({})


def plain(request):
    time.sleep(0.2)
    return JsonResponse({})


async def tiny(request):
    time.sleep(0.001)
    return JsonResponse({})


urlpatterns = [
    path("slow/", slow),
    path("fast/", fast),
    path("items/<int:pk>/", item),
    path("report/", ReportView.as_view()),
    path("plain/", plain),
    path("tiny/", tiny),
]

app = get_asgi_application()
"""


def sleep_line(view: str) -> int:
    """The line of the `time.sleep` call in the view (or view class) `view`."""
    lines = APP.strip("\n").splitlines()
    start = next(i for i, line in enumerate(lines) if f" {view}(" in line)
    return next(i for i in range(start, len(lines)) if "time.sleep" in lines[i]) + 1


DJANGO_ADVICE = "            or make the view a plain `def`: Django runs those in a thread for you"


def run(project: Project, tests: str, *args: str) -> pytest.RunResult:
    project.app(APP)
    project.tests(tests)
    return project.run_subprocess(*args, timeout=120)


def test_async_client_names_the_request_the_view_and_the_line(project: Project) -> None:
    result = run(
        project,
        """
        import pytest
        from django.test import AsyncClient

        @pytest.mark.noblock
        async def test_slow():
            client = AsyncClient()
            assert (await client.get("/fast/")).status_code == 200
            assert (await client.get("/slow/")).status_code == 200

        @pytest.mark.noblock
        async def test_fast():
            client = AsyncClient()
            for _ in range(5):
                assert (await client.get("/fast/")).json() == {"ok": True}
        """,
    )
    result.assert_outcomes(passed=1, failed=1)
    line = sleep_line("slow")
    result.stdout.fnmatch_lines(
        [
            f"noblock: GET /slow/ held the event loop for * ms at app.py:{line} (budget 50 ms)",
            "  handler   app:slow",
            f"  call      app.py:{line} in slow",
            "                time.sleep(0.2)",
            "                ^^^^^^^^^^^^^^^",
            "  why       `time.sleep` stops the whole loop",
            "  instead   use `await asyncio.sleep(...)` (or `await anyio.sleep(...)`)",
            DJANGO_ADVICE,
        ]
    )
    result.stdout.fnmatch_lines(["FAILED test_app.py::test_slow - noblock: GET /slow/ held*"])
    result.stdout.no_fnmatch_line("*test's own code*")
    result.stdout.no_fnmatch_line("*GET /fast/ held*")


def test_route_template_and_class_based_view(project: Project) -> None:
    result = run(
        project,
        """
        import pytest
        from django.test import AsyncClient

        @pytest.mark.noblock
        async def test_item():
            assert (await AsyncClient().get("/items/7/")).json() == {"pk": 7}

        @pytest.mark.noblock
        async def test_class_based():
            assert (await AsyncClient().get("/report/")).status_code == 200
        """,
    )
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "noblock: GET /items/<int:pk>/ held the event loop for * ms "
            f"at app.py:{sleep_line('item')} (budget 50 ms)",
            "  handler   app:item",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "noblock: GET /report/ held the event loop for * ms "
            f"at app.py:{sleep_line('get')} (budget 50 ms)",
            "  handler   app:ReportView",
            f"  call      app.py:{sleep_line('get')} in ReportView.get",
        ]
    )


def test_a_url_conf_the_test_overrides_names_the_view(project: Project) -> None:
    project.pytester.makepyfile(
        test_urls="""
        import time
        from django.http import JsonResponse
        from django.urls import path

        async def archived(request, slug):
            time.sleep(0.2)
            return JsonResponse({})

        urlpatterns = [path("archive/<slug:slug>/", archived)]
        """
    )
    result = run(
        project,
        """
        import pytest
        from django.test import AsyncClient, override_settings

        @pytest.mark.noblock
        @override_settings(ROOT_URLCONF="test_urls")
        async def test_archived():
            assert (await AsyncClient().get("/archive/2026/")).status_code == 200
        """,
    )
    result.assert_outcomes(failed=1)
    # The override has ended when the report is written: the match is Django's own.
    result.stdout.fnmatch_lines(
        [
            "noblock: GET /archive/<slug:slug>/ held the event loop for * ms at test_urls.py:6 "
            "(budget 50 ms)",
            "  handler   test_urls:archived",
        ]
    )


def test_advice_in_djangos_words(project: Project, slow_http: str) -> None:
    app = f"""
import hashlib
import requests
from django.conf import settings

settings.configure(ROOT_URLCONF="app", ALLOWED_HOSTS=["*"], SECRET_KEY="test")

from django.core.asgi import get_asgi_application
from django.http import JsonResponse
from django.urls import path


async def upstream(request):
    return JsonResponse(requests.get({slow_http!r} + "/slow", timeout=5).json())


async def hashed(request):
    key = hashlib.pbkdf2_hmac("sha256", b"secret", b"salt", 900_000)
    return JsonResponse({{"n": len(key)}})


urlpatterns = [path("upstream/", upstream), path("hashed/", hashed)]
app = get_asgi_application()
"""
    project.app(app)
    project.tests(
        """
        import pytest
        from django.test import AsyncClient

        @pytest.mark.noblock
        async def test_upstream():
            assert (await AsyncClient().get("/upstream/")).status_code == 200

        @pytest.mark.noblock
        async def test_hashed():
            assert (await AsyncClient().get("/hashed/")).status_code == 200
        """
    )
    result = project.run_subprocess(timeout=120)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "  handler   app:upstream",
            "  instead   use `httpx.AsyncClient` (`await client.get(...)`), "
            "or `await sync_to_async(requests.get)(...)` (asgiref)",
            DJANGO_ADVICE,
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "  handler   app:hashed",
            "  instead   run it in a worker thread: `await sync_to_async(fn)(...)` (asgiref); "
            "it lets the GIL go, so the loop keeps serving",
            DJANGO_ADVICE,
        ]
    )
    # The hint table names no framework the app does not use.
    result.stdout.no_fnmatch_line("*run_in_threadpool*")
    result.stdout.no_fnmatch_line("*anyio.to_thread*")


def test_asgi_app_through_noblock_client(project: Project) -> None:
    result = run(
        project,
        """
        import pytest

        @pytest.mark.noblock
        async def test_item(noblock_client):
            assert (await noblock_client.get("/items/3/")).json() == {"pk": 3}

        @pytest.mark.noblock
        async def test_fast(noblock_client):
            assert (await noblock_client.get("/fast/")).json() == {"ok": True}
        """,
    )
    result.assert_outcomes(passed=1, failed=1)
    line = sleep_line("item")
    result.stdout.fnmatch_lines(
        [
            f"noblock: GET /items/<int:pk>/ held the event loop for * ms at app.py:{line} "
            "(budget 50 ms)",
            "  handler   app:item",
            f"  call      app.py:{line} in item",
        ]
    )
    # Django's ASGI handler serves each request in a task of its own: that is the view's.
    result.stdout.no_fnmatch_line("*in a task the request started*")


def test_asgi_app_through_starlettes_testclient(project: Project) -> None:
    result = run(
        project,
        """
        import pytest
        from starlette.testclient import TestClient
        from app import app

        @pytest.mark.noblock
        def test_item():
            # Django's ASGI handler serves no lifespan: no `with` block.
            assert TestClient(app).get("/items/5/").json() == {"pk": 5}
        """,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "noblock: GET /items/<int:pk>/ held the event loop for * ms "
            f"at app.py:{sleep_line('item')} (budget 50 ms)",
            "  handler   app:item",
        ]
    )


def test_clean_views_pass_50_back_to_back_and_50_concurrent(project: Project) -> None:
    result = run(
        project,
        """
        import asyncio
        import pytest
        from django.test import AsyncClient

        @pytest.mark.noblock(budget_ms=20)
        async def test_async_client():
            client = AsyncClient()
            for _ in range(50):
                assert (await client.get("/fast/")).json() == {"ok": True}
            responses = await asyncio.gather(*(client.get("/fast/") for _ in range(50)))
            assert [response.status_code for response in responses] == [200] * 50

        @pytest.mark.noblock(budget_ms=20)
        async def test_asgi(noblock_client):
            for _ in range(50):
                assert (await noblock_client.get("/fast/")).json() == {"ok": True}
            responses = await asyncio.gather(*(noblock_client.get("/fast/") for _ in range(50)))
            assert [response.status_code for response in responses] == [200] * 50

        @pytest.mark.noblock(budget_ms=20)
        async def test_plain_def_view():
            # Django runs a plain `def` view in a thread: the loop is free.
            assert (await AsyncClient().get("/plain/")).status_code == 200
        """,
    )
    result.assert_outcomes(passed=3)
    result.stdout.no_fnmatch_line("*held the event loop*")
    result.stdout.no_fnmatch_line("*nothing was watched*")


def test_strict_mode_names_a_fast_blocking_call(project: Project) -> None:
    result = run(
        project,
        """
        import pytest
        from django.test import AsyncClient

        @pytest.mark.noblock(strict=True)
        async def test_tiny():
            assert (await AsyncClient().get("/tiny/")).status_code == 200
        """,
    )
    result.assert_outcomes(failed=1)
    line = sleep_line("tiny")
    result.stdout.fnmatch_lines(
        [
            f"noblock strict: GET /tiny/ called time.sleep on the event loop at app.py:{line}",
            "  request   GET /tiny/",
            "  handler   app:tiny",
            f"  call      app.py:{line} in tiny",
        ]
    )


def test_sync_client_says_its_requests_were_not_watched(project: Project) -> None:
    result = run(
        project,
        """
        import pytest
        from django.test import Client

        @pytest.mark.noblock
        def test_sync_client():
            client = Client()
            assert client.get("/slow/").status_code == 200
            assert client.get("/fast/").status_code == 200
            assert client.get("/report/").status_code == 200
            assert client.get("/plain/").status_code == 200

        @pytest.mark.noblock
        def test_sync_view_only():
            assert Client().get("/plain/").status_code == 200
        """,
    )
    result.assert_outcomes(passed=2)
    # A plain `def` view runs no loop: only the async ones (a class-based one too) count.
    result.stdout.fnmatch_lines(
        [
            "*= noblock notes =*",
            "test_app.py::test_sync_client: 3 request(s) to async views through Django's sync "
            "`Client` were not watched (neither timed nor, in strict mode, checked for known "
            "blocking calls): Django runs each through `async_to_sync`, on a new event loop in "
            "another thread; use `AsyncClient` in an async test to watch them",
            "test_app.py::test_sync_view_only: nothing was watched: no event loop ran in this "
            "sync test*",
        ]
    )
    result.stdout.no_fnmatch_line("*test_sync_client: nothing was watched*")


def test_nothing_left_patched_after_the_test(project: Project) -> None:
    result = run(
        project,
        """
        import asyncio
        import pytest
        from django.test import AsyncClient, Client
        from django.test.client import AsyncClientHandler, ClientHandler

        ASYNC_CALL = AsyncClientHandler.__call__
        SYNC_CALL = ClientHandler.__call__
        RUN = asyncio.Handle._run

        @pytest.mark.noblock
        async def test_blocking():
            assert AsyncClientHandler.__call__ is not ASYNC_CALL
            await AsyncClient().get("/slow/")

        @pytest.mark.noblock
        async def test_raises():
            await AsyncClient().get("/fast/")
            raise RuntimeError("the test's own error")

        @pytest.mark.noblock
        def test_sync():
            assert ClientHandler.__call__ is not SYNC_CALL
            Client().get("/fast/")

        def test_after():
            assert AsyncClientHandler.__call__ is ASYNC_CALL
            assert ClientHandler.__call__ is SYNC_CALL
            assert asyncio.Handle._run is RUN
        """,
    )
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "FAILED test_app.py::test_blocking - noblock: GET /slow/ held*",
            "FAILED test_app.py::test_raises - RuntimeError*",
        ]
    )


def test_a_project_without_django_never_imports_it(project: Project) -> None:
    project.app(
        """
        from fastapi import FastAPI

        app = FastAPI()

        @app.get("/fast")
        async def fast():
            return {}
        """
    )
    project.tests(
        """
        import sys
        import pytest

        @pytest.mark.noblock
        async def test_fast(noblock_client):
            assert (await noblock_client.get("/fast")).status_code == 200
            assert "django" not in sys.modules

        @pytest.mark.noblock
        def test_sync():
            assert "django" not in sys.modules
        """
    )
    result = project.run_subprocess(timeout=120)
    result.assert_outcomes(passed=2)


def test_the_django_example_runs_on_its_own() -> None:
    """`pytest examples/django/` as examples/README.md tells users (not in the demo's count)."""
    root = Path(__file__).resolve().parent.parent
    result = run_example("examples/django/")
    result.assert_outcomes(failed=2, passed=1)
    line = line_of((root / "examples" / "django" / "app.py").read_text(), "pbkdf2_hmac")
    for test in ("test_signed_invoice", "test_signed_invoice_asgi"):
        result.stdout.fnmatch_lines(
            [f"FAILED examples/django/test_django.py::{test} - noblock: GET /invoices/*"]
        )
    result.stdout.fnmatch_lines(
        [
            "noblock: GET /invoices/<int:pk>/signed/ held the event loop for * ms "
            f"at examples/django/app.py:{line} (budget 50 ms)",
            "  handler   examples.django.app:signed_invoice",
            f"  call      examples/django/app.py:{line} in sign",
        ]
    )
    result.stdout.no_fnmatch_line("*signed_invoice_in_thread*held*")
