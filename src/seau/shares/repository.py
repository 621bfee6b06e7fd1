"""All the SQL of share links: plain functions of a session."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from seau.db.models import FileState, Share, UserFile


@dataclass(frozen=True, slots=True)
class Found:
    """A share with its ready file."""

    share: Share
    file: UserFile


async def insert(session: AsyncSession, share: Share) -> None:
    session.add(share)
    await session.flush()


async def by_token_hash(session: AsyncSession, token_hash: str) -> Found | None:
    """The share whose secret hashes to ``token_hash``, if its file is ready."""
    row = (
        await session.execute(
            select(Share, UserFile)
            .join(UserFile, UserFile.id == Share.file_id)
            .where(Share.token_hash == token_hash, UserFile.state == FileState.READY)
        )
    ).first()
    return None if row is None else Found(share=row[0], file=row[1])


async def by_id(session: AsyncSession, share_id: uuid.UUID) -> Share | None:
    return await session.scalar(select(Share).where(Share.id == share_id))


async def listing(
    session: AsyncSession, *, owner_id: uuid.UUID, file_id: uuid.UUID | None
) -> list[tuple[Share, str]]:
    """The owner's shares (of one file when ``file_id``), newest first, with file names."""
    statement = (
        select(Share, UserFile.name)
        .join(UserFile, UserFile.id == Share.file_id)
        .where(Share.owner_id == owner_id, UserFile.state == FileState.READY)
    )
    if file_id is not None:
        statement = statement.where(Share.file_id == file_id)
    statement = statement.order_by(Share.created_at.desc(), Share.id.desc())
    return [(share, name) for share, name in (await session.execute(statement)).all()]


async def remove(session: AsyncSession, *, owner_id: uuid.UUID, share_id: uuid.UUID) -> bool:
    result = await session.execute(
        delete(Share).where(Share.id == share_id, Share.owner_id == owner_id)
    )
    return bool(getattr(result, "rowcount", 0))


async def count_download(session: AsyncSession, *, share_id: uuid.UUID, now: datetime) -> bool:
    """Count one download if the share still allows one; False if it does not.

    One conditional UPDATE: the database serializes concurrent ones on the row and
    evaluates the condition on the row as it is then, so instances that share the
    database never count past ``max_downloads`` between them.
    """
    result = await session.execute(
        update(Share)
        .where(
            Share.id == share_id,
            Share.expires_at > now,
            or_(Share.max_downloads.is_(None), Share.downloads < Share.max_downloads),
        )
        .values(downloads=Share.downloads + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
