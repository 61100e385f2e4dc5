"""Warm-up against recurring cost: one-time work on a route's first request, or on every one.

Many apps finish setting up on a route's first request: Jinja compiles the template it
renders, a module imported inside the handler is imported, a model built from config is
built and cached. A suite that builds a fresh app per test pays that in every test. The
clean cases here are that warm-up, each on its own route, each well over the budget: their
app is built per test (`make_app`, `app_factory=True`), so every repetition of a case is a
route's first request on a fresh app, and the lazily imported module is forgotten with the
old app, as a fresh worker process would start without it.

The blocking cases do the same work on every request, as an app that builds a Jinja
environment per request does: each sends two requests, and the second is the recurring cost.
"""

from __future__ import annotations

import gc
import importlib
import sys
from typing import Annotated, Any

import jinja2
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, create_model

from corpus import Case

SLOW_IMPORT = "corpus.slow_import"


def _section(i: int) -> str:
    return (
        f'<section id="s{i}">{{% if rows{i} is defined %}}{{% for row in rows{i} %}}'
        f'<tr class="{{{{ loop.cycle("odd", "even") }}}}"><td>{{{{ row.name | title }}}}</td>'
        f"<td>{{{{ row.price | round(2) }}}}</td>"
        f'{{% if row.tags %}}<td>{{{{ row.tags | join(", ") }}}}</td>{{% endif %}}</tr>'
        f"{{% endfor %}}{{% else %}}<p>{{{{ title }}}} {i}</p>{{% endif %}}</section>\n"
    )


# A big report page: compiling it takes ~200 ms, rendering it well under a millisecond.
TEMPLATES = {"report.html": "".join(_section(i) for i in range(160))}

# A report model built from config: 40 sections of 60 optional, length-limited fields.
SECTION_FIELDS: dict[str, Any] = {
    f"field{j}": (list[Annotated[str, Field(max_length=j + 1)]] | None, None) for j in range(60)
}
SECTIONS = [f"section{i}" for i in range(40)]


def build_report_model() -> type[BaseModel]:
    """The report model (~200 ms): once per app when cached, per request when not."""
    sections: dict[str, Any] = {}
    for name in SECTIONS:
        section = create_model(name.title(), **SECTION_FIELDS)  # BLOCKS: create_model_per_request
        sections[name] = (section, None)
    return create_model("Report", **sections)  # BLOCKS: create_model_per_request


def make_app() -> FastAPI:
    """A fresh app, as a suite's app fixture builds one per test."""
    app = FastAPI()
    # The app's own template environment (as an admin site or a Starlette `Jinja2Templates`
    # built with the app has): it compiles each template on its first render, then caches it.
    templates = jinja2.Environment(loader=jinja2.DictLoader(TEMPLATES), autoescape=True)
    models: dict[str, type[BaseModel]] = {}
    # A fresh worker process has not imported the heavy module yet: neither has a fresh app.
    sys.modules.pop(SLOW_IMPORT, None)

    @app.get("/report-page")
    async def report_page() -> HTMLResponse:
        page = templates.get_template("report.html").render(title="Report")
        return HTMLResponse(page)

    @app.get("/report-totals")
    async def report_totals() -> dict[str, Any]:
        engine = importlib.import_module(SLOW_IMPORT)
        return {"total": engine.TABLE_TOTAL}

    @app.get("/report-schema")
    async def report_schema() -> dict[str, Any]:
        if "report" not in models:
            models["report"] = build_report_model()
        return {"sections": len(models["report"].model_fields)}

    @app.get("/report-page-fresh-env")
    async def report_page_fresh_env() -> HTMLResponse:
        environment = jinja2.Environment(loader=jinja2.DictLoader(TEMPLATES), autoescape=True)
        template = environment.get_template("report.html")  # BLOCKS: jinja_environment_per_request
        return HTMLResponse(template.render(title="Report"))

    @app.get("/report-schema-uncached")
    async def report_schema_uncached() -> dict[str, Any]:
        return {"sections": len(build_report_model().model_fields)}

    return app


def probe_jinja_environment() -> None:
    environment = jinja2.Environment(loader=jinja2.DictLoader(TEMPLATES), autoescape=True)
    environment.get_template("report.html").render(title="Report")


def probe_create_model() -> None:
    """The model built alone, without garbage collections: building it allocates enough to set
    off a full collection of the test process's heap now and then, which the in-place referee
    leaves out of a step too."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        build_report_model()
    finally:
        if enabled:
            gc.enable()


def twice(path: str) -> str:
    """Two requests to one route: the first may be warm-up, the second is the recurring cost."""
    return (
        f'r = await client.get("{path}")\nassert r.status_code == 200, r.text\n'
        f'r = await client.get("{path}")\nassert r.status_code == 200, r.text\n'
    )


FIRST = "first request of a fresh app (app built per test)"
EVERY = "handler, every request (2 requests)"

CASES = [
    Case(
        "clean_warmup_jinja_compile",
        False,
        "Jinja template compile",
        FIRST,
        twice("/report-page"),
        app_attr="make_app",
        app_factory=True,
        requests=2,
    ),
    Case(
        "clean_warmup_lazy_import",
        False,
        "slow module import",
        FIRST,
        twice("/report-totals"),
        app_attr="make_app",
        app_factory=True,
        requests=2,
    ),
    Case(
        "clean_warmup_pydantic_model",
        False,
        "pydantic create_model, cached",
        FIRST,
        twice("/report-schema"),
        app_attr="make_app",
        app_factory=True,
        requests=2,
    ),
    Case(
        "jinja_environment_per_request",
        True,
        "Jinja environment + compile",
        EVERY,
        twice("/report-page-fresh-env"),
        probe_jinja_environment,
        app_attr="make_app",
        app_factory=True,
        requests=2,
    ),
    Case(
        "create_model_per_request",
        True,
        "pydantic create_model",
        EVERY,
        twice("/report-schema-uncached"),
        probe_create_model,
        app_attr="make_app",
        app_factory=True,
        requests=2,
    ),
]
