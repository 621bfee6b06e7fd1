"""Migration 0007 (share links) on SQLite, MariaDB and PostgreSQL: it goes up over
existing rows and down again, and a file's deletion takes its shares on each."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, delete, func, insert, inspect, select

from seau.db.engine import create_engine
from seau.db.migrate import alembic_config, upgrade
from seau.db.models import Share, User, UserFile
from tests.support.databases import Kind, scratch_database

SHARES = "0007"


def _downgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


@pytest.mark.parametrize("kind", ["sqlite", "mysql", "postgresql"])
async def test_0007_goes_up_and_down_and_shares_go_with_their_file(
    kind: Kind, tmp_path: Path
) -> None:
    before = ScriptDirectory.from_config(alembic_config()).get_revision(SHARES).down_revision
    assert isinstance(before, str)
    now = datetime(2026, 12, 5, tzinfo=UTC)
    owner, file_id = uuid.uuid4(), uuid.uuid4()
    with scratch_database(kind, tmp_path) as url:
        engine = create_engine(url)
        try:
            await upgrade(engine, before)
            async with engine.begin() as connection:
                await connection.execute(
                    insert(User).values(
                        id=owner,
                        subject=str(owner),
                        is_active=True,
                        is_admin=False,
                        token_version=0,
                        created_at=now,
                    )
                )
                await connection.execute(
                    insert(UserFile).values(
                        id=file_id,
                        owner_id=owner,
                        object_key=f"files/{file_id.hex}",
                        name="kept.txt",
                        content_type="text/plain",
                        size=4,
                        sha256="0" * 64,
                        state="ready",
                        created_at=now,
                        updated_at=now,
                    )
                )
            await upgrade(engine, SHARES)
            async with engine.begin() as connection:
                assert await connection.scalar(select(func.count()).select_from(UserFile)) == 1
                for n in range(2):
                    await connection.execute(
                        insert(Share).values(
                            id=uuid.uuid4(),
                            file_id=file_id,
                            owner_id=owner,
                            token_hash=f"{n:064x}",
                            expires_at=now + timedelta(days=1),
                            downloads=0,
                            created_at=now,
                        )
                    )
            async with engine.begin() as connection:
                await connection.execute(delete(UserFile).where(UserFile.id == file_id))
                assert await connection.scalar(select(func.count()).select_from(Share)) == 0
            async with engine.begin() as connection:
                await connection.run_sync(_downgrade, before)
                tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
                assert Share.__tablename__ not in tables
                assert {"user_account", "user_file"} <= tables
            await upgrade(engine)
        finally:
            await engine.dispose()
