"""Repeat pytest's closing line of each nox session at the end of `test.sh`'s output.

nox ends its run with a summary of its own, so a reader (or CI) looking at the last line
would not see pytest's. Sessions whose run did not pass come last: the final line is the
worst news.
"""

from __future__ import annotations

import re
import sys

SESSION_START = re.compile(r"^nox > Running session (\S+)")
# "=== 262 passed, 1 skipped in 64.84s (0:01:04) ===", with or without the bars (-q).
CLOSING_LINE = re.compile(
    r"^(=+ )?(\d+ \w+|no tests ran)[^=]* in \d+(\.\d+)?s( \(\d+:\d\d:\d\d\))?( =+)?$"
)
BAD_NEWS = re.compile(r"\b(failed|errors?)\b")


def closing_lines(log: list[str]) -> dict[str, str | None]:
    """The last closing line of each session, by session name, in the order they ran."""
    found: dict[str, str | None] = {}
    session = None
    for line in log:
        started = SESSION_START.match(line)
        if started:
            session = started.group(1)
            found[session] = None
        elif session is not None and CLOSING_LINE.match(line):
            found[session] = line
    return found


def _bad_news(line: str | None) -> bool:
    return line is None or BAD_NEWS.search(line) is not None


def main(path: str) -> None:
    with open(path, encoding="utf-8", errors="replace") as file:
        found = closing_lines([line.rstrip("\n") for line in file])
    if not found:
        return
    ordered = sorted(found, key=lambda name: _bad_news(found[name]))
    print(f"nox > pytest's closing line of {', '.join(ordered)}:")
    for name in ordered:
        print(found[name] or f"{name}: pytest printed no closing line")


if __name__ == "__main__":
    main(sys.argv[1])
