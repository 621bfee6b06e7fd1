"""One migration history for SQLite, MariaDB and PostgreSQL, matching the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from seau.db.base import Base
from seau.db.engine import create_engine
from seau.db.migrate import alembic_config, offline_sql, upgrade
from tests.support.databases import Kind, scratch_database

KINDS: list[Kind] = ["sqlite", "mysql", "postgresql"]


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


@pytest.mark.parametrize("kind", KINDS)
async def test_upgrade_head_matches_the_models(kind: Kind, tmp_path: Path) -> None:
    with scratch_database(kind, tmp_path) as url:
        engine = create_engine(url)
        try:
            await upgrade(engine)
            await upgrade(engine)  # a second run finds nothing to do
            async with engine.connect() as connection:
                assert await connection.run_sync(_diff) == []
                tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
                assert {"user_account", "user_file", "alembic_version"} <= tables
                version = (
                    await connection.execute(text("SELECT version_num FROM alembic_version"))
                ).scalar()
                assert version == ScriptDirectory.from_config(alembic_config()).get_current_head()
        finally:
            await engine.dispose()


async def test_mysql_tables_are_utf8mb4(tmp_path: Path) -> None:
    with scratch_database("mysql", tmp_path) as url:
        engine = create_engine(url)
        try:
            await upgrade(engine)
            async with engine.connect() as connection:
                rows = await connection.execute(
                    text(
                        "SELECT table_name, table_collation FROM information_schema.tables "
                        "WHERE table_schema = DATABASE() AND table_name LIKE 'user%'"
                    )
                )
                collations = {row[0]: row[1] for row in rows}
            assert set(collations) == {"user_account", "user_file"}
            assert all(c.startswith("utf8mb4") for c in collations.values())
        finally:
            await engine.dispose()


@pytest.mark.parametrize("kind", KINDS)
def test_offline_ddl_creates_both_tables(kind: Kind) -> None:
    ddl = offline_sql(kind)
    assert "CREATE TABLE user_account" in ddl
    assert "CREATE TABLE user_file" in ddl
    assert "ix_user_file_owner_state_created" in ddl
    if kind == "mysql":
        assert "utf8mb4" in ddl
        assert "DATETIME(6)" in ddl
