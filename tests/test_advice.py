"""Advice that names the job: what the blocking work was, and what to use instead."""

from __future__ import annotations

# Kept in sys.modules between in-process runs (see test_kinds.py).
import fastapi  # noqa: F401
import pytest
from conftest import Project, line_of

THREAD_ADVICE = (
    "  instead   run it in a worker thread: `await run_in_threadpool(...)`; it lets the GIL "
    "go, so the loop keeps serving"
)


def run_one(project: Project, source: str, budget_ms: int = 50) -> pytest.RunResult:
    project.app(source)
    project.tests(
        f"""
        import pytest

        @pytest.mark.noblock({budget_ms})
        async def test_call(noblock_client):
            assert (await noblock_client.get("/call")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    return result


def test_pbkdf2_password_hashing_is_named_as_such(project: Project) -> None:
    source = """
        import hashlib
        from fastapi import FastAPI

        app = FastAPI()

        @app.get("/call")
        async def call():
            key = hashlib.pbkdf2_hmac("sha256", b"secret", b"salt", 900_000)
            return {"n": len(key)}
        """
    result = run_one(project, source)
    line = line_of(source, "pbkdf2_hmac")
    result.stdout.fnmatch_lines(
        [
            f"  call      app.py:{line} in call",
            "  why       password hashing: slow on purpose, CPU work meant for a thread",
            THREAD_ADVICE,
        ]
    )


def test_argon2_password_hashing_is_named_as_such(project: Project) -> None:
    pytest.importorskip("argon2")
    source = """
        from argon2 import PasswordHasher
        from fastapi import FastAPI

        app = FastAPI()
        hasher = PasswordHasher(time_cost=6)

        @app.get("/call")
        async def call():
            return {"hash": hasher.hash("correct horse battery staple")}
        """
    result = run_one(project, source)
    line = line_of(source, "hasher.hash(")
    result.stdout.fnmatch_lines(
        [
            f"  call      app.py:{line} in call",
            "  why       password hashing: slow on purpose, CPU work meant for a thread",
        ]
    )


def test_building_an_httpx_client_per_request_says_reuse_one(project: Project) -> None:
    source = """
        import httpx
        from fastapi import FastAPI

        app = FastAPI()

        @app.get("/call")
        async def call():
            for _ in range(4):
                async with httpx.AsyncClient() as client:
                    pass
            return {}
        """
    result = run_one(project, source, budget_ms=20)
    result.stdout.fnmatch_lines(
        [
            "  why       building an httpx client (a new SSL context each time, tens of ms)",
            "  instead   make one client when the app starts (in its lifespan) and reuse it "
            "for every request",
        ]
    )


def test_sqlite_through_an_object_of_the_app_gets_the_sqlite_advice(project: Project) -> None:
    source = """
        import sqlite3
        from fastapi import FastAPI

        app = FastAPI()
        QUERY = (
            "WITH RECURSIVE cnt(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM cnt "
            "WHERE x < 3000000) SELECT count(*) FROM cnt"
        )

        class Repository:
            def __init__(self):
                self.conn = sqlite3.connect(":memory:", check_same_thread=False)

            def count(self):
                return self.conn.execute(QUERY).fetchone()[0]

        REPO = Repository()

        @app.get("/call")
        async def call():
            return {"count": REPO.count()}
        """
    result = run_one(project, source)
    line = line_of(source, "self.conn.execute(QUERY)")
    result.stdout.fnmatch_lines(
        [
            f"  call      app.py:{line} in Repository.count",
            "  why       a blocking SQLite call",
        ]
    )


def test_pillow_image_work_is_named_as_such(project: Project) -> None:
    pytest.importorskip("PIL")
    source = """
        from fastapi import FastAPI
        from PIL import Image

        app = FastAPI()
        PHOTO = Image.new("RGB", (1200, 1200), "white")

        @app.get("/call")
        async def call():
            thumb = PHOTO.resize((2400, 2400), Image.LANCZOS)
            return {"size": thumb.size}
        """
    result = run_one(project, source)
    result.stdout.fnmatch_lines(
        [
            f"  call      app.py:{line_of(source, 'PHOTO.resize(')} in call",
            "  why       image processing with Pillow: CPU work",
            THREAD_ADVICE,
        ]
    )


def test_html_parsing_is_named_as_such(project: Project) -> None:
    pytest.importorskip("bs4")
    source = """
        from bs4 import BeautifulSoup
        from fastapi import FastAPI

        app = FastAPI()
        PAGE = "".join(f"<div class='r{n}'><a href='/x/{n}'>row {n}</a></div>" for n in range(6000))

        @app.get("/call")
        async def call():
            soup = BeautifulSoup(PAGE, "html.parser")
            return {"links": len(soup.find_all("a"))}
        """
    result = run_one(project, source)
    result.stdout.fnmatch_lines(
        [
            f"  call      app.py:{line_of(source, 'BeautifulSoup(PAGE')} in call",
            "  why       parsing HTML: CPU work",
        ]
    )
