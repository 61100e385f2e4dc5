"""SQLAlchemy's asyncio layer: its ORM runs in a greenlet, and a hold there is the app's.

`await session.execute(...)` runs the query's synchronous part (compiling it, configuring
the mappers, building an object per row) in a greenlet whose frames end at SQLAlchemy's
own function. A hold there is reported at the app's line that awaited it, on the request
that ran it, the same on every run.
"""

from __future__ import annotations

from importlib.util import find_spec

import pytest
from conftest import Project, line_of

# Looked up, not imported, and every run in a process of its own: SQLAlchemy loaded in the
# suite's process would make every later test's full garbage collections longer, and its
# compiled modules cannot be imported afresh by pytester's next in-process run.
pytestmark = pytest.mark.skipif(
    find_spec("sqlalchemy") is None or find_spec("aiosqlite") is None,
    reason="needs sqlalchemy and aiosqlite (the test extra)",
)

MANY_ROWS_APP = """
    from fastapi import FastAPI
    from sqlalchemy import String, select
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

    class Base(DeclarativeBase):
        pass

    class Item(Base):
        __tablename__ = "items"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(30))

    engine = create_async_engine("sqlite+aiosqlite://")
    Session = async_sessionmaker(engine)
    app = FastAPI()

    @app.get("/items")
    async def items() -> int:
        async with Session() as session:
            rows = (await session.execute(select(Item))).scalars().all()
        return len(rows)

    async def fill() -> None:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
            await conn.execute(Item.__table__.insert(), [{"name": f"n{n}"} for n in range(40_000)])
    """
AWAIT_LINE = line_of(MANY_ROWS_APP, "rows = (await session.execute")


def test_loading_many_rows_is_held_at_the_apps_await_line(project: Project) -> None:
    project.app(MANY_ROWS_APP)
    project.tests(
        """
        import pytest
        from app import engine, fill

        @pytest.mark.noblock(budget_ms=25)
        async def test_items(noblock_client):
            await fill()
            assert (await noblock_client.get("/items")).json() == 40_000
            await engine.dispose()  # aiosqlite's connection thread with it
        """
    )
    result = project.run_subprocess()
    result.assert_outcomes(failed=1)
    # Freeing the 40,000 objects after the handler returned can be a hold of its own.
    result.stdout.fnmatch_lines(
        [
            f"*GET /items held the event loop for * ms at app.py:{AWAIT_LINE} (budget 25 ms)",
            "  handler   app:items",
            f"  call      app.py:{AWAIT_LINE} in items",
            "                rows = (await session.execute(select(Item))).scalars().all()",
            "*",
            "  landed in sqlalchemy/*",
        ]
    )
    # It ran on the request's own stack, not in a task the request started.
    result.stdout.no_fnmatch_line("*in a task the request started*")


# Sixty models in a chain of relationships, declared anew for each app: SQLAlchemy
# configures them all on the first query, which a suite building an app per test repeats.
FRESH_MODELS_APP = """
    from fastapi import FastAPI
    from sqlalchemy import ForeignKey, select
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

    def build_app():
        class Base(DeclarativeBase):
            pass

        models = []
        for number in range(60):
            namespace = {
                "__tablename__": f"t{number}",
                "__annotations__": {"id": Mapped[int]},
                "id": mapped_column(primary_key=True),
            }
            if models:
                parent = models[-1]
                namespace["__annotations__"]["parent_id"] = Mapped[int]
                namespace["parent_id"] = mapped_column(ForeignKey(f"{parent.__tablename__}.id"))
                namespace["parent"] = relationship(parent, backref=f"children{number}")
            models.append(type(f"M{number}", (Base,), namespace))

        engine = create_async_engine("sqlite+aiosqlite://")
        session_maker = async_sessionmaker(engine)
        app = FastAPI()

        @app.get("/rows")
        async def rows() -> int:
            async with session_maker() as session:
                found = (await session.execute(select(models[-1]))).scalars().all()
            return len(found)

        return app, engine, Base
    """
QUERY_LINE = line_of(FRESH_MODELS_APP, "found = (await session.execute")

FRESH_MODELS_TESTS = """
    import pytest
    from httpx import ASGITransport, AsyncClient
    from fresh import build_app

    @pytest.mark.noblock(budget_ms=15)
    @pytest.mark.parametrize("run", range(3))
    async def test_rows(run):
        app, engine, Base = build_app()
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with AsyncClient(transport=ASGITransport(app), base_url="http://t") as client:
            for _ in range(2):
                assert (await client.get("/rows")).json() == 0
        await engine.dispose()  # aiosqlite's connection thread with it
    """


def test_configuring_a_fresh_apps_mappers_is_warm_up_at_the_apps_query_line(
    project: Project,
) -> None:
    project.tests(FRESH_MODELS_APP, name="fresh")
    project.tests(FRESH_MODELS_TESTS)
    result = project.run_subprocess("-rA")
    result.assert_outcomes(passed=3)
    notes = [line for line in result.stdout.lines if "warm-up: GET /rows" in line]
    assert notes, result.stdout.str()
    for note in notes:
        assert f"at fresh.py:{QUERY_LINE} (budget 15 ms): configuring SQLAlchemy's mappers" in note


def test_a_baseline_of_mapper_configuration_counted_as_warm_up_stays_matched(
    project: Project,
) -> None:
    project.tests(FRESH_MODELS_APP, name="fresh")
    project.tests(FRESH_MODELS_TESTS)
    counted = ("-o", "noblock_count_warmup=true", "--noblock-baseline=baseline.json")
    project.run_subprocess(*counted).assert_outcomes(passed=3)
    for _ in range(3):
        result = project.run_subprocess(*counted)
        result.assert_outcomes(passed=3)
        result.stdout.no_fnmatch_line("*baseline entr* gone*")
