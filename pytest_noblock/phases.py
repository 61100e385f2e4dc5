"""Naming what the framework was doing when a hold ran none of the app's own lines.

Frameworks do real work around a handler: validating the request, running the response
through its model, building the OpenAPI document, compressing the body. A hold there is
reported at the framework's line (see `sites`); each framework's adapter lists the frames
that start such a phase, so the report says in words which phase of the request it was,
and the user knows what to change (the response model, the middleware) without reading
the framework's source.
"""

from __future__ import annotations

from .adapters import all_phases
from .stacks import Stack, first_match


def find_phase(stack: Stack) -> tuple[int, str] | None:
    """The outermost frame of `stack` that starts a known phase, and the phase."""
    return first_match(stack, all_phases())
