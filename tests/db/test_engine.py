"""SQLite: an acknowledged commit survives a power loss; no needless trips to its thread."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import text

from seau.db.engine import create_engine, create_sessionmaker


async def test_sqlite_runs_in_wal_mode_with_full_synchronous_commits(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'seau.db'}")
    try:
        async with engine.connect() as connection:
            journal = (await connection.execute(text("PRAGMA journal_mode"))).scalar()
            synchronous = (await connection.execute(text("PRAGMA synchronous"))).scalar()
            foreign_keys = (await connection.execute(text("PRAGMA foreign_keys"))).scalar()
    finally:
        await engine.dispose()
    assert journal == "wal"
    # 2 = FULL: in WAL mode, NORMAL (1) may lose the last commits on a power loss.
    assert synchronous == 2
    assert foreign_keys == 1


async def test_sqlite_rolls_back_only_sessions_that_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollbacks: list[object] = []
    real = aiosqlite.Connection.rollback

    async def counting(self: aiosqlite.Connection) -> None:
        rollbacks.append(self)
        await real(self)

    monkeypatch.setattr(aiosqlite.Connection, "rollback", counting)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'seau.db'}")
    sessions = create_sessionmaker(engine)
    try:
        async with sessions() as session:
            await session.execute(text("CREATE TABLE t (x INTEGER)"))
            await session.commit()
        async with sessions() as session:
            assert (await session.execute(text("SELECT count(*) FROM t"))).scalar() == 0
        assert rollbacks == [], "a read-only session has nothing to roll back"
        async with sessions() as session:
            await session.execute(text("INSERT INTO t VALUES (1)"))
        assert len(rollbacks) == 1, "an uncommitted write is rolled back"
        async with sessions() as session:
            assert (await session.execute(text("SELECT count(*) FROM t"))).scalar() == 0
    finally:
        await engine.dispose()
