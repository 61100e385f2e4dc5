"""The options, where they come from, and the one-line errors for bad values."""

from __future__ import annotations

import math
from typing import NamedTuple

import pytest

DEFAULT_BUDGET_MS = 50.0
MARKER = "noblock"
MARKER_HELP = (
    "noblock(budget_ms=<ini noblock_budget_ms>, *, count_test_code=False, count_lifespan=False, "
    "count_warmup=False, max_thread_wait_ms=None, strict=False, allow=[]): fail the test when "
    "code serving a request holds the event loop longer than budget_ms (default: ini "
    "noblock_budget_ms, 50); count_test_code/count_lifespan: also when the test's own code or "
    "the app's lifespan does; count_warmup: also a route's first-request warm-up; "
    "or when a call waited longer than "
    "max_thread_wait_ms for a worker thread (default: ini noblock_max_thread_wait_ms; unset: "
    "only a note). strict=True: also fail on known blocking calls however fast; allow=[...]: "
    "callees or module:function names strict mode lets through. noblock(False) leaves the "
    "test unwatched under --noblock-all."
)
_MARKER_KEYWORDS = (
    "budget_ms",
    "count_test_code",
    "count_lifespan",
    "count_warmup",
    "max_thread_wait_ms",
    "strict",
    "allow",
)


class Settings(NamedTuple):
    """What a watched test is held to. A named tuple, not a dataclass: pytest imports this
    module in every run, and a frozen dataclass of these fields costs a millisecond to build."""

    budget_ms: float
    count_test_code: bool
    # The lifespan's holds are notes by default: a test cannot help them.
    count_lifespan: bool = False
    # So is a route's first-request warm-up on a fresh app (see `warmup`).
    count_warmup: bool = False
    max_thread_wait_ms: float | None = None
    # Strict mode (strict.py): the marker's and the ini's allowlists are kept apart
    # because a marker entry is stale per test, an ini entry per session.
    strict: bool = False
    allow: tuple[str, ...] = ()
    ini_allow: tuple[str, ...] = ()

    @property
    def budget_s(self) -> float:
        return self.budget_ms / 1000


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("noblock", "event loop blocking checks (pytest-noblock)")
    group.addoption(
        "--noblock-budget-ms",
        dest="noblock_budget_ms",
        default=None,
        metavar="MS",
        help="how long code serving a request may hold the event loop (overrides the ini).",
    )
    group.addoption(
        "--noblock-app",
        dest="noblock_app",
        default=None,
        metavar="MODULE:ATTR",
        help="the ASGI app, as module:attribute (overrides the ini option noblock_app).",
    )
    group.addoption(
        "--noblock-off",
        dest="noblock_off",
        action="store_true",
        default=False,
        help="watch nothing, keep the marker and fixtures (noblock_client still works; "
        "-p no:noblock would leave it undefined).",
    )
    parser.addini(
        "noblock_budget_ms",
        help="default budget for @pytest.mark.noblock in milliseconds (50).",
        default=str(DEFAULT_BUDGET_MS),
    )
    parser.addini(
        "noblock_app",
        help='the ASGI app for noblock_client, as "module:attribute" (or override noblock_app).',
        default="",
    )
    parser.addini(
        "noblock_count_test_code",
        help="also fail when the test's own code holds the loop (default: only a note).",
        type="bool",
        default=False,
    )
    parser.addini(
        "noblock_count_lifespan",
        help="also fail when the app's lifespan holds the loop (default: a note).",
        type="bool",
        default=False,
    )
    parser.addini(
        "noblock_count_warmup",
        help="also fail on a route's first-request warm-up (template compiles, schema "
        "building; default: a note).",
        type="bool",
        default=False,
    )
    parser.addini(
        "noblock_max_thread_wait_ms",
        help="fail when a call waited longer than this for a worker thread (default: a note).",
        default="",
    )
    _add_strict_options(parser)


# A budget is a stretch a handler may hold the loop: past an hour it means nothing, and
# past about 1.15e13 ms the CPU-time alarm's timer cannot even be set.
MAX_BUDGET_MS = 3_600_000


def _add_strict_options(parser: pytest.Parser) -> None:
    parser.addini(
        "noblock_strict",
        help="strict mode for every @pytest.mark.noblock test: fail on known blocking calls "
        "(time.sleep, requests, open(), sqlite3...) on the loop, however fast.",
        type="bool",
        default=False,
    )
    parser.addini(
        "noblock_allow",
        help='strict mode allowlist: callees ("time.sleep") or calling functions '
        '("myapp.cache:warm"), one a line.',
        type="linelist",
        default=[],
    )


def app_setting(config: pytest.Config) -> tuple[str, str]:
    """The app as `module:attribute`, and where it was given: --noblock-app, or the ini."""
    cli = config.getoption("noblock_app")
    if cli:
        return cli, f"--noblock-app={cli}"
    spec = config.getini("noblock_app")
    return spec, f"ini option noblock_app = {spec!r}"


