"""Where a hold is said to be: a line the user can act on, the same on every run.

The site is the app's own line that led into the work, or, when the app has no frame on
the stack at all, the framework's line and phase; never the deepest library line of one
sample, and never a line of the plugin itself.
"""

from __future__ import annotations

import json
import re

# Kept in sys.modules between in-process runs (see test_kinds.py).
import fastapi  # noqa: F401
import pytest
from conftest import Project, line_of

PLUGIN_PATH = re.compile(r"pytest_noblock[/\\]")


def assert_plugin_never_named(result: pytest.RunResult) -> None:
    named = [line for line in result.stdout.lines if PLUGIN_PATH.search(line)]
    assert not named, "the report names the plugin:\n" + "\n".join(named)


HUGE_RESPONSE_APP = """
    from fastapi import FastAPI
    from pydantic import BaseModel

    app = FastAPI()

    class Row(BaseModel):
        id: int
        name: str
        tags: list[str]

    @app.get("/rows", response_model=list[Row])
    async def rows():
        return ROWS

    ROWS = [{"id": n, "name": f"row {n}", "tags": ["a", "b"]} for n in range(150_000)]
    """


def test_a_hold_serializing_a_huge_response_never_names_the_plugin(project: Project) -> None:
    project.app(HUGE_RESPONSE_APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock(20)
        async def test_rows(noblock_client):
            assert (await noblock_client.get("/rows")).status_code == 200
        """
    )
    result = project.run("-vv")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["noblock: GET /rows held the event loop for *"])
    assert_plugin_never_named(result)


def test_test_code_building_a_huge_string_is_named_at_its_line(project: Project) -> None:
    # Mostly system time (page faults) in one C call that keeps the GIL: only a CPU-time
    # alarm that counts system time sees it while it runs.
    source = """
        import pytest

        @pytest.mark.noblock(20, count_test_code=True)
        async def test_big():
            data = "x" * (200 * 2**20)
            assert len(data) > 0
        """
    project.app("app = None\n")
    project.tests(source)
    result = project.run("-vv")
    result.assert_outcomes(failed=1)
    # The alarm's handler runs at the next call after the C call returned: on the line
    # that follows it here, still in the test's own code.
    result.stdout.fnmatch_lines(
        [
            "noblock: the test's own code held the event loop for * at test_app.py:* (budget 20*",
            "  call      test_app.py:* in test_big",
        ]
    )
    assert_plugin_never_named(result)


def site_of(result: pytest.RunResult) -> str:
    """The `call` field of the one hold in a report: `path:line in function`."""
    calls = [line for line in result.stdout.lines if line.startswith("  call      ")]
    assert len(calls) == 1, result.stdout.str()
    return calls[0].removeprefix("  call      ")


def test_a_hold_with_no_app_line_is_named_at_the_frameworks_phase_the_same_every_run(
    project: Project,
) -> None:
    project.app(HUGE_RESPONSE_APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock(20)
        async def test_rows(noblock_client):
            assert (await noblock_client.get("/rows")).status_code == 200
        """
    )
    sites = set()
    for _ in range(5):
        # A process each: in one process the heap of the earlier runs makes the garbage
        # collector's share (not counted) of this allocation-heavy hold grow run by run.
        result = project.run_subprocess()
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(
            [
                "noblock: GET /rows held the event loop for * ms at fastapi/*",
                "  handler   app:rows",
                "  call      fastapi/*",
                "  phase     serializing the response (its response model): "
                "no line of the app's own code was running",
            ]
        )
        sites.add(site_of(result))
    assert len(sites) == 1, sites


