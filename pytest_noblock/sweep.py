"""`pytest --noblock-sweep`: every operation of the app's OpenAPI schema is a test of its own.

For a project with few or no tests: schemathesis reads the app's schema and, with
hypothesis, generates valid requests for each operation. Each operation becomes one item,
`noblock-sweep::GET /items/{item_id}`, marked `noblock` (strict by default), whose body
sends a few generated requests with `case.call()`: the schemathesis adapter watches them
as it watches a user's own schemathesis test, so a failure is the usual report. The status
a response comes back with is not the sweep's business; a hold or a known blocking call is.

Nothing here imports schemathesis or hypothesis until a sweep is asked for, and the
plugin registers `SweepPlugin` only then. The requests are drawn from a seed (printed in
the header and the summary) per operation, so a run replays whatever else is selected.
schemathesis serves the app on one loop thread for the whole process and starts the app's
lifespan with its first request: the lifespan runs once around the sweep.
"""

from __future__ import annotations

import fnmatch
import os
import warnings
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .errors import AppError
from .keys import GATE
from .reporting.baseline import Record
from .reporting.units import milliseconds
from .settings import app_setting, ini_flag
from .sweep_options import DEFAULT_EXAMPLES, DEFAULT_SEED, SCHEMA_PATHS

# What a sweep runs on (httpx, the client, the watch) is imported only when one is asked
# for; the plugin's entry module imports this one only then (see `sweep_options`).
if TYPE_CHECKING:
    import httpx

    from .tracking import ASGIApp

NODE = "noblock-sweep"
INSTALL = 'noblock: --noblock-sweep needs schemathesis: pip install "pytest-noblock[sweep]"'
NO_APP = (
    "noblock: --noblock-sweep needs the app: --noblock-app=myapp.main:app, or in pytest's "
    'config: noblock_app = "myapp.main:app"'
)
KWARGS_HELP = "return a dict of request options (headers=, cookies=, params=) for case.call()"


def _whole_number(value: object, option: str, minimum: int) -> int:
    try:
        number = int(str(value))
    except ValueError:
        number = minimum - 1
    if number < minimum:
        raise pytest.UsageError(
            f"noblock: {option} must be a whole number >= {minimum}, got {value!r}"
        )
    return number


@dataclass(frozen=True)
class Pattern:
    """An include or exclude pattern: `[METHOD ]PATH-GLOB` or `tag:NAME-GLOB`."""

    text: str

    def matches(self, method: str, path: str, tags: Sequence[str]) -> bool:
        if self.text.startswith("tag:"):
            wanted = self.text[len("tag:") :]
            return any(fnmatch.fnmatchcase(tag, wanted) for tag in tags)
        method_glob, _, path_glob = self.text.rpartition(" ")
        return fnmatch.fnmatchcase(method.upper(), (method_glob or "*").upper()) and (
            fnmatch.fnmatchcase(path, path_glob)
        )


def _patterns(values: Sequence[str], option: str) -> tuple[Pattern, ...]:
    patterns = []
    for value in values:
        text = " ".join(str(value).split())
        path = text.rpartition(" ")[2]
        if not text or (not text.startswith("tag:") and not path.startswith(("/", "*"))):
            raise pytest.UsageError(
                f"noblock: {option} takes '[METHOD ]/path-glob' or 'tag:NAME', got {value!r}"
            )
        patterns.append(Pattern(text))
    return tuple(patterns)


def _listed(config: pytest.Config, which: str) -> list[str]:
    name = f"noblock_sweep_{which}"
    return [*config.getini(name), *config.getoption(name)]


@dataclass(frozen=True)
class SweepOptions:
    app: str
    app_where: str
    examples: int
    seed: int
    strict: bool
    include: tuple[Pattern, ...]
    exclude: tuple[Pattern, ...]
    schema: str | None

    @classmethod
    def from_config(cls, config: pytest.Config) -> SweepOptions:
        app, where = app_setting(config)
        if not app:
            raise pytest.UsageError(NO_APP)
        examples = config.getoption("noblock_sweep_examples")
        seed = config.getoption("noblock_sweep_seed")
        strict = config.getoption("noblock_sweep_strict")
        if strict is None:
            strict = ini_flag(config, "noblock_sweep_strict")
        return cls(
            app=app,
            app_where=where,
            examples=_whole_number(
                DEFAULT_EXAMPLES if examples is None else examples, "--noblock-sweep-examples", 1
            ),
            seed=_whole_number(DEFAULT_SEED if seed is None else seed, "--noblock-sweep-seed", 0),
            strict=strict,
            include=_patterns(_listed(config, "include"), "--noblock-sweep-include"),
            exclude=_patterns(_listed(config, "exclude"), "--noblock-sweep-exclude"),
            schema=config.getoption("noblock_sweep_schema")
            or config.getini("noblock_sweep_schema")
            or None,
        )

    def wanted(self, method: str, path: str, tags: Sequence[str]) -> bool:
        if self.include and not any(p.matches(method, path, tags) for p in self.include):
            return False
        return not any(p.matches(method, path, tags) for p in self.exclude)

    def header(self) -> str:
        return (
            f"noblock sweep: seed {self.seed}, {self.examples} requests per operation, "
            f"strict mode {'on' if self.strict else 'off'}"
        )


