"""SQLite is set up so that an acknowledged commit survives a power loss."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from seau.db.engine import create_engine


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
