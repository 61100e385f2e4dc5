"""Naming what the framework was doing when a hold ran none of the app's own lines.

FastAPI and Starlette do real work around a handler: validating the request, running the
response through its model, building the OpenAPI document, compressing the body. A hold
there is reported at the framework's line (see `sites`); this table says in words which
phase of the request that was, so the user knows what to change (the response model, the
middleware) without reading the framework's source.
"""

from __future__ import annotations

from .stacks import FrameRule, Stack, first_match

# What the framework was doing. The outermost match names the phase: building the
# OpenAPI document encodes JSON too.
_PHASES: tuple[FrameRule, ...] = (
    ("fastapi.applications", "FastAPI.openapi", "building the OpenAPI document"),
    ("fastapi.openapi.utils", "get_openapi", "building the OpenAPI document"),
    ("fastapi.routing", "serialize_response", "serializing the response (its response model)"),
    ("fastapi.encoders", "jsonable_encoder", "encoding the response"),
    ("fastapi.dependencies.utils", "request_body_to_args", "validating the request body"),
    ("fastapi.dependencies.utils", "request_params_to_args", "validating the request"),
    ("starlette.requests", "Request.json", "parsing the request body"),
    ("starlette.requests", "Request.form", "parsing the request body"),
    # A middleware wraps everything beneath it: only its own work names a phase.
    (
        "starlette.middleware.gzip",
        "IdentityResponder.send_with_compression",
        "compressing the response (GZipMiddleware)",
    ),
    ("starlette.templating", "Jinja2Templates.TemplateResponse", "rendering a template"),
    ("starlette.responses", "Response.render", "rendering the response"),
    ("starlette.responses", "JSONResponse.render", "rendering the response"),
)


def find_phase(stack: Stack) -> tuple[int, str] | None:
    """The outermost frame of `stack` that starts a known phase, and the phase."""
    return first_match(stack, _PHASES)
