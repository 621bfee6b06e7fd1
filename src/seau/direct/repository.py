"""The SQL of direct uploads: plain functions of a session, none of which commits."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from seau.db.models import DirectUpload, FileState, UserFile
from seau.events import outbox
from seau.events.types import EventType
from seau.files.schemas import file_event_data
from seau.quotas import ledger

_FILES = UserFile.metadata.tables[UserFile.__tablename__]


async def owned(
    session: AsyncSession, *, owner_id: uuid.UUID, upload_id: uuid.UUID
) -> DirectUpload | None:
    found: DirectUpload | None = await session.scalar(
        select(DirectUpload).where(DirectUpload.id == upload_id, DirectUpload.owner_id == owner_id)
    )
    return found


async def by_id(session: AsyncSession, upload_id: uuid.UUID) -> DirectUpload | None:
    return await session.get(DirectUpload, upload_id)


async def ready_file(
    session: AsyncSession, *, owner_id: uuid.UUID, file_id: uuid.UUID
) -> UserFile | None:
    found: UserFile | None = await session.scalar(
        select(UserFile).where(
            UserFile.id == file_id,
            UserFile.owner_id == owner_id,
            UserFile.state == FileState.READY,
        )
    )
    return found


async def take(session: AsyncSession, upload_id: uuid.UUID) -> bool:
    """Delete the upload's row; whether this transaction was the one to delete it
    (on PostgreSQL and MariaDB a second one waits for the first's commit, then finds
    nothing), so that only one completion or removal acts on it."""
    result = await session.execute(delete(DirectUpload).where(DirectUpload.id == upload_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def make_file(session: AsyncSession, *, file: UserFile) -> None:
    """The verified upload's file row, its `file.ready` event and its quota settled,
    in the caller's transaction (which has taken the upload's row)."""
    values = {column.key: getattr(file, column.key) for column in _FILES.columns}
    await session.execute(insert(_FILES), values)
    await outbox.record(
        session,
        type=EventType.FILE_READY,
        resource_id=file.id,
        owner_id=file.owner_id,
        data=file_event_data(file),
    )
    # Last: the owner's usage row stays locked only until the commit.
    await ledger.settle(session, reservation_id=file.id, owner_id=file.owner_id, size=file.size)


async def expired(session: AsyncSession, *, before: datetime, limit: int) -> list[DirectUpload]:
    rows = await session.scalars(
        select(DirectUpload)
        .where(DirectUpload.expires_at < before)
        .order_by(DirectUpload.expires_at)
        .limit(limit)
    )
    return list(rows)
