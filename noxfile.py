"""The test matrix: the whole suite on every supported CPython this machine has.

`bash test.sh` runs ruff and mypy once in `.venv`, then `nox`: one session per interpreter,
each in a virtualenv of its own under `.nox/`. A supported version the machine lacks gets
one line saying it is skipped; the oldest supported one must be there, or the run fails.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys

import nox

SUPPORTED = ("3.11", "3.12", "3.13", "3.14")
OLDEST = SUPPORTED[0]

nox.options.sessions = ["tests"]
nox.options.default_venv_backend = "venv"
# Installs come from PyPI only: an interpreter that is not on the machine is not downloaded.
nox.options.download_python = "never"
# A developer's second run reuses the environments; CI starts from a fresh clone anyway.
nox.options.reuse_venv = "yes"


def _pyenv_interpreter_dirs() -> list[str]:
    """The bin folders of pyenv's CPython builds, newest first.

    pyenv's shims only run the versions a user selected, so `python3.12` is not found
    through them while 3.11 is the global one: its own folders go on PATH instead.
    """
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found: list[tuple[tuple[int, ...], str]] = []
    for path in glob.glob(os.path.join(root, "versions", "*", "bin")):
        name = os.path.basename(os.path.dirname(path))
        # Plain CPython releases only: not "3.13.0t", "pypy3.10-7.3.12" or "miniconda3-…".
        if re.fullmatch(r"\d+\.\d+\.\d+", name):
            found.append((tuple(int(part) for part in name.split(".")), path))
    return [path for _, path in sorted(found, reverse=True)]


def _runs(version: str) -> bool:
    command = shutil.which(f"python{version}")
    if command is None:
        return False
    check = subprocess.run([command, "-c", ""], capture_output=True, check=False)
    return check.returncode == 0


os.environ["PATH"] = os.pathsep.join([*_pyenv_interpreter_dirs(), os.environ.get("PATH", "")])
PRESENT = [version for version in SUPPORTED if _runs(version)]
for version in SUPPORTED[1:]:
    if version not in PRESENT:
        print(
            f"nox > tests-{version} skipped: no Python {version} on this machine", file=sys.stderr
        )
if OLDEST not in PRESENT:
    raise SystemExit(
        f"nox > no Python {OLDEST} on this machine: the oldest supported must be tested"
    )


@nox.session(python=PRESENT)
def tests(session: nox.Session) -> None:
    """The whole suite, one test at a time; the arguments after `--` go to pytest.

    Not on xdist workers by default: on two cores the timing tests then compete with each
    other for a CPU. Measured on a loaded 2-core machine, four timing-heavy files: `-n 2`
    failed 3 and 4 tests in two runs, one at a time passed all, in about the same wall time.
    """
    session.install("--quiet", "--disable-pip-version-check", "-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)
