"""The options of `pytest --noblock-sweep`, apart from the sweep itself (see `sweep`).

pytest imports the plugin in every run, and the sweep's machinery is a module's worth of
classes that only a sweep needs: the plugin reads its options from here and imports
`sweep` when one is asked for.
"""

from __future__ import annotations

import pytest

DEFAULT_EXAMPLES = 5
DEFAULT_SEED = 0
# Where FastAPI and Litestar publish the schema, tried in this order.
SCHEMA_PATHS = ("/openapi.json", "/schema/openapi.json")


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("noblock")
    group.addoption(
        "--noblock-sweep",
        dest="noblock_sweep",
        action="store_true",
        default=False,
        help="one test per operation of the app's OpenAPI schema, each sending generated "
        "requests under the watch (needs pytest-noblock[sweep]).",
    )
    group.addoption(
        "--noblock-sweep-examples",
        dest="noblock_sweep_examples",
        default=None,
        metavar="N",
        help=f"requests generated per operation (default {DEFAULT_EXAMPLES}).",
    )
    group.addoption(
        "--noblock-sweep-seed",
        dest="noblock_sweep_seed",
        default=None,
        metavar="N",
        help=f"the seed the requests are drawn from (default {DEFAULT_SEED}): the same seed "
        "sends the same requests.",
    )
    group.addoption(
        "--noblock-sweep-include",
        dest="noblock_sweep_include",
        action="append",
        default=[],
        metavar="PATTERN",
        help='sweep only matching operations: "GET /items/*", "/admin/*", "tag:users" '
        "(repeatable; adds to the ini option noblock_sweep_include).",
    )
    group.addoption(
        "--noblock-sweep-exclude",
        dest="noblock_sweep_exclude",
        action="append",
        default=[],
        metavar="PATTERN",
        help='leave matching operations out: "DELETE *", "/admin/*", "tag:internal" '
        "(repeatable; adds to the ini option noblock_sweep_exclude).",
    )
    group.addoption(
        "--noblock-sweep-no-strict",
        dest="noblock_sweep_strict",
        action="store_false",
        default=None,
        help="time the sweep's requests only: known blocking calls under the budget pass.",
    )
    group.addoption(
        "--noblock-sweep-schema",
        dest="noblock_sweep_schema",
        default=None,
        metavar="PATH",
        help="the app's OpenAPI schema: a file, or the path the app serves it at (default: "
        f"{' then '.join(SCHEMA_PATHS)}).",
    )
    parser.addini(
        "noblock_sweep_include", help="operations --noblock-sweep sweeps.", type="linelist"
    )
    parser.addini(
        "noblock_sweep_exclude", help="operations --noblock-sweep leaves out.", type="linelist"
    )
    parser.addini(
        "noblock_sweep_strict",
        help="--noblock-sweep fails on known blocking calls however fast (default true).",
        type="bool",
        default=True,
    )
    parser.addini(
        "noblock_sweep_schema", help="the app's OpenAPI schema for --noblock-sweep.", default=""
    )
