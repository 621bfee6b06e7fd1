"""Migration 0008 counts the files stored before it: every owner's usage row holds
the sum and count of their ready files (pending ones do not count)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from seau.db.base import UTCDateTime
from seau.db.engine import create_engine
from seau.db.migrate import upgrade
from tests.quotas.invariant import check_invariant
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
FILES = sa.table(
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
USAGE = sa.table(
    "owner_usage",
    sa.column("owner_id", sa.Uuid()),
    sa.column("used_bytes"),
    sa.column("used_files"),
    sa.column("reserved_bytes"),
    sa.column("quota_bytes"),
)


@pytest.mark.parametrize("kind", KINDS)
async def test_0008_counts_every_owners_ready_files(kind: Kind, tmp_path: Path) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    owners = [uuid.uuid4() for _ in range(3)]
    with scratch_database(kind, tmp_path) as url:
        engine = create_engine(url)
        try:
            await upgrade(engine, "0007")
            async with engine.begin() as connection:
                await connection.execute(
                    sa.insert(ACCOUNTS),
                    [
                        {
                            "id": owner,
                            "subject": f"sub-{i}",
                            "is_active": True,
                            "is_admin": False,
                            "token_version": 0,
                            "created_at": now,
                        }
                        for i, owner in enumerate(owners)
                    ],
                )
                rows = []
                # Owner i has i + 1 ready files of 1000 * (i + 1) bytes, and a pending one.
                for i, owner in enumerate(owners[:2]):
                    for j in range(i + 2):
                        file_id = uuid.uuid4()
                        rows.append(
                            {
                                "id": file_id,
                                "owner_id": owner,
                                "object_key": f"files/{file_id.hex}",
                                "name": f"{j}.bin",
                                "content_type": "application/octet-stream",
                                "size": 1000 * (i + 1),
                                "state": "pending" if j == i + 1 else "ready",
                                "created_at": now,
                                "updated_at": now,
                            }
                        )
                await connection.execute(sa.insert(FILES), rows)
            await upgrade(engine)
            async with engine.connect() as connection:
                found = {
                    row.owner_id: (row.used_bytes, row.used_files, row.reserved_bytes)
                    for row in await connection.execute(sa.select(USAGE))
                }
                assert all(
                    row.quota_bytes is None for row in await connection.execute(sa.select(USAGE))
                )
        finally:
            await engine.dispose()
        assert found == {
            owners[0]: (1000, 1, 0),
            owners[1]: (4000, 2, 0),
            owners[2]: (0, 0, 0),
        }
        await check_invariant(url)
