"""The strict group: blocking calls that are fast in a test, and clean look-alikes.

Each blocking case makes a known blocking call that returns in about a millisecond here
(a local upstream answering at once, a small file, an in-memory SQLite database, `true`):
far under any timing budget, yet the same line holds every request in production, where
the upstream is slow. Strict detectors (pytest-noblock's `strict=True`, blockbuster) are
compared on them; the clean cases look like blocking calls but are not (thread pools,
async clients, asyncio's subprocess, the import system, logging, traceback formatting).

They live outside `corpus.apps` so that the timing benchmark's totals stay as they were.
"""

from __future__ import annotations

import dataclasses
import importlib

from corpus import CORPUS_DIR, Case, scan_labels

STRICT_MODULES = ("corpus.strict.apps",)


def load_strict_cases() -> list[Case]:
    labels = scan_labels(sorted((CORPUS_DIR / "strict").glob("*.py")))
    cases: list[Case] = []
    for name in STRICT_MODULES:
        module = importlib.import_module(name)
        for case in module.CASES:
            cases.append(
                dataclasses.replace(case, module=name, labels=tuple(labels.pop(case.name, ())))
            )
    missing = [case.name for case in cases if case.blocking and not case.labels]
    if missing or labels:
        raise ValueError(f"strict corpus is inconsistent: {missing or sorted(labels)}")
    return cases
