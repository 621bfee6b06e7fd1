"""Migration 0009 keeps every claim: files and uploads stored before it get
`declared_type` = their `content_type`, on each database; SQLite's name search
(the FTS5 index of 0004, keyed by rowid) still finds old and new files; and it
goes back down."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from seau.db.base import UTCDateTime
from seau.db.engine import create_engine
from seau.db.migrate import alembic_config, upgrade
from seau.db.models import NAME_SEARCH_TABLE
from tests.support.databases import Kind, scratch_database

KINDS = [
    "sqlite",
    pytest.param("mysql", marks=pytest.mark.mysql),
    pytest.param("postgresql", marks=pytest.mark.postgresql),
]

ACCOUNTS = sa.table(
    "user_account",
    sa.column("id", sa.Uuid()),
    sa.column("subject"),
    sa.column("is_active"),
    sa.column("is_admin"),
    sa.column("token_version"),
    sa.column("created_at", UTCDateTime()),
)


def _common() -> list[sa.ColumnClause[object]]:
    return [
        sa.column("id", sa.Uuid()),
        sa.column("owner_id", sa.Uuid()),
        sa.column("name"),
        sa.column("content_type"),
        sa.column("created_at", UTCDateTime()),
        sa.column("updated_at", UTCDateTime()),
    ]


FILES = sa.table(
    "user_file", *_common(), sa.column("object_key"), sa.column("size"), sa.column("state")
)
FILES_AFTER = sa.table(
    "user_file",
    *(sa.column(c.name, c.type) for c in FILES.columns),
    sa.column("declared_type"),
)
UPLOADS = sa.table(
    "upload",
    *_common(),
    sa.column("upload_offset"),
    sa.column("part_size"),
    sa.column("state"),
    sa.column("expires_at", UTCDateTime()),
)


def _downgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


@pytest.mark.parametrize("kind", KINDS)
async def test_0009_keeps_each_claim_as_the_declared_type(kind: Kind, tmp_path: Path) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    owner = uuid.uuid4()
    types = {"report.pdf": "application/pdf", "cat.png": "image/png", "x": "text/plain"}
    with scratch_database(kind, tmp_path) as url:
        engine = create_engine(url)
        try:
            await upgrade(engine, "0008")
            async with engine.begin() as connection:
                await connection.execute(
                    sa.insert(ACCOUNTS),
                    [
                        {
                            "id": owner,
                            "subject": "sub",
                            "is_active": True,
                            "is_admin": False,
                            "token_version": 0,
                            "created_at": now,
                        }
                    ],
                )
                for name, content_type in types.items():
                    common = {
                        "owner_id": owner,
                        "name": name,
                        "content_type": content_type,
                        "created_at": now,
                        "updated_at": now,
                    }
                    file_id = uuid.uuid4()
                    await connection.execute(
                        sa.insert(FILES),
                        [
                            {
                                **common,
                                "id": file_id,
                                "object_key": f"files/{file_id.hex}",
                                "size": 1,
                                "state": "ready",
                            }
                        ],
                    )
                    await connection.execute(
                        sa.insert(UPLOADS),
                        [
                            {
                                **common,
                                "id": uuid.uuid4(),
                                "upload_offset": 0,
                                "part_size": 1 << 20,
                                "state": "active",
                                "expires_at": now + timedelta(days=1),
                            }
                        ],
                    )
            await upgrade(engine)
            async with engine.connect() as connection:
                for table in ("user_file", "upload"):
                    found = {
                        row.name: (row.content_type, row.declared_type)
                        for row in await connection.execute(
                            sa.text(f"SELECT name, content_type, declared_type FROM {table}")  # noqa: S608
                        )
                    }
                    assert found == {name: (kind_, kind_) for name, kind_ in types.items()}, table
                if kind == "sqlite" and await _has_search_index(connection):
                    # Not rebuilt: the index still finds the rows by their rowid.
                    await connection.execute(
                        sa.insert(FILES_AFTER),
                        [
                            {
                                "id": uuid.uuid4(),
                                "owner_id": owner,
                                "name": "after.pdf",
                                "content_type": "application/pdf",
                                "declared_type": "text/plain",
                                "object_key": "files/after",
                                "size": 1,
                                "state": "ready",
                                "created_at": now,
                                "updated_at": now,
                            }
                        ],
                    )
                    await connection.commit()
                    matches = await connection.execute(
                        sa.text(
                            f"SELECT f.name FROM {NAME_SEARCH_TABLE} s JOIN user_file f "  # noqa: S608
                            f"ON f.rowid = s.rowid WHERE {NAME_SEARCH_TABLE} MATCH '\"pdf\"' "
                            "ORDER BY f.name"
                        )
                    )
                    assert [row.name for row in matches] == ["after.pdf", "report.pdf"]
            async with engine.begin() as connection:
                await connection.run_sync(_downgrade, "0008")
            async with engine.connect() as connection:
                for table in ("user_file", "upload"):
                    columns = await connection.run_sync(_columns, table)
                    assert "declared_type" not in columns
                    assert "content_type" in columns
        finally:
            await engine.dispose()


def _columns(connection: Connection, table: str) -> set[str]:
    return {column["name"] for column in sa.inspect(connection).get_columns(table)}


async def _has_search_index(connection: AsyncConnection) -> bool:
    found = await connection.scalar(
        sa.text("SELECT count(*) FROM sqlite_master WHERE name = :name"),
        {"name": NAME_SEARCH_TABLE},
    )
    return bool(found)
