"""Warm-up: a route's first request on a fresh app does one-time work; that is not a hold.

Suites that build an app per test pay Jinja's template compile (or pydantic's schema
building) in every test. The plugin notes it once per app and route and fails only what
comes back: the same work on the route's later requests, or a real blocking call.

Each run gets a process of its own: compiling allocates a lot, and in the heap of many
in-process runs the garbage collector's share of it (not counted) grows run by run.
"""

from __future__ import annotations

import textwrap

# Kept in sys.modules between in-process runs (see test_kinds.py).
import fastapi  # noqa: F401
import jinja2  # noqa: F401
from conftest import Project, line_of

# ~300 blocks: compiling it takes 150-300 ms; rendering it well under a millisecond.
PAGE = "".join(
    f'{{% if user.n > {i} %}}<li class="c{i}">{{{{ user.name|upper }}}}</li>'
    f"{{% else %}}<p>{{{{ missing_{i} | default('-') }}}}</p>{{% endif %}}\n"
    for i in range(300)
)

APP_FACTORY = """
    import jinja2
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import HTMLResponse

    class User:
        n = 200
        name = "bob"

    def create_app():
        app = FastAPI()
        env = jinja2.Environment(loader=jinja2.FileSystemLoader("templates"))

        @app.get("/page", response_class=HTMLResponse)
        async def page():
            return env.get_template("page.html").render(user=User)

        @app.get("/guarded", response_class=HTMLResponse)
        async def guarded(request: Request):
            if "token" not in request.headers:
                raise HTTPException(403)
            page = "page.html"
            return env.get_template(page).render(user=User)

        @app.get("/account", response_class=HTMLResponse)
        async def account(request: Request):
            # A refusal rendered from a page of its own, as an admin site does.
            name = "page.html" if "token" in request.headers else "denied.html"
            return env.get_template(name).render(user=User)

        @app.get("/rebuilt", response_class=HTMLResponse)
        async def rebuilt():
            # A new environment on every request: its templates are compiled every time.
            fresh = jinja2.Environment(loader=jinja2.FileSystemLoader("templates"))
            return fresh.get_template("page.html").render(user=User)

        return app

    app = create_app()
    """

FRESH_APP_CONFTEST = """
    import pytest
    from app import create_app

    @pytest.fixture
    def noblock_app():
        return create_app()
    """

SHARED_APP_CONFTEST = """
    import pytest
    from app import app

    @pytest.fixture
    def noblock_app():
        return app
    """

THREE_TESTS = """
    import pytest

    @pytest.mark.noblock
    @pytest.mark.parametrize("n", [1, 2, 3])
    async def test_page(noblock_client, n):
        assert (await noblock_client.get("/page")).status_code == 200
    """


def write_project(project: Project, conftest: str, tests: str) -> None:
    project.pytester.makepyfile(app=textwrap.dedent(APP_FACTORY))
    project.pytester.makeconftest(textwrap.dedent(conftest))
    templates = project.pytester.mkdir("templates")
    (templates / "page.html").write_text(PAGE)
    (templates / "denied.html").write_text(PAGE.replace("<li", "<li hidden"))
    project.tests(tests)


def test_a_fresh_app_per_test_compiling_its_template_passes_with_a_note(project: Project) -> None:
    write_project(project, FRESH_APP_CONFTEST, THREE_TESTS)
    result = project.run_subprocess()
    result.assert_outcomes(passed=3)
    line = line_of(APP_FACTORY, 'env.get_template("page.html")')
    for n in (1, 2, 3):
        result.stdout.fnmatch_lines(
            [
                f"test_app.py::test_page[[]{n}]: warm-up: GET /page held the event loop for * ms "
                f"at app.py:{line} (budget 50 ms): compiling a template, on this app's first "
                "request to the route; not counted "
                "(count it with @pytest.mark.noblock(count_warmup=True))"
            ]
        )
    # Once per route in the session summary, with what it cost; not among the holds.
    result.stdout.fnmatch_lines(
        [
            "3 tests watched (3 requests), 0 failed on holds, 0 holds in test code (not blamed), "
            "3 warm-up holds noted",
            "warm-up on a route's first request to a fresh app (noted, not failed; "
            "count_warmup=True counts it):",
            "      3 x GET /page  app:create_app.<locals>.page: compiling a template, "
            "longest * ms, * ms in all",
        ]
    )
    result.stdout.no_fnmatch_line("holds per call site:")


