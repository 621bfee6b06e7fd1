"""One migration history for SQLite, MariaDB and PostgreSQL, matching the models."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event, func, inspect, select, text

from seau.db.base import Base, UTCDateTime
from seau.db.engine import create_engine
from seau.db.migrate import alembic_config, offline_sql, upgrade
from seau.db.models import (
    NAME_SEARCH_TABLE,
    NAME_TRIGRAM_INDEX,
    Upload,
    User,
    UserFile,
    is_search_index,
)
from tests.support.databases import Kind, scratch_database

KINDS: list[Kind] = ["sqlite", "mysql", "postgresql"]
# What MariaDB's utf8mb4_unicode_ci took for `victim@example.com`.
VARIANTS = ("victim@exámple.com", "VICTIM@example.com", "victim@exam\u200bple.com")


def _models_only(
    _object: object, name: str | None, type_: str, reflected: bool, _compare_to: object
) -> bool:
    return not (reflected and is_search_index(name, type_))


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_object": _models_only}
    )
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


async def test_0003_makes_mysql_emails_compare_bytes_and_keeps_the_rows(tmp_path: Path) -> None:
    with scratch_database("mysql", tmp_path) as url:
        engine = create_engine(url)
        try:
            await upgrade(engine, "0002")
            accounts = ["victim@example.com", "ada@exámple.com", "emoji-😀@example.com"]
            async with engine.begin() as connection:
                for n, email in enumerate(accounts):
                    await connection.execute(
                        text(
                            "INSERT INTO user_account (id, email, password_hash, is_active, "
                            "is_admin, token_version, created_at) VALUES "
                            "(:id, :email, 'h', 1, 0, :n, '2026-12-01 00:00:00')"
                        ),
                        {"id": f"{n:032x}", "email": email, "n": n},
                    )
                # Before: the collation finds the victim under another spelling.
                found = await connection.scalar(
                    text("SELECT count(*) FROM user_account WHERE email = 'victim@exámple.com'")
                )
                assert found == 1
            await upgrade(engine, "0003")
            async with engine.connect() as connection:
                rows = await connection.execute(
                    text("SELECT email, token_version FROM user_account ORDER BY token_version")
                )
                assert [(email, n) for email, n in rows] == [(e, n) for n, e in enumerate(accounts)]
                collation = await connection.scalar(
                    text(
                        "SELECT collation_name FROM information_schema.columns WHERE "
                        "table_schema = DATABASE() AND table_name = 'user_account' "
                        "AND column_name = 'email'"
                    )
                )
                assert collation == "utf8mb4_bin"
                for variant in VARIANTS:
                    found = await connection.scalar(
                        text("SELECT count(*) FROM user_account WHERE email = :email"),
                        {"email": variant},
                    )
                    assert found == 0, variant
        finally:
            await engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_sqlite_and_postgresql_emails_already_compare_bytes(
    kind: Kind, tmp_path: Path
) -> None:
    users = Base.metadata.tables["user_account"]
    with scratch_database(kind, tmp_path) as url:
        engine = create_engine(url)
        try:
            await upgrade(engine)
            async with engine.begin() as connection:
                await connection.execute(
                    users.insert().values(
                        id=uuid.uuid4(),
                        subject="victim",
                        email="victim@example.com",
                        password_hash="h",
                        is_active=True,
                        is_admin=False,
                        token_version=0,
                        created_at=datetime.now(UTC),
                    )
                )
                for variant in VARIANTS:
                    found = await connection.scalar(
                        select(func.count()).where(users.c.email == variant)
                    )
                    assert found == 0, variant
        finally:
            await engine.dispose()


@pytest.mark.parametrize("kind", KINDS)
async def test_upgrade_head_makes_the_name_search_index_where_the_database_has_one(
    kind: Kind, tmp_path: Path
) -> None:
    with scratch_database(kind, tmp_path) as url:
        engine = create_engine(url)
        try:
            await upgrade(engine)
            async with engine.connect() as connection:
                tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
                indexes = await connection.run_sync(
                    lambda c: {i["name"] for i in inspect(c).get_indexes("user_file")}
                )
        finally:
            await engine.dispose()
    assert (NAME_SEARCH_TABLE in tables) == (kind == "sqlite")
    assert (NAME_TRIGRAM_INDEX in indexes) == (kind == "postgresql")


@pytest.mark.parametrize("kind", KINDS)
async def test_0005_makes_every_account_an_owner_and_keeps_every_row(
    kind: Kind, tmp_path: Path
) -> None:
    """Accounts, files and uploads made before 0005 are all there after it, owned as
    before; an account's subject is its id; the name search still finds files
    (SQLite rebuilds `user_account` with foreign keys off: nothing cascades)."""
    accounts = sa.table(
        "user_account",
        sa.column("id", sa.Uuid()),
        sa.column("email"),
        sa.column("password_hash"),
        sa.column("is_active"),
        sa.column("is_admin"),
        sa.column("token_version"),
        sa.column("created_at", UTCDateTime()),
    )
    files = sa.table(
        "user_file",
        sa.column("id", sa.Uuid()),
        sa.column("owner_id", sa.Uuid()),
        sa.column("object_key"),
        sa.column("name"),
        sa.column("content_type"),
        sa.column("size"),
        sa.column("state"),
        sa.column("created_at", UTCDateTime()),
        sa.column("updated_at", UTCDateTime()),
    )
    uploads = sa.table(
        "upload",
        sa.column("id", sa.Uuid()),
        sa.column("owner_id", sa.Uuid()),
        sa.column("name"),
        sa.column("content_type"),
        sa.column("upload_offset"),
        sa.column("part_size"),
        sa.column("state"),
        sa.column("expires_at", UTCDateTime()),
        sa.column("created_at", UTCDateTime()),
        sa.column("updated_at", UTCDateTime()),
    )
    now = datetime(2026, 12, 1, tzinfo=UTC)
    owners = [uuid.uuid4() for _ in range(3)]
    file_ids = {owner: [uuid.uuid4() for _ in range(4)] for owner in owners}
    with scratch_database(kind, tmp_path) as url:
        engine = create_engine(url)
        try:
            await upgrade(engine, "0004")
            async with engine.begin() as connection:
                await connection.execute(
                    accounts.insert(),
                    [
                        {
                            "id": owner,
                            "email": f"owner{n}@example.com",
                            "password_hash": "h",
                            "is_active": True,
                            "is_admin": n == 0,
                            "token_version": n,
                            "created_at": now,
                        }
                        for n, owner in enumerate(owners)
                    ],
                )
                await connection.execute(
                    files.insert(),
                    [
                        {
                            "id": file_id,
                            "owner_id": owner,
                            "object_key": f"k/{file_id}",
                            "name": f"holiday-{n}.jpg",
                            "content_type": "image/jpeg",
                            "size": n,
                            "state": "ready",
                            "created_at": now,
                            "updated_at": now,
                        }
                        for owner in owners
                        for n, file_id in enumerate(file_ids[owner])
                    ],
                )
                await connection.execute(
                    uploads.insert(),
                    [
                        {
                            "id": uuid.uuid4(),
                            "owner_id": owner,
                            "name": "big.iso",
                            "content_type": "application/octet-stream",
                            "upload_offset": 0,
                            "part_size": 5 << 20,
                            "state": "active",
                            "expires_at": now,
                            "created_at": now,
                            "updated_at": now,
                        }
                        for owner in owners
                    ],
                )
            await upgrade(engine)
            async with engine.connect() as connection:
                owned = await connection.execute(
                    select(User.id, User.subject, User.email, User.is_admin).order_by(
                        User.token_version
                    )
                )
                assert [tuple(row) for row in owned] == [
                    (owner, str(owner), f"owner{n}@example.com", n == 0)
                    for n, owner in enumerate(owners)
                ]
                for owner in owners:
                    kept = await connection.scalars(
                        select(UserFile.id).where(UserFile.owner_id == owner)
                    )
                    assert set(kept) == set(file_ids[owner])
                    count = await connection.scalar(
                        select(func.count()).select_from(Upload).where(Upload.owner_id == owner)
                    )
                    assert count == 1
                assert await connection.run_sync(_diff) == []
        finally:
            await engine.dispose()
        if kind == "sqlite":
            # The FTS5 index (0004) still serves the name search after the rebuild.
            service_engine = create_engine(url)
            try:
                async with service_engine.connect() as connection:
                    hits = await connection.scalar(
                        text(f"SELECT count(*) FROM {NAME_SEARCH_TABLE} WHERE name MATCH 'holiday'")  # noqa: S608
                    )
                assert hits == 12
            finally:
                await service_engine.dispose()


@pytest.mark.parametrize("kind", ["mysql", "postgresql"])
async def test_an_instance_starting_during_a_migration_waits_for_its_commit(
    kind: Kind, tmp_path: Path
) -> None:
    """Instances started together on a fresh database: one migrates, the others wait
    for its commit and find nothing left to do. A second instance is started while
    the first is about to commit (held there half a second): it must not see the
    database as it was before the migration. (On MariaDB the lock was once released
    before the last step's commit, and an instance starting then ran that step
    again: "Table 'idempotency_record' already exists", seen in CI.)"""
    with scratch_database(kind, tmp_path) as url:
        engine = create_engine(url)
        second: list[BaseException | None] = []

        def run_second() -> None:
            async def upgrade_once() -> None:
                other = create_engine(url)
                try:
                    await upgrade(other)
                finally:
                    await other.dispose()

            try:
                asyncio.run(upgrade_once())
                second.append(None)
            except BaseException as exc:
                second.append(exc)

        thread = threading.Thread(target=run_second)

        def on_commit(_connection: object) -> None:
            if not thread.is_alive() and not second:
                thread.start()
                time.sleep(0.5)  # the second instance asks for the lock meanwhile

        event.listen(engine.sync_engine, "commit", on_commit)
        try:
            await upgrade(engine)
        finally:
            thread.join(timeout=60)
            await engine.dispose()
        assert second == [None]