def test_a_baseline_of_a_framework_phase_hold_stays_matched(project: Project) -> None:
    project.app(HUGE_RESPONSE_APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock(20)
        async def test_rows(noblock_client):
            assert (await noblock_client.get("/rows")).status_code == 200
        """
    )
    project.run_subprocess("--noblock-baseline=baseline.json").assert_outcomes(passed=1)
    for _ in range(3):
        result = project.run_subprocess("--noblock-baseline=baseline.json")
        result.assert_outcomes(passed=1)
        result.stdout.no_fnmatch_line("*baseline entr* gone*")


TEMPLATES_AND_GZIP_APP = """
    import binascii
    import os

    from fastapi import FastAPI, Request
    from fastapi.middleware.gzip import GZipMiddleware
    from fastapi.templating import Jinja2Templates

    app = FastAPI()
    app.add_middleware(GZipMiddleware)
    templates = Jinja2Templates(directory="templates")
    BLOB = binascii.hexlify(os.urandom(1_000_000)).decode()

    @app.get("/")
    async def index(request: Request):
        return templates.TemplateResponse(request, "index.html", {"blob": BLOB})
    """

PART = (
    "{% set ns = namespace(n=0) %}{% for x in range(6000) %}{% set ns.n = ns.n + x %}"
    "{% endfor %}{{ ns.n }}\n"
)


# The first request compiles the templates unwatched; the second one's rendering is watched.
RENDERED_AFTER_COMPILING = """
    import pytest

    from pytest_noblock import noblock_paused

    @pytest.mark.noblock
    async def test_index(noblock_client):
        with noblock_paused():  # compiled: rendering is what is left
            assert (await noblock_client.get("/")).status_code == 200
        assert (await noblock_client.get("/")).status_code == 200
    """


ROUTES_APP = """
    import time
    from fastapi import APIRouter, FastAPI

    app = FastAPI()
    v1 = APIRouter(prefix="/v1")

    @app.patch("/users/{user_id}")
    async def update_user(user_id: str):
        time.sleep(0.2)
        return {}

    @v1.get("/orgs/{org}/items/{item_id}")
    async def item(org: str, item_id: int):
        time.sleep(0.2)
        return {}

    app.include_router(v1)
    """


def test_requests_are_named_by_their_route_template(project: Project) -> None:
    project.app(ROUTES_APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_user(noblock_client):
            await noblock_client.patch("/users/dc423d77-5f0e-4bd1-9b52-0c6f3f4a7d1e")

        @pytest.mark.noblock
        async def test_item(noblock_client):
            await noblock_client.get("/v1/orgs/acme/items/42")
        """
    )
    result = project.run("--noblock-report=report.json")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["noblock: PATCH /users/{user_id} held the event loop for *"])
    result.stdout.fnmatch_lines(
        ["noblock: GET /v1/orgs/{org}/items/{item_id} held the event loop for *"]
    )
    assert "dc423d77" not in result.stdout.str()
    report = (project.pytester.path / "report.json").read_text()
    assert "dc423d77" not in report
    assert "PATCH /users/{user_id}" in report


def test_a_plain_starlette_route_is_named_by_its_template(project: Project) -> None:
    project.app(
        """
        import time
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Mount, Route

        async def thing(request):
            time.sleep(0.2)
            return JSONResponse({})

        things = Route("/things/{n:int}/{rest:path}", thing)
        app = Starlette(routes=[Mount("/api", routes=[things])])
        """
    )
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_thing(noblock_client):
            await noblock_client.get("/api/things/7/a/b/c")
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["noblock: GET /api/things/{n}/{rest} held the event loop for *"])


def test_a_template_that_holds_most_of_the_time_is_named_at_its_line(
    project: Project,
) -> None:
    project.app(TEMPLATES_AND_GZIP_APP.replace("app.add_middleware(GZipMiddleware)", ""))
    templates = project.pytester.mkdir("templates")
    heavy = PART.replace("6000", "300000")
    (templates / "index.html").write_text(
        '<h1>{{ blob[:8] }}</h1>\n{% include "light.html" %}\n'
        '{% include "heavy.html" %}\n{% include "light.html" %}\n'
    )
    (templates / "light.html").write_text(PART)
    (templates / "heavy.html").write_text(heavy)
    project.tests(RENDERED_AFTER_COMPILING)
    result = project.run()
    result.assert_outcomes(failed=1)
    # Named at the heavy template's own line, with the include that led there on the way.
    result.stdout.fnmatch_lines(
        [
            "noblock: GET / held the event loop for * ms at templates/heavy.html:1 (budget 50 ms)",
            "  handler   app:index",
            "  call      templates/heavy.html:1 in root",
            "                {% set ns = namespace(n=0) %}*",
            "  landed in jinja2/*",
            f"  app stack app.py:{line_of(TEMPLATES_AND_GZIP_APP, 'TemplateResponse(')} in index",
            "            templates/index.html:3 in root",
            "            templates/heavy.html:1 in root",
        ]
    )