def _import_schemathesis() -> Any:
    try:
        import schemathesis
    except ImportError:
        raise pytest.UsageError(INSTALL) from None
    return schemathesis


def load_schema(options: SweepOptions, rootdir: Path) -> Any:
    """The app's schema, bound to the app; a UsageError of one line when there is none."""
    schemathesis = _import_schemathesis()
    try:
        from .client import check_asgi_app, load_app

        app = check_asgi_app(load_app(options.app, options.app_where), options.app_where)
    except AppError as error:
        raise pytest.UsageError(str(error)) from None
    given = options.schema
    if given is not None:
        file = Path(given) if os.path.isabs(given) else rootdir / given
        if file.is_file():
            try:
                schema = schemathesis.openapi.from_path(file)
            except Exception as error:
                raise pytest.UsageError(
                    f"noblock: --noblock-sweep-schema={given} is not an OpenAPI schema "
                    f"schemathesis reads ({type(error).__name__})"
                ) from None
            schema.app = app
            return schema
        if not given.startswith("/"):
            raise pytest.UsageError(
                f"noblock: --noblock-sweep-schema={given} is neither a file nor a path the "
                "app serves (one starting with /)"
            )
    tried = (given,) if given is not None else SCHEMA_PATHS
    for path in tried:
        served = _served_schema(app, path)
        if served is not None:
            try:
                schema = schemathesis.openapi.from_dict(served)
            except Exception as error:
                raise pytest.UsageError(
                    f"noblock: the schema {options.app} serves at {path} is not one "
                    f"schemathesis reads ({type(error).__name__})"
                ) from None
            schema.app = app
            return schema
    raise pytest.UsageError(
        f"noblock: --noblock-sweep found no OpenAPI schema at {' or '.join(tried)} of "
        f"{options.app}: give it with --noblock-sweep-schema=openapi.json (a file or the path "
        "the app serves it at)"
    )


def _served_schema(app: ASGIApp, path: str) -> dict[str, Any] | None:
    """The schema the app serves at `path`, if it serves one.

    Asked without the lifespan (schemathesis's own loader would start it, and its pytest
    plugin end it after the first test): the app's lifespan runs once, around the sweep.
    """
    import asyncio

    import httpx

    from .client import BASE_URL

    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            return await client.get(path)

    loop = asyncio.new_event_loop()
    try:
        response = loop.run_until_complete(fetch())
        served = response.json() if response.status_code == 200 else None
    except Exception:  # the app's error, or no JSON: the next path, then one line
        return None
    finally:
        loop.close()
    if isinstance(served, dict) and ("openapi" in served or "swagger" in served):
        return served
    return None


def generate(operation: Any, examples: int, seed: int) -> list[Any]:
    """The operation's requests: the same for the same seed, whatever else the run selects."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as with_seed

    cases: list[Any] = []

    @with_seed(seed)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(operation.as_strategy())
    def draw(case: Any) -> None:
        cases.append(case)

    draw()
    return cases[:examples]


def _sender(operation: Any, options: SweepOptions) -> Callable[..., None]:
    def noblock_sweep(
        request: pytest.FixtureRequest, noblock_sweep_kwargs: Mapping[str, Any]
    ) -> None:
        __tracebackhide__ = True
        if not isinstance(noblock_sweep_kwargs, Mapping):
            raise AppError(
                f"noblock: the fixture noblock_sweep_kwargs must {KWARGS_HELP}, "
                f"got {type(noblock_sweep_kwargs).__name__}"
            )
        failures: list[str] = []
        for case in generate(operation, options.examples, options.seed):
            try:
                case.call(**noblock_sweep_kwargs)
            except Exception as error:  # the app's own error is not the sweep's business
                failures.append(type(error).__name__)
        if failures:
            from .runner import add_note

            add_note(
                request.node,
                f"{len(failures)} of the requests raised in the app "
                f"({', '.join(sorted(set(failures)))}): not counted against it",
            )

    return noblock_sweep


class SweepCollector(pytest.Collector):
    """The parent of the sweep's items, so their node ids read `noblock-sweep::GET /path`."""

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        return []


