"""A module that is slow to import, as a heavy library is: it works for ~200 ms at import.

`corpus.apps.warmup` imports it inside a handler, on the route's first request. It lives
outside `corpus.apps`, whose modules the case loader imports up front.
"""

from corpus import work


def _build_table() -> int:
    total = 0
    for i in range(work.CPU_LOOP_N):
        total += i * i % 7
    return total


TABLE_TOTAL = _build_table()