def test_collections_a_request_sets_off_are_counted_and_shown(project: Project) -> None:
    project.app(HUGE_RESPONSE_APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock(20)
        async def test_rows(noblock_client):
            assert (await noblock_client.get("/rows")).status_code == 200
        """
    )
    result = project.run_subprocess("--noblock-report=report.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["  timing    * ms wall, including * ms of garbage collection its own allocations set off*"]
    )
    hold = json.loads((project.pytester.path / "report.json").read_text())["tests"][0]["holds"][0]
    assert 0 < hold["young_gc_ms"] < hold["held_ms"]


def test_a_libraries_garbage_collection_callback_is_never_where_a_hold_landed(
    project: Project,
) -> None:
    # hypothesis keeps such a callback in every process that imported it: a sample taken
    # while it ran showed a hold of the app's allocations landing in hypothesis.
    project.app(
        """
        import gc
        from fastapi import FastAPI

        def timing_callback(phase, info):
            total = 0
            for number in range(3_000):
                total += number

        gc.callbacks.append(timing_callback)
        app = FastAPI()

        @app.get("/build")
        async def build():
            nodes = [[n] for n in range(1_500_000)]
            return len(nodes)
        """
    )
    project.tests(
        """
        import pytest

        @pytest.mark.noblock(20)
        async def test_build(noblock_client):
            assert (await noblock_client.get("/build")).status_code == 200
        """
    )
    # In a process of its own: the callback stays in `gc.callbacks` for good.
    result = project.run_subprocess("-vv")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["  call      app.py:14 in build"])
    result.stdout.no_fnmatch_line("*timing_callback*")


def test_time_spread_over_many_templates_and_gzip_is_named_at_the_line_that_led_into_it(
    project: Project,
) -> None:
    # lnbits' index page: forty included templates and a gzip pass over the page, no line
    # of them holding most of the time. The site is the app's line that rendered them all,
    # never gzip's deepest line, and it stays put from run to run.
    project.app(TEMPLATES_AND_GZIP_APP)
    templates = project.pytester.mkdir("templates")
    (templates / "index.html").write_text(
        "<h1>{{ blob }}</h1>\n" + "".join(f'{{% include "part{n}.html" %}}\n' for n in range(40))
    )
    for n in range(40):
        (templates / f"part{n}.html").write_text(PART)
    project.tests(
        """
        import pytest

        from pytest_noblock import noblock_paused

        @pytest.mark.noblock
        async def test_index(noblock_client):
            gzip = {"accept-encoding": "gzip"}
            with noblock_paused():  # compiled: rendering and compressing are what is left
                response = await noblock_client.get("/", headers=gzip)
                assert response.headers["content-encoding"] == "gzip"
            assert (await noblock_client.get("/", headers=gzip)).status_code == 200
        """
    )
    line = line_of(TEMPLATES_AND_GZIP_APP, "TemplateResponse(")
    for _ in range(3):
        result = project.run()
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(
            [
                f"noblock: GET / held the event loop for * ms at app.py:{line} (budget 50 ms)",
                "  handler   app:index",
                f"  call      app.py:{line} in index",
            ]
        )
        assert_plugin_never_named(result)


GARBAGE_APP = TEMPLATES_AND_GZIP_APP.replace(
    'templates = Jinja2Templates(directory="templates")',
    """templates = Jinja2Templates(directory="templates")
    # A heap the size of a long test run's: each full collection takes some 60 ms.
    HEAP = [[] for _ in range(1_000_000)]
    templates.env.globals["collect"] = lambda: gc.collect() and \"\"
    """,
).replace("import os", "import gc\n    import os")


def test_full_collections_in_the_middle_of_spread_work_do_not_move_the_site(
    project: Project,
) -> None:
    # A worker process deep into a long run has a big heap, and a full collection can land
    # in any template. Its time is not the hold's, so it is no line's either: the sample
    # taken when it ended must not outweigh the forty templates around it.
    project.app(GARBAGE_APP)
    templates = project.pytester.mkdir("templates")
    (templates / "index.html").write_text(
        "".join(f'{{% include "part{n}.html" %}}\n' for n in range(40))
    )
    for n in range(40):
        (templates / f"part{n}.html").write_text(PART)
    (templates / "part12.html").write_text(PART + "{{ collect() }}{{ collect() }}{{ collect() }}\n")
    project.tests(RENDERED_AFTER_COMPILING)
    line = line_of(GARBAGE_APP, "TemplateResponse(")
    for _ in range(3):
        result = project.run()
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(
            [
                f"noblock: GET / held the event loop for * ms at app.py:{line} (budget 50 ms)",
                f"  call      app.py:{line} in index",
                "  timing    * ms wall, *not counting * ms in full garbage collections*",
            ]
        )


def test_a_hold_in_a_comprehension_does_not_land_on_its_own_line(project: Project) -> None:
    # On 3.11 a comprehension runs in a frame of its own, on the same line: "landed in"
    # would name the line the report just showed. It names library code or nothing.
    project.app(
        """
        from fastapi import FastAPI

        app = FastAPI()

        @app.get("/squares")
        async def squares():
            total = sum([n * n for n in range(6_000_000)])
            return {"total": total}
        """
    )
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_squares(noblock_client):
            assert (await noblock_client.get("/squares")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["  call      app.py:7 in squares"])
    result.stdout.no_fnmatch_line("*landed in*")


APP_WORK_THEN_HUGE_RESPONSE_APP = HUGE_RESPONSE_APP.replace(
    """    async def rows():
        return ROWS
""",
    """    async def rows():
        checksum = sum(weigh(ROWS) for _ in range(20))
        return ROWS if checksum else []

    def weigh(rows):
        total = 0
        for row in rows:
            total += len(row["name"]) * row["id"] % 7
        return total
""",
)


def test_a_hold_split_between_the_app_and_the_framework_is_named_at_the_app_line(
    project: Project,
) -> None:
    # Close to half the time in the app's loop, the rest in FastAPI serializing the
    # response: the heavier half changed from run to run, and the site with it (a baseline
    # of unchanged code broke). The app's code is what the user acts on: it is named
    # whenever it holds a good share of the time (here a little under half).
    assert "checksum" in APP_WORK_THEN_HUGE_RESPONSE_APP
    project.app(APP_WORK_THEN_HUGE_RESPONSE_APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock(20)
        async def test_rows(noblock_client):
            assert (await noblock_client.get("/rows")).status_code == 200
        """
    )
    for _ in range(3):
        result = project.run()
        result.assert_outcomes(failed=1)
        assert site_of(result).startswith("app.py:"), result.stdout.str()
        result.stdout.no_fnmatch_line("  phase *")


