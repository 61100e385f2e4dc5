"""The shop's catalog service: plain functions the routes call, two levels down to the I/O."""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from typing import Any

from corpus import work


def product_page(product_id: int) -> dict[str, Any]:
    product = _load_product(product_id)
    return {"product": product, "related": []}


def _load_product(product_id: int) -> dict[str, Any]:
    url = work.slow_url()
    with urllib.request.urlopen(url, timeout=5) as answer:  # BLOCKS: service_module_urllib
        return {"id": product_id, "upstream": json.loads(answer.read())}


def stock_report() -> dict[str, Any]:
    return {"stock": _count_stock()}


def _count_stock() -> int:
    connection = sqlite3.connect(":memory:")
    try:
        return int(connection.execute(work.SQL_SLOW).fetchone()[0])  # BLOCKS: service_module_sqlite
    finally:
        connection.close()


def price_list() -> dict[str, Any]:
    return {"prices": _compute_prices(work.CPU_LOOP_N)}


def _compute_prices(n: int) -> int:
    total = 0
    for i in range(n):  # BLOCKS: service_module_cpu
        total += (i * 7919) % 101  # BLOCKS: service_module_cpu
    return total
