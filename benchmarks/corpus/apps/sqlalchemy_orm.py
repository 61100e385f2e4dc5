"""SQLAlchemy's asyncio ORM: its synchronous work runs in a greenlet, on the loop.

`await session.execute(...)` awaits the database in aiosqlite's thread, but builds an
object per row (and configures the mappers, on an app's first query) in a greenlet on the
loop's thread. The blocking case loads 40,000 rows per request; its site is the app's
await line, which a sample taken in the greenlet does not show unless it is stitched to
the frames that switched to it. The clean case is the mappers' configuration on a fresh
app's first request: warm-up.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from typing import Any

from fastapi import FastAPI
from sqlalchemy import ForeignKey, String, create_engine, select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from corpus import Case, get

ROWS = 40_000
# One database per process (the harness and each tool's pytest import the corpus), gone
# when the process ends.
_DIRECTORY = tempfile.mkdtemp(prefix="noblock-bench-")
atexit.register(shutil.rmtree, _DIRECTORY, ignore_errors=True)
_DATABASE = os.path.join(_DIRECTORY, "items.db")


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(30))
    tag: Mapped[str] = mapped_column(String(30))


def _fill() -> None:
    engine = create_engine(f"sqlite:///{_DATABASE}")
    Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        if session.scalar(select(Item.id).limit(1)) is None:
            session.execute(
                Item.__table__.insert(), [{"name": f"n{n}", "tag": "t"} for n in range(ROWS)]
            )
    engine.dispose()


_fill()
_engine = create_async_engine(f"sqlite+aiosqlite:///{_DATABASE}")
_sessions = async_sessionmaker(_engine)

app = FastAPI()


@app.get("/items")
async def items() -> dict[str, int]:
    async with _sessions() as session:
        rows = (await session.scalars(select(Item))).all()  # BLOCKS: sqlalchemy_load_many_rows
    return {"rows": len(rows)}


def probe_load_rows() -> None:
    engine = create_engine(f"sqlite:///{_DATABASE}")
    with Session(engine) as session:
        session.execute(select(Item)).scalars().all()
    engine.dispose()


def make_app() -> FastAPI:
    """A fresh app with sixty models of its own, in a chain of relationships: SQLAlchemy
    configures them all on the app's first query (some 80 ms), as an app built per test does."""

    class FreshBase(DeclarativeBase):
        pass

    models: list[Any] = []
    for number in range(60):
        namespace: dict[str, Any] = {
            "__tablename__": f"t{number}",
            "__annotations__": {"id": Mapped[int]},
            "id": mapped_column(primary_key=True),
        }
        if models:
            parent = models[-1]
            namespace["__annotations__"]["parent_id"] = Mapped[int]
            namespace["parent_id"] = mapped_column(ForeignKey(f"{parent.__tablename__}.id"))
            namespace["parent"] = relationship(parent, backref=f"children{number}")
        models.append(type(f"M{number}", (FreshBase,), namespace))
    engine = create_async_engine("sqlite+aiosqlite://")
    sessions = async_sessionmaker(engine)
    fresh = FastAPI()

    @fresh.get("/chain")
    async def chain() -> dict[str, int]:
        async with engine.begin() as connection:
            await connection.run_sync(FreshBase.metadata.create_all)
        async with sessions() as session:
            found = (await session.execute(select(models[-1]))).scalars().all()
        return {"rows": len(found)}

    return fresh


CASES = [
    Case(
        "sqlalchemy_load_many_rows",
        True,
        "SQLAlchemy ORM loading 40,000 rows",
        "handler",
        get("/items"),
        probe_load_rows,
    ),
    Case(
        "clean_warmup_sqlalchemy_mappers",
        False,
        "SQLAlchemy mapper configuration",
        "first request of a fresh app (app built per test)",
        get("/chain") + get("/chain"),
        app_attr="make_app",
        app_factory=True,
        requests=2,
    ),
]