INCLUDED_ROUTES_APP = """
    from fastapi import APIRouter, FastAPI
    from pydantic import BaseModel

    class Thing(BaseModel):
        name: str
        size: int
        tags: list[str] = []

    def make_app():
        router = APIRouter()
        for n in range(300):
            @router.post(f"/things{n}", response_model=Thing)
            async def create_thing(thing: Thing, limit: int = 10):
                return thing

        app = FastAPI()
        app.include_router(router, prefix="/api")
        return app
    """


def test_fastapis_route_state_build_is_named_at_its_phase_the_same_every_time(
    project: Project,
) -> None:
    # FastAPI (0.141 on) builds an included router's route state on the first request that
    # needs it: warm-up, but counted here. Its time spreads over FastAPI's and pydantic's
    # lines, and the site moved among four of them from one app to the next (a baseline
    # recorded with warm-up counted lost a third of its entries on the next run).
    project.app(INCLUDED_ROUTES_APP)
    project.pytester.makeconftest(
        """
        import pytest
        from app import make_app

        @pytest.fixture
        def noblock_app():
            return make_app()
        """
    )
    project.tests(
        """
        import pytest

        @pytest.mark.noblock(count_warmup=True)
        @pytest.mark.parametrize("n", range(4))
        async def test_thing(noblock_client, n):
            thing = {"name": "a", "size": 1}
            assert (await noblock_client.post("/api/things299", json=thing)).status_code == 200
        """
    )
    result = project.run_subprocess()
    result.assert_outcomes(failed=4)
    sites = {line for line in result.stdout.lines if line.startswith("  call      ")}
    assert len(sites) == 1, sites
    result.stdout.fnmatch_lines(
        ["  phase     building FastAPI's route state (once per app): no line of the app's *"]
    )


def test_a_hold_in_generated_code_does_not_land_in_a_file_nobody_can_open(
    project: Project,
) -> None:
    # Code made with exec (SQLAlchemy's attribute setters, namedtuple's methods) has the file
    # name "<string>": "landed in" names the nearest frame with a real file, or nothing.
    spin = "def spin(n):\n    t = 0\n    for i in range(n):\n        t += i\n    return t"
    project.app(
        f"""
        from fastapi import FastAPI

        app = FastAPI()
        generated = {{}}
        exec({spin!r}, generated)

        @app.get("/spin")
        async def spin():
            return {{"total": generated["spin"](6_000_000)}}
        """
    )
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_spin(noblock_client):
            assert (await noblock_client.get("/spin")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["  call      app.py:9 in spin"])
    result.stdout.no_fnmatch_line("*landed in <string>*")
