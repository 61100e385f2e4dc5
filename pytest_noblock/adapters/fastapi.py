"""FastAPI: a Starlette app with more work of its own around the handler.

Requests are named as Starlette names them. FastAPI's own phases (validating the request,
serializing the response through its model, building the OpenAPI document) are named, and
the work it does once per app (building a route's state on its first request, analysing
an endpoint's parameters, the OpenAPI document) is warm-up.
"""

from __future__ import annotations

from . import Framework, starlette

PHASES = (
    ("fastapi.applications", "FastAPI.openapi", "building the OpenAPI document"),
    ("fastapi.openapi.utils", "get_openapi", "building the OpenAPI document"),
    ("fastapi.routing", "serialize_response", "serializing the response (its response model)"),
    ("fastapi.encoders", "jsonable_encoder", "encoding the response"),
    ("fastapi.dependencies.utils", "request_body_to_args", "validating the request body"),
    ("fastapi.dependencies.utils", "request_params_to_args", "validating the request"),
    # An included router's routes get their state on the first request that needs them
    # (FastAPI 0.141 on): the time spreads over FastAPI's and pydantic's lines, and the
    # line that entered the build is the one that stays put.
    (
        "fastapi.routing",
        "_IncludedRouter.effective_candidates",
        "building FastAPI's route state (once per app)",
    ),
    (
        "fastapi.routing",
        "_IncludedRouter.effective_low_priority_routes",
        "building FastAPI's route state (once per app)",
    ),
)

ONE_TIME_WORK = (
    ("fastapi.openapi.utils", "get_openapi", "building the OpenAPI document"),
    # FastAPI (0.141 on) builds a route's state, and an included router's routes, on the
    # app's first request that needs them.
    ("fastapi.routing", "_populate_api_route_state", "building FastAPI's route state"),
    (
        "fastapi.routing",
        "_IncludedRouter._build_effective_context",
        "building FastAPI's route state",
    ),
    ("fastapi.dependencies.utils", "get_dependant", "analysing the endpoint's parameters"),
)

FRAMEWORK = Framework(
    name="FastAPI",
    packages=frozenset({"fastapi"}),
    endpoint=starlette.endpoint,
    route=starlette.route,
    thread_call=starlette.THREAD_CALL,
    sync_handler="or make the endpoint a plain `def`: FastAPI runs those in its thread pool",
    # Before Starlette's: building the OpenAPI document encodes JSON too.
    phases=PHASES + starlette.PHASES,
    one_time_work=ONE_TIME_WORK,
)
