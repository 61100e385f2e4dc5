"""Warm-up: work an app does once, on a route's first request, told apart from work it repeats.

Many apps finish setting themselves up on the first request a route serves: Jinja compiles
the templates it renders, FastAPI and pydantic build the schemas of a model they meet for
the first time, a module imported inside a handler is imported, the OpenAPI document is
built. A server pays that once; a suite that builds a fresh app per test pays it in every
test, where it reads as a hold no user can fix.

A hold is warm-up on two pieces of evidence, both needed:

- it happened on the first request this app instance served on this route (requests that
  started before the route's first request finished count as first too), or it is the
  first time this route of this app did that kind of one-time work in a hold (its first
  request took another branch: a 403 that rendered no template), so a cost that comes
  back on the route's later requests fails as usual;
- most of its time went to one-time work, by what its samples were running: take that time
  out and the rest fits the budget. A `time.sleep` on a first request is still a hold.

Warm-up is told in a note and once per app and route in the session summary; the marker's
`count_warmup=True` (ini `noblock_count_warmup`) makes it fail like any hold.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from .adapters import all_one_time_work
from .origins import Request
from .stacks import MADE_BY, FrameRule, Stack, first_match

# The one-time work a frame does, beside what each framework's adapter lists. A sample is
# one-time work when any frame of it matches: the work runs beneath that frame.
_ONE_TIME_WORK: tuple[FrameRule, ...] = (
    ("importlib._bootstrap", "", "importing a module"),
    ("importlib._bootstrap_external", "", "importing a module"),
    ("jinja2.compiler", "", "compiling a template"),
    ("jinja2.parser", "", "compiling a template"),
    ("jinja2.lexer", "", "compiling a template"),
    # Reading a template's source, then compiling it (not the up-to-date checks of a
    # cached one, which every render makes).
    ("jinja2.loaders", "BaseLoader.load", "compiling a template"),
    ("jinja2.environment", "Environment.compile", "compiling a template"),
    ("jinja2.environment", "Environment._parse", "compiling a template"),
    ("mako.template", "", "compiling a template"),
    ("pydantic._internal._generate_schema", "", "building a pydantic schema"),
    ("pydantic._internal._schema_gather", "", "building a pydantic schema"),
    ("pydantic._internal._model_construction", "", "building a pydantic model"),
    ("pydantic.json_schema", "", "building a JSON schema"),
    ("pydantic.type_adapter", "TypeAdapter.__init__", "building a pydantic schema"),
    ("babel.localedata", "load", "loading locale data"),
    ("sqlalchemy.orm.mapper", "_configure_registries", "configuring SQLAlchemy's mappers"),
    ("re._compiler", "", "compiling a regular expression"),
    ("re._parser", "", "compiling a regular expression"),
    ("sre_compile", "", "compiling a regular expression"),
)


# One-time work that names what it makes: a template is compiled once per environment and a
# module imported once, so compiling another template is new work, compiling the same one
# again is not (an environment rebuilt on every request).
MADE_BY.update(
    {
        ("jinja2.environment", "Environment._load_template"): "name",
        ("importlib._bootstrap", "_find_and_load"): "name",
    }
)


def one_time_work(stack: Stack) -> str | None:
    """The one-time work `stack` (outermost frame first) was doing, if any."""
    found = first_match(stack, _ONE_TIME_WORK + all_one_time_work())
    return found[1] if found is not None else None


class WarmUp(NamedTuple):
    work: str
    # What the samples doing it were making, by the hashes of its names (see `MADE_BY`).
    made: frozenset[int]


def classify(
    weighed: Sequence[tuple[Stack, float]], held_s: float, budget_s: float
) -> WarmUp | None:
    """The one-time work a hold was, when taking it out leaves the hold within budget."""
    total = sum(weight for _, weight in weighed)
    if total <= 0:
        return None
    per_work: dict[str, float] = {}
    made: dict[str, set[int]] = {}
    for stack, weight in weighed:
        work = one_time_work(stack)
        if work is not None:
            per_work[work] = per_work.get(work, 0.0) + weight
            made.setdefault(work, set()).update(
                frame.made for frame in stack if frame.made is not None
            )
    if not per_work:
        return None
    rest_s = held_s * (1 - sum(per_work.values()) / total)
    if rest_s > budget_s:
        return None
    work = max(per_work, key=per_work.__getitem__)
    return WarmUp(work, frozenset(made[work]))


class _Served(NamedTuple):
    app: weakref.ref[Any]
    # {route: the sequence number at which the route's first request finished}
    routes: dict[tuple[Any, ...], int]
    # (route, one-time work, what it made or None) a hold of the route was found to be
    warmed_up: set[tuple[tuple[Any, ...], str, int | None]]


# What each live app instance has served, by id(app).
_served: dict[int, _Served] = {}
sequence: Callable[[], int] = itertools.count().__next__
"""Numbers requests' starts and ends in one order, safe from any thread."""


def finished(request: Request) -> None:
    """At the end of each tracked request: was it among its route's first on this app?"""
    entry = _entry(request)
    if entry is not None:
        first_finished = entry.routes.setdefault(_route(request), sequence())
        request.first_on_route = request.started < first_finished


def first_time(request: Request, work: str, made: frozenset[int]) -> bool:
    """Whether a hold of this request's route doing `work` is the route's first on its app
    (the first to make one of `made`, when the work names what it makes); the next one
    making the same is not."""
    entry = _entry(request)
    if entry is None:
        return False
    route = _route(request)
    done: set[tuple[tuple[Any, ...], str, int | None]] = {(route, work, name) for name in made}
    if not done:
        done.add((route, work, None))
    if done <= entry.warmed_up:
        return False
    entry.warmed_up.update(done)
    return True


def _entry(request: Request) -> _Served | None:
    app = request.served_app()
    if app is None:
        return None
    key = id(app)
    entry = _served.get(key)
    if entry is None or entry.app() is not app:
        try:
            reference = weakref.ref(app, _forget(key))
        except TypeError:
            return None  # an app that cannot be referenced weakly is never said to warm up
        entry = _served[key] = _Served(reference, {}, set())
    return entry


def _route(request: Request) -> tuple[Any, ...]:
    scope = request.scope
    # Starlette's router writes its route into the scope; other frameworks' adapters name
    # the endpoint.
    return (
        scope.get("type"),
        scope.get("method"),
        id(scope.get("route") or scope.get("endpoint") or request.endpoint),
    )


def _forget(key: int) -> Callable[[weakref.ref[Any]], None]:
    def forget(reference: weakref.ref[Any]) -> None:
        entry = _served.get(key)
        if entry is not None and entry.app is reference:
            del _served[key]

    return forget