class SweepItem(pytest.Function):
    """One API operation; its body sends the operation's generated requests."""

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.name


class SweepPlugin:
    """Registered by the plugin only under --noblock-sweep."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.options = SweepOptions.from_config(config)
        # Fails at once, before any test: the run asked for what is not installed.
        _import_schemathesis()

    def pytest_report_header(self) -> str:
        return self.options.header()

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, items: list[pytest.Item]
    ) -> None:
        # First: -k and -m then see the sweep's items like any other.
        schema = load_schema(self.options, self.config.rootpath)
        from schemathesis.core.result import Err

        collector = SweepCollector.from_parent(session, name=NODE, nodeid=NODE)
        marker = pytest.mark.noblock(strict=self.options.strict)
        swept: list[pytest.Item] = []
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                error = result.err()
                warnings.warn(
                    pytest.PytestWarning(
                        f"noblock: --noblock-sweep left out {error.label}: schemathesis cannot "
                        f"generate its requests ({str(error).splitlines()[0]})"
                    ),
                    stacklevel=1,
                )
                continue
            operation = result.ok()
            if not self.options.wanted(operation.method, operation.path, operation.tags or ()):
                continue
            item = SweepItem.from_parent(
                collector, name=operation.label, callobj=_sender(operation, self.options)
            )
            item.add_marker(marker)
            swept.append(item)
        # As pytest reports a collector: the terminal counts the items it collected.
        report = pytest.CollectReport(NODE, "passed", None, list(swept))
        session.ihook.pytest_collectreport(report=report)
        items.extend(swept)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> Generator[None, None, None]:
        if not isinstance(item, SweepItem) or not isinstance(nextitem, SweepItem):
            return (yield)
        # The app's lifespan runs once around the sweep, not once per operation.
        from .adapters.schemathesis import lifespans_kept

        with lifespans_kept():
            return (yield)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        gate = self.config.stash.get(GATE, None)
        if gate is None or gate.is_worker:
            return
        rows = table(gate.records)
        terminalreporter.write_sep("=", "noblock sweep")
        for row in rows:
            held = row["longest_hold_ms"]
            requests = f"{row['requests']} request{'s' * (row['requests'] != 1)}"
            terminalreporter.write_line(
                f"{row['verdict']:<9} {requests:>13}  "
                f"{milliseconds(held / 1000) if held is not None else '-':>9}  "
                f"{row['operation']}  {row['site'] or ''}".rstrip()
            )
        terminalreporter.write_line(
            f"{len(rows)} operation{'s' * (len(rows) != 1)} swept, "
            f"{sum(r['verdict'] == 'failed' for r in rows)} "
            f"blocking; {self.options.header()[len('noblock sweep: ') :]} "
            f"(--noblock-sweep-seed={self.options.seed} replays it)"
        )

    def report_section(self, records: Mapping[str, Record]) -> Record:
        return {
            "seed": self.options.seed,
            "examples": self.options.examples,
            "strict": self.options.strict,
            "operations": table(records),
        }


def table(records: Mapping[str, Record]) -> list[Record]:
    """One row per swept operation: what was sent, the longest hold, and where it was."""
    rows = []
    for nodeid, record in sorted(records.items()):
        if not nodeid.startswith(NODE + "::"):
            continue
        holds = [hold for hold in record["holds"] if hold["origin"] != "lifespan"]
        longest = max(holds, key=lambda hold: hold["held_ms"], default=None)
        failing = [hold for hold in holds if hold["failing"]]
        shown = max(failing, key=lambda hold: hold["held_ms"]) if failing else None
        sites = [hold.get("call_site") for hold in ([shown] if shown else [])]
        sites += [finding["call_site"] for finding in record.get("strict_findings", [])]
        site = next((s for s in sites if s), None)
        rows.append(
            {
                "operation": nodeid[len(NODE) + 2 :],
                "nodeid": nodeid,
                "requests": int(record.get("requests", 0)),
                "longest_hold_ms": longest["held_ms"] if longest is not None else None,
                "verdict": record["verdict"],
                "site": f"{site['file']}:{site['line']}" if site else None,
            }
        )
    return rows