def test_the_same_app_reused_warms_up_once(project: Project) -> None:
    write_project(project, SHARED_APP_CONFTEST, THREE_TESTS)
    result = project.run_subprocess()
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["test_app.py::test_page[[]1]: warm-up: GET /page held *"])
    result.stdout.no_fnmatch_line("test_app.py::test_page[[]2]*")
    result.stdout.no_fnmatch_line("test_app.py::test_page[[]3]*")
    result.stdout.fnmatch_lines(["      1 x GET /page  app:create_app.<locals>.page: *"])


def test_the_same_work_on_every_request_fails(project: Project) -> None:
    write_project(
        project,
        FRESH_APP_CONFTEST,
        """
        import pytest

        @pytest.mark.noblock
        async def test_rebuilt(noblock_client):
            for _ in range(3):
                assert (await noblock_client.get("/rebuilt")).status_code == 200
        """,
    )
    result = project.run_subprocess()
    result.assert_outcomes(failed=1)
    line = line_of(APP_FACTORY, 'return fresh.get_template("page.html")')
    # The first request is warm-up as far as anyone can tell; the two after it are not.
    result.stdout.fnmatch_lines(
        [
            "noblock: 2 holds of the event loop over the 50 ms budget; worst: "
            f"GET /rebuilt held the event loop for * ms at app.py:{line} (budget 50 ms)",
        ]
    )
    result.stdout.fnmatch_lines(["test_app.py::test_rebuilt: warm-up: GET /rebuilt held *"])


def test_count_warmup_fails_on_the_first_request(project: Project) -> None:
    write_project(
        project,
        FRESH_APP_CONFTEST,
        """
        import pytest

        @pytest.mark.noblock(count_warmup=True)
        async def test_page(noblock_client):
            assert (await noblock_client.get("/page")).status_code == 200
        """,
    )
    result = project.run_subprocess()
    result.assert_outcomes(failed=1)
    line = line_of(APP_FACTORY, 'env.get_template("page.html")')
    result.stdout.fnmatch_lines(
        [f"noblock: GET /page held the event loop for * ms at app.py:{line} (budget 50 ms)"]
    )


def test_the_ini_option_makes_warm_up_count(project: Project) -> None:
    write_project(project, FRESH_APP_CONFTEST, THREE_TESTS)
    project.ini(asyncio_mode="auto", noblock_count_warmup="true")
    result = project.run_subprocess()
    result.assert_outcomes(failed=3)


def test_a_blocking_call_on_a_routes_first_request_still_fails(project: Project) -> None:
    project.app(
        """
        import time
        from fastapi import FastAPI

        def create_app():
            app = FastAPI()

            @app.get("/once")
            async def once():
                time.sleep(0.2)
                return {}

            return app

        app = create_app()
        """
    )
    project.pytester.makeconftest(textwrap.dedent(FRESH_APP_CONFTEST))
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_once(noblock_client):
            assert (await noblock_client.get("/once")).status_code == 200
        """
    )
    result = project.run_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["noblock: GET /once held the event loop for * ms at app.py:*"])
    result.stdout.no_fnmatch_line("*warm-up*")


def test_an_import_inside_a_handler_is_warm_up(project: Project) -> None:
    # A module imported on the route's first request: slow to import (CPU work, which a
    # loaded machine cannot shorten), then cached.
    project.pytester.makepyfile(heavy="TABLE = sum(n * n for n in range(4_000_000))\n")
    project.app(
        """
        from fastapi import FastAPI

        app = FastAPI()

        @app.get("/lazy")
        async def lazy():
            import heavy  # noqa: F401
            return {}
        """
    )
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        @pytest.mark.parametrize("n", [1, 2])
        async def test_lazy(noblock_client, n):
            assert (await noblock_client.get("/lazy")).status_code == 200
        """
    )
    result = project.run_subprocess()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["test_app.py::test_lazy[[]1]: warm-up: GET /lazy held * importing a module, *"]
    )


def test_an_import_that_fails_the_test_says_to_import_at_start_up(project: Project) -> None:
    project.pytester.makepyfile(heavy="TABLE = sum(n * n for n in range(4_000_000))\n")
    project.app(
        """
        from fastapi import FastAPI

        app = FastAPI()

        @app.get("/lazy")
        async def lazy():
            import heavy  # noqa: F401
            return {}
        """
    )
    project.tests(
        """
        import pytest

        @pytest.mark.noblock(count_warmup=True)
        async def test_lazy(noblock_client):
            assert (await noblock_client.get("/lazy")).status_code == 200
        """
    )
    result = project.run_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "  why       importing a module while serving a request",
            "  instead   import it at the top of its module, so that it loads when the app starts",
        ]
    )


