"""The shop's routes: thin `async def` handlers over the catalog service."""

from __future__ import annotations

import sqlite3
import urllib.request
from typing import Any

from fastapi import FastAPI

from corpus import Case, get, work
from corpus.apps.shop import catalog

app = FastAPI()


@app.get("/products/{product_id}")
async def product(product_id: int) -> dict[str, Any]:
    return catalog.product_page(product_id)


@app.get("/stock")
async def stock() -> dict[str, Any]:
    return catalog.stock_report()


@app.get("/prices")
async def prices() -> dict[str, Any]:
    return catalog.price_list()


def probe_urllib() -> None:
    with urllib.request.urlopen(work.slow_url(), timeout=5) as answer:
        answer.read()


def probe_sqlite() -> None:
    connection = sqlite3.connect(":memory:")
    connection.execute(work.SQL_SLOW).fetchone()
    connection.close()


W = "service module, two calls below the route"
CASES = [
    Case("service_module_urllib", True, "urllib", W, get("/products/7"), probe_urllib),
    Case("service_module_sqlite", True, "sqlite3", W, get("/stock"), probe_sqlite),
    Case(
        "service_module_cpu",
        True,
        "pure-Python CPU",
        W,
        get("/prices"),
        lambda: catalog._compute_prices(work.CPU_LOOP_N),
    ),
]