def parse_allow(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise pytest.UsageError(
            f'noblock: {where} must be a list of names like ["time.sleep", "myapp.cache:warm"], '
            f"got {value!r}"
        )
    for entry in value:
        if not isinstance(entry, str) or not entry.strip() or " " in entry.strip():
            raise pytest.UsageError(
                f"noblock: {where} entries must be names like "
                f'"time.sleep" or "myapp.cache:warm", got {entry!r}'
            )
    return tuple(entry.strip() for entry in value)


def parse_budget(value: object, where: str) -> float:
    """A positive number of milliseconds up to an hour, or a UsageError naming `where`."""
    budget: float | None = None
    if not isinstance(value, bool):
        try:
            budget = float(value)  # type: ignore[arg-type]
        except OverflowError:  # an int past what a float holds (10**400)
            budget = math.inf
        except (TypeError, ValueError):
            budget = None
    if budget is None or math.isnan(budget) or budget <= 0:
        hint = " (leave it out for the default)" if value is None else ""
        raise pytest.UsageError(
            f"noblock: {where} must be a positive number of milliseconds, got {value!r}{hint}"
        )
    if budget > MAX_BUDGET_MS:
        raise pytest.UsageError(
            f"noblock: {where} must be at most {MAX_BUDGET_MS} ms (an hour), got {value!r}"
        )
    return budget


def ini_flag(config: pytest.Config, name: str) -> bool:
    """A boolean ini option; a bad value is one line naming the option."""
    try:
        return bool(config.getini(name))
    except (ValueError, pytest.UsageError) as error:
        # pytest says "invalid truth value 'maybe'": the value, but not the option.
        shown = str(error).rpartition("invalid truth value ")[2] or repr(str(error))
        raise pytest.UsageError(
            f"noblock: ini option {name} must be true or false, got {shown}"
        ) from None


def default_settings(config: pytest.Config) -> Settings:
    cli = config.getoption("noblock_budget_ms")
    if cli is not None:
        budget = parse_budget(cli, "--noblock-budget-ms")
    else:
        budget = parse_budget(config.getini("noblock_budget_ms"), "ini option noblock_budget_ms")
    raw_wait = config.getini("noblock_max_thread_wait_ms")
    max_wait = parse_budget(raw_wait, "ini option noblock_max_thread_wait_ms") if raw_wait else None
    return Settings(
        budget_ms=budget,
        count_test_code=ini_flag(config, "noblock_count_test_code"),
        count_lifespan=ini_flag(config, "noblock_count_lifespan"),
        count_warmup=ini_flag(config, "noblock_count_warmup"),
        max_thread_wait_ms=max_wait,
        strict=ini_flag(config, "noblock_strict"),
        ini_allow=parse_allow(config.getini("noblock_allow"), "ini option noblock_allow"),
    )


def settings_for(
    item: pytest.Item, defaults: Settings, *, watch_all: bool = False
) -> Settings | None:
    """The settings of a watched test, or None when it is not watched.

    Under `watch_all` (--noblock-all) every test function is watched as if marked: an
    `async def` one on its own loop, a sync one on the loops its TestClient starts;
    `@pytest.mark.noblock(False)` opts one out.
    """
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        if watch_all and isinstance(item, pytest.Function):
            return defaults
        return None
    where = f"{item.nodeid}: @pytest.mark.noblock"
    if marker.args and marker.args[0] is False:
        if len(marker.args) > 1 or marker.kwargs:
            given = ", ".join([*(repr(arg) for arg in marker.args[1:]), *marker.kwargs])
            raise pytest.UsageError(
                f"noblock: {where}(False) leaves the test unwatched and takes no options, "
                f"got {given}"
            )
        return None
    unknown = sorted(set(marker.kwargs) - set(_MARKER_KEYWORDS))
    if unknown:
        raise pytest.UsageError(
            f"noblock: {where} got unknown option(s) {', '.join(unknown)}; "
            f"it takes {', '.join(_MARKER_KEYWORDS)}"
        )
    if marker.args and "budget_ms" in marker.kwargs:
        raise pytest.UsageError(
            f"noblock: {where} got the budget twice, as its first value ({marker.args[0]!r}) "
            f"and as budget_ms={marker.kwargs['budget_ms']!r}: give one"
        )
    if len(marker.args) > 1:
        raise pytest.UsageError(f"noblock: {where} takes one positional value, budget_ms")
    budget = defaults.budget_ms
    if marker.args or "budget_ms" in marker.kwargs:
        raw = marker.args[0] if marker.args else marker.kwargs["budget_ms"]
        budget = parse_budget(raw, f"{where}(budget_ms=...)")
    count_test_code = _flag(marker, "count_test_code", defaults.count_test_code, where)
    count_lifespan = _flag(marker, "count_lifespan", defaults.count_lifespan, where)
    count_warmup = _flag(marker, "count_warmup", defaults.count_warmup, where)
    max_wait = defaults.max_thread_wait_ms
    if marker.kwargs.get("max_thread_wait_ms") is not None:
        max_wait = parse_budget(
            marker.kwargs["max_thread_wait_ms"], f"{where}(max_thread_wait_ms=...)"
        )
    strict_mode = _flag(marker, "strict", defaults.strict, where)
    allow = parse_allow(marker.kwargs.get("allow", []), f"{where}(allow=...)")
    return Settings(
        budget_ms=budget,
        count_test_code=count_test_code,
        count_lifespan=count_lifespan,
        count_warmup=count_warmup,
        max_thread_wait_ms=max_wait,
        strict=strict_mode,
        allow=allow,
        ini_allow=defaults.ini_allow,
    )


def _flag(marker: pytest.Mark, name: str, default: bool, where: str) -> bool:
    value = marker.kwargs.get(name, default)
    if not isinstance(value, bool):
        raise pytest.UsageError(
            f"noblock: {where}({name}=...) must be True or False, got {value!r}"
        )
    return value
