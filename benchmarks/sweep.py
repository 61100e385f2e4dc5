"""How many of the corpus's blocking routes `pytest --noblock-sweep` finds with no test written.

Each corpus app that publishes an OpenAPI schema (the FastAPI ones) is swept in a pytest
process of its own, in an empty folder: no test file, only `--noblock-sweep
--noblock-app=corpus.apps.<module>:<app>`. A labelled blocking case counts as found when a
failing hold or a strict finding of the sweep is at one of its labelled lines (the same
rule `run.py` scores the marked tests by). The marked tests' own score is in RESULTS.md.

    python benchmarks/sweep.py [--examples N] [--seed N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from corpus import Case, load_cases, slowserver, work  # noqa: E402


def apps(cases: Iterable[Case]) -> dict[tuple[str, str], list[Case]]:
    """The corpus's asyncio apps built once (not by a factory), with their cases."""
    found: dict[tuple[str, str], list[Case]] = {}
    for case in cases:
        if case.driver == "asyncio" and not case.app_factory:
            found.setdefault((case.module, case.app_attr), []).append(case)
    return found


def sweep(module: str, attr: str, examples: int, seed: int, scratch: Path) -> dict[str, Any]:
    """One app swept in a fresh pytest process; its JSON report, or why there is none."""
    report = scratch / f"{module}.{attr}.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(BENCH_DIR), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("PYTEST_ADDOPTS", None)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--noblock-sweep",
        f"--noblock-app={module}:{attr}",
        f"--noblock-sweep-examples={examples}",
        f"--noblock-sweep-seed={seed}",
        f"--noblock-report={report}",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "-q",
        f"--rootdir={scratch}",
    ]
    done = subprocess.run(command, cwd=scratch, env=env, capture_output=True, text=True)
    # A usage error (no schema served) still ends the session: its report holds nothing.
    if done.returncode == 4 or not report.exists():
        lines = (done.stderr or done.stdout).strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {done.returncode}"}
    data: dict[str, Any] = json.loads(report.read_text())
    return data


def failing_sites(report: dict[str, Any]) -> list[tuple[str, int]]:
    """Where the sweep failed an operation: failing holds and strict findings."""
    sites = []
    for test in report.get("tests", []):
        for hold in test["holds"]:
            if hold["failing"] and hold["call_site"]:
                sites.append((hold["call_site"]["file"], hold["call_site"]["line"]))
        for finding in test.get("strict_findings", []):
            sites.append((finding["call_site"]["file"], finding["call_site"]["line"]))
    return sites


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    options = parser.parse_args()
    results = []
    with slowserver.running() as url, tempfile.TemporaryDirectory() as scratch:
        os.environ[work.SLOW_URL_ENV] = url
        for (module, attr), cases in sorted(apps(load_cases()).items()):
            folder = Path(scratch) / f"{module}.{attr}"
            folder.mkdir()
            report = sweep(module, attr, options.examples, options.seed, folder)
            blocking = [case for case in cases if case.blocking]
            if "error" in report:
                results.append(
                    {"app": f"{module}:{attr}", "blocking": len(blocking), "error": report["error"]}
                )
                print(f"{module}:{attr}: not swept: {report['error']}", flush=True)
                continue
            sites = failing_sites(report)
            found = [c.name for c in blocking if any(c.matches(f, n) for f, n in sites)]
            rows = report["sweep"]["operations"]
            results.append(
                {
                    "app": f"{module}:{attr}",
                    "operations": len(rows),
                    "operations_failed": sum(row["verdict"] == "failed" for row in rows),
                    "failed": [row["operation"] for row in rows if row["verdict"] == "failed"],
                    "requests": sum(row["requests"] for row in rows),
                    "blocking": len(blocking),
                    "found": found,
                    "missed": [c.name for c in blocking if c.name not in found],
                }
            )
            print(
                f"{module}:{attr}: {len(rows)} operations, "
                f"{results[-1]['operations_failed']} failed; blocking cases found "
                f"{len(found)}/{len(blocking)}",
                flush=True,
            )
            if not blocking and results[-1]["failed"]:
                # A clean app's failures: strict findings under the budget, or false alarms.
                print(f"  failed in an app with no blocking case: {results[-1]['failed']}")
    swept = [result for result in results if "error" not in result]
    found_total = sum(len(result["found"]) for result in swept)
    blocking_total = sum(result["blocking"] for result in swept)
    print(
        f"\nzero tests written: the sweep found {found_total} of the {blocking_total} blocking "
        f"cases in the {len(swept)} apps it could sweep ({len(results) - len(swept)} apps "
        "publish no schema); the marked tests' score is in RESULTS.md"
    )
    if options.json is not None:
        options.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