def test_a_routes_first_render_on_a_later_request_is_warm_up(project: Project) -> None:
    # The route's first request was refused before any template was rendered; the
    # second compiled the page (starlette-admin's access tests do so).
    write_project(
        project,
        FRESH_APP_CONFTEST,
        """
        import pytest

        @pytest.mark.noblock
        async def test_guarded(noblock_client):
            assert (await noblock_client.get("/guarded")).status_code == 403
            headers = {"token": "t"}
            assert (await noblock_client.get("/guarded", headers=headers)).status_code == 200
            assert (await noblock_client.get("/guarded", headers=headers)).status_code == 200
        """,
    )
    result = project.run_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "test_app.py::test_guarded: warm-up: GET /guarded held the event loop for * ms at "
            "app.py:*: compiling a template, the first time this app's route did it; "
            "not counted (count it with @pytest.mark.noblock(count_warmup=True))"
        ]
    )


def test_each_template_a_route_compiles_for_the_first_time_is_warm_up(project: Project) -> None:
    # The route's first request compiled its refusal page, the next one its real page:
    # two templates, each compiled once (starlette-admin's 403 page, then its list page).
    write_project(
        project,
        FRESH_APP_CONFTEST,
        """
        import pytest

        @pytest.mark.noblock
        async def test_account(noblock_client):
            assert (await noblock_client.get("/account")).status_code == 200
            headers = {"token": "t"}
            assert (await noblock_client.get("/account", headers=headers)).status_code == 200
            assert (await noblock_client.get("/account", headers=headers)).status_code == 200
        """,
    )
    result = project.run_subprocess()
    result.assert_outcomes(passed=1)
    # The notes come longest first: each is looked for on its own.
    for why in (
        "on this app's first request to the route",
        "the first time this app's route did it",
    ):
        result.stdout.fnmatch_lines(
            [
                "test_app.py::test_account: warm-up: GET /account held the event loop for * ms "
                f"at app.py:*: compiling a template, {why}; *"
            ]
        )


# Fourteen pages that each import a page of macros: Jinja checks that the macros' file is
# up to date on every import, and lets the GIL go while it does.
MACROS = "".join(
    f"{{% macro f{i}(name, value) %}}<label>{{{{ name }}}}</label>"
    f"<input name='{{{{ name }}}}' value='{{{{ value }}}}'>"
    "{% if value %}<b>{{ value|upper }}</b>{% endif %}{% endmacro %}\n"
    for i in range(20)
)
PART = "{% import 'macros.html' as m %}\n" + "".join(
    f"<div>{{{{ m.f{i % 20}('x{i}', 'v{i}') }}}}</div>"
    "{% for k in range(3) %}<span>{{ k }}</span>{% endfor %}\n"
    for i in range(30)
)


def test_a_sync_test_clients_first_render_importing_macros_is_warm_up(project: Project) -> None:
    # The client's loop runs in a thread of its own, where the watchdog can look only when
    # the loop lets the GIL go: at those up-to-date checks, between two compiles. Half the
    # samples of a render that is all compiling sat there, and 14 tests of 20 failed.
    project.app(
        """
        from fastapi import FastAPI, Request
        from fastapi.templating import Jinja2Templates

        def create_app():
            app = FastAPI()
            templates = Jinja2Templates(directory="templates")

            @app.get("/")
            async def index(request: Request):
                return templates.TemplateResponse(request, "index.html", {})

            return app

        app = create_app()
        """
    )
    templates = project.pytester.mkdir("templates")
    (templates / "macros.html").write_text(MACROS)
    for n in range(14):
        (templates / f"part{n}.html").write_text(PART)
    (templates / "index.html").write_text(
        "".join(f"{{% include 'part{n}.html' %}}\n" for n in range(14))
    )
    project.tests(
        """
        import pytest
        from fastapi.testclient import TestClient
        from app import create_app

        @pytest.mark.noblock
        @pytest.mark.parametrize("n", range(8))
        def test_first_render(n):
            with TestClient(create_app()) as client:
                assert client.get("/").status_code == 200
        """
    )
    result = project.run_subprocess()
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(["*8 warm-up holds noted*"])
