"""SQLite: one trip to aiosqlite's thread per statement (`seau.db._sqlite`), same results."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from seau.db.engine import READ_HERE, WRITE_HERE, create_engine, create_sessionmaker


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = aiosqlite.Connection._execute

    async def counting(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(getattr(fn, "__name__", repr(fn)))
        return await real(self, fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    return seen


async def test_a_statement_with_its_rows_is_one_trip(tmp_path: Path, trips: list[str]) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'seau.db'}")
    sessions = create_sessionmaker(engine)
    try:
        async with sessions() as session:
            await session.execute(text("CREATE TABLE t (x INTEGER PRIMARY KEY, y TEXT)"))
            await session.commit()
        trips.clear()
        async with sessions() as session:
            inserted = await session.execute(
                text("INSERT INTO t (y) VALUES (:y)"), [{"y": "a"}, {"y": "b"}]
            )
            assert inserted.rowcount == 2  # type: ignore[attr-defined]
            await session.commit()
        assert len(trips) == 2, f"the insert and the commit, nothing else: {trips}"
        trips.clear()
        async with sessions() as session:
            rows = (await session.execute(text("SELECT x, y FROM t ORDER BY x"))).all()
            first = (await session.execute(text("SELECT y FROM t WHERE x = 1"))).scalar_one()
            none = (await session.execute(text("SELECT y FROM t WHERE x = 9"))).first()
        assert [tuple(r) for r in rows] == [(1, "a"), (2, "b")]
        assert (first, none) == ("a", None)
        assert len(trips) == 3, f"one trip per select, rows included: {trips}"
    finally:
        await engine.dispose()


async def test_driver_errors_keep_their_sqlalchemy_type(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'seau.db'}")
    sessions = create_sessionmaker(engine)
    try:
        async with sessions() as session:
            await session.execute(text("CREATE TABLE t (x INTEGER PRIMARY KEY)"))
            await session.execute(text("INSERT INTO t VALUES (1)"))
            await session.commit()
        async with sessions() as session:
            with pytest.raises(IntegrityError):
                await session.execute(text("INSERT INTO t VALUES (1)"))
            await session.rollback()
            updated = await session.execute(text("UPDATE t SET x = 2 WHERE x = 1"))
            assert updated.rowcount == 1  # type: ignore[attr-defined]
            await session.commit()
    finally:
        await engine.dispose()


async def test_a_read_marked_read_here_makes_no_trip(tmp_path: Path, trips: list[str]) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'seau.db'}")
    sessions = create_sessionmaker(engine)
    by_key = text("SELECT y FROM t WHERE x = :x").execution_options(**{READ_HERE: True})
    try:
        async with sessions() as session:
            await session.execute(text("CREATE TABLE t (x INTEGER PRIMARY KEY, y TEXT)"))
            await session.execute(text("INSERT INTO t (x, y) VALUES (1, 'a')"))
            await session.commit()
        trips.clear()
        async with sessions() as session:
            found = (await session.execute(by_key, {"x": 1})).scalar_one()
            missing = (await session.execute(by_key, {"x": 9})).first()
        assert (found, missing) == ("a", None)
        assert trips == [], f"read on the calling thread: {trips}"
        async with sessions() as session:
            # In a transaction, on the same connection: it sees its own write.
            await session.execute(text("INSERT INTO t (x, y) VALUES (2, 'b')"))
            assert (await session.execute(by_key, {"x": 2})).scalar_one() == "b"
            await session.rollback()
        async with sessions() as session:
            assert (await session.execute(by_key, {"x": 2})).first() is None
            with pytest.raises(OperationalError):
                await session.execute(
                    text("SELECT y FROM missing").execution_options(**{READ_HERE: True})
                )
    finally:
        await engine.dispose()


async def test_a_write_marked_write_here_makes_no_trip_once_its_transaction_has_written(
    tmp_path: Path, trips: list[str]
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'seau.db'}")
    sessions = create_sessionmaker(engine)
    here = text("UPDATE t SET y = :y WHERE x = :x").execution_options(**{WRITE_HERE: True})
    try:
        async with sessions() as session:
            await session.execute(text("CREATE TABLE t (x INTEGER PRIMARY KEY, y TEXT)"))
            await session.execute(text("INSERT INTO t (x, y) VALUES (1, 'a'), (2, 'b')"))
            await session.commit()
        trips.clear()
        async with sessions() as session:
            await session.execute(here, {"x": 1, "y": "first"})  # first: takes the lock
            assert len(trips) == 1, trips
            updated = await session.execute(here, {"x": 2, "y": "then"})
            assert updated.rowcount == 1  # type: ignore[attr-defined]
            assert len(trips) == 1, f"the second write on the calling thread: {trips}"
            await session.commit()
        assert len(trips) == 2, f"the first write and the commit: {trips}"
        async with sessions() as session:
            await session.execute(here, {"x": 1, "y": "undone"})
            await session.execute(here, {"x": 2, "y": "undone"})
            await session.rollback()
        async with sessions() as session:
            rows = (await session.execute(text("SELECT y FROM t ORDER BY x"))).scalars().all()
        assert rows == ["first", "then"]
    finally:
        await engine.dispose()


async def test_a_write_here_that_must_wait_for_another_writer_waits_off_the_loop(
    tmp_path: Path,
) -> None:
    """First in its transaction, a `WRITE_HERE` write may meet another connection's
    write lock: it waits in the driver's thread, and the event loop goes on."""
    path = tmp_path / "seau.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    sessions = create_sessionmaker(engine)
    here = text("UPDATE t SET y = :y WHERE x = 1").execution_options(**{WRITE_HERE: True})
    try:
        async with sessions() as session:
            await session.execute(text("CREATE TABLE t (x INTEGER PRIMARY KEY, y TEXT)"))
            await session.execute(text("INSERT INTO t (x, y) VALUES (1, 'a')"))
            await session.commit()
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process's writer, say
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())

        async def write() -> None:
            async with sessions() as session:
                await session.execute(here, {"y": "b"})
                await session.commit()

        writing = asyncio.create_task(write())
        await asyncio.sleep(0.5)
        assert not writing.done()
        assert ticks >= 20, f"the loop was held while the write waited: {ticks} ticks"
        other.execute("ROLLBACK")
        other.close()
        await asyncio.wait_for(writing, timeout=10)
        ticker.cancel()
        async with sessions() as session:
            assert (await session.execute(text("SELECT y FROM t"))).scalar_one() == "b"
    finally:
        await engine.dispose()
