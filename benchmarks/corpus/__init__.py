"""The labelled corpus: small ASGI apps, each route a case that blocks the loop or does not.

Every module in `corpus.apps` declares `CASES`, a list of `Case`. A blocking case is
labelled in the source itself: the line(s) of the blocking call carry a comment
`# BLOCKS: <case name>` (for a CPU loop, every line of the loop). `load_cases()` reads
those comments and fills in each case's `labels`, so no line number is ever written by hand.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

CORPUS_DIR = Path(__file__).resolve().parent
APPS_PACKAGE = "corpus.apps"
LABEL = re.compile(r"#\s*BLOCKS:\s*([\w,\s]+?)\s*(?:#|$)")


@dataclass(frozen=True)
class Site:
    """One labelled source line: the absolute path of the file, and the line number."""

    path: str
    line: int

    def short(self) -> str:
        return f"{Path(self.path).relative_to(CORPUS_DIR.parent)}:{self.line}"


@dataclass(frozen=True)
class Case:
    """One test of the corpus: a request (or a few) that either blocks the loop or not.

    `body` is the test body; it uses `client` (an `httpx.AsyncClient` on the app, given by
    the tool's fixture) unless `own_client` is set, in which case it builds its own
    `httpx.ASGITransport` client on `app`. `probe` does the blocking work alone, outside any
    loop, so its duration is the true hold the tools are compared with.

    `driver` is how the test drives the app: "asyncio" (an `async def` test on asyncio, the
    whole of `corpus.apps`), "trio" (an `async def` test on trio through anyio's plugin) or
    "testclient" (a sync test; `client` is a `TestClient(app)` entered with `with`, and an
    `own_client` body builds its own). The last two live in `corpus.drivers`.

    With `app_factory`, `app_attr` names a function that builds the app, and the test's app
    fixture calls it: every test (every repetition of a clean case) gets a fresh app, as a
    suite with an app factory does, so each one serves its routes' first requests.
    """

    name: str
    blocking: bool
    kind: str
    where: str
    body: str
    probe: Callable[[], object] | None = None
    app_attr: str = "app"
    own_client: bool = False
    app_factory: bool = False
    requests: int = 1
    framework: str = "FastAPI"
    driver: str = "asyncio"
    module: str = ""
    labels: tuple[Site, ...] = field(default=())

    def label_text(self) -> str:
        """The labelled sites, short: `corpus/apps/x.py:12` or `corpus/apps/x.py:12-14`."""
        by_file: dict[str, list[int]] = {}
        for site in self.labels:
            by_file.setdefault(site.short().rsplit(":", 1)[0], []).append(site.line)
        parts = []
        for name, lines in by_file.items():
            if len(lines) > 1 and lines == list(range(lines[0], lines[-1] + 1)):
                parts.append(f"{name}:{lines[0]}-{lines[-1]}")
            else:
                parts.append(f"{name}:{','.join(str(line) for line in lines)}")
        return " ".join(parts)

    def matches(self, path: str, line: int) -> bool:
        """Whether a reported `path:line` is one of the labelled sites.

        Tools print paths relative to their rootdir or to an import path, so the
        reported path only has to be a trailing part of the labelled file's path.
        """
        reported = Path(path).parts
        for site in self.labels:
            if site.line == line and Path(site.path).parts[-len(reported) :] == reported:
                return True
        return False


def get(path: str, status: int = 200) -> str:
    """The usual body: one GET through the tool's client, checked like a user would."""
    return f'r = await client.get("{path}")\nassert r.status_code == {status}, r.text\n'


def scan_labels(paths: Iterable[Path]) -> dict[str, list[Site]]:
    """Every `# BLOCKS: name[, name]` comment in the given files, by case name."""
    found: dict[str, list[Site]] = {}
    for path in paths:
        for number, text in enumerate(path.read_text().splitlines(), start=1):
            match = LABEL.search(text)
            if match is None:
                continue
            if text.lstrip().startswith((")", "]", "}")):
                raise ValueError(f"{path}:{number}: a label must be on the call's own line")
            for name in match.group(1).split(","):
                if name.strip():
                    found.setdefault(name.strip(), []).append(Site(str(path), number))
    return found


def load_cases(names: Iterable[str] | None = None) -> list[Case]:
    """All cases of the corpus (or the named ones), with their labels filled in."""
    apps_dir = CORPUS_DIR / "apps"
    labels = scan_labels(sorted(apps_dir.rglob("*.py")))
    cases: list[Case] = []
    for info in pkgutil.walk_packages([str(apps_dir)], prefix=APPS_PACKAGE + "."):
        module = importlib.import_module(info.name)
        for case in getattr(module, "CASES", ()):
            cases.append(
                dataclasses.replace(case, module=info.name, labels=tuple(labels.pop(case.name, ())))
            )
    _check(cases, labels)
    if names is None:
        return cases
    wanted = list(names)
    by_name = {case.name: case for case in cases}
    unknown = [name for name in wanted if name not in by_name]
    if unknown:
        raise ValueError(f"unknown case(s): {', '.join(unknown)}")
    return [by_name[name] for name in wanted]


def _check(cases: list[Case], orphans: dict[str, list[Site]]) -> None:
    problems: list[str] = []
    seen: set[str] = set()
    for case in cases:
        if case.name in seen:
            problems.append(f"{case.name}: declared twice")
        seen.add(case.name)
        if case.blocking and not case.labels:
            problems.append(f"{case.name}: blocking, but no `# BLOCKS: {case.name}` line")
        if case.blocking and case.probe is None:
            problems.append(f"{case.name}: blocking, but no probe for its true hold")
        if not case.blocking and case.labels:
            problems.append(f"{case.name}: clean, but has a BLOCKS label")
        if not re.fullmatch(r"[a-z][a-z0-9_]*", case.name):
            problems.append(f"{case.name}: names are lower_snake_case")
    for name, sites in orphans.items():
        problems.append(f"label for unknown case {name!r} at {sites[0].short()}")
    if problems:
        raise ValueError("corpus is inconsistent:\n  " + "\n  ".join(problems))
