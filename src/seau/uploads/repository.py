"""The SQL of resumable uploads: plain functions of a session, one transaction each.

A function that writes commits what it wrote, so that each one is a whole
unit of work for the caller to open (`seau.db.unit.unit_of_work`). Every
write on behalf of a request matches its lease token: a request that lost
its lease changes nothing (see `seau.uploads.lease`).
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from seau.db.models import FileState, Upload, UploadPart, UploadState, User, UserFile
from seau.db.unit import InCommit
from seau.events import outbox
from seau.events.types import EventType
from seau.files.keys import key_for
from seau.files.schemas import file_event_data
from seau.quotas import ledger
from seau.storage.staging import Part, Staged, StaleStaging


@dataclass(frozen=True, slots=True, kw_only=True)
class Taken:
    """An upload row as `take_lease` found it."""

    row: Upload
    held: bool
    """Whether the lease is now the caller's; if not, someone else holds it."""
    staged: Staged
    """Its staging state, parts included when ``held`` (none otherwise)."""


def staged_of(row: Upload, parts: tuple[Part, ...] = ()) -> Staged:
    """What the store's staging needs to know of an upload."""
    return Staged(
        name=row.id.hex,
        key=key_for(row.id),
        part_size=row.part_size,
        handle=row.handle,
        size=row.upload_offset,
        parts=parts,
        tail_key=row.tail_key,
    )


class Added(enum.Enum):
    ADDED = "added"
    TOO_MANY = "too_many"
    OVER_QUOTA = "over_quota"
    NO_USAGE_ROW = "no_usage_row"
    """The owner has no usage row yet: make it (`ledger.ensure_row`), then again."""


async def lock_owner(session: AsyncSession, owner_id: uuid.UUID) -> None:
    """Lock the owner's account row until the transaction ends, against another
    `lock_owner` only (SQLite's one connection runs one unit at a time anyway).

    On PostgreSQL the lock is `FOR NO KEY UPDATE`, which the foreign-key checks of
    the owner's other writes (a file's row, a reservation, an idempotency record:
    `FOR KEY SHARE` of the account) pass: with `FOR UPDATE`, every write for the
    owner waited for the creation's whole transaction, and under load those waits
    chained past the database timeout (503s in bench/scale.py). MariaDB has no such
    weaker lock: there it is `FOR UPDATE`, and the owner's writes wait for it.
    """
    await session.execute(_LOCK_OWNER, {"owner_id": owner_id})


_LOCK_OWNER = (
    select(User.id).where(User.id == bindparam("owner_id")).with_for_update(key_share=True)
)


async def add(
    session: AsyncSession,
    row: Upload,
    *,
    max_active: int,
    quota: ledger.Defaults,
    in_commit: InCommit[Upload] | None = None,
) -> Added:
    """Insert ``row`` and its quota reservation (its `length`, or none of its bytes
    while the length is deferred: they are reserved as they come), unless its owner
    has ``max_active`` unfinished, unexpired uploads already or the upload does not
    fit in the quota (then nothing is written). ``in_commit`` runs before the commit,
    once the row is in.

    The owner's account row is locked first (`lock_owner`), so two creations for
    one owner, on any instances, count one after the other and the cap is exact.
    The count is read after the lock: on MariaDB's REPEATABLE READ the snapshot
    starts at the first plain read, so it sees the other's commit.
    """
    await lock_owner(session, row.owner_id)
    active = await session.scalar(
        select(func.count())
        .select_from(Upload)
        .where(
            Upload.owner_id == row.owner_id,
            Upload.state != UploadState.DONE,
            Upload.expires_at > row.created_at,
        )
    )
    if (active or 0) >= max_active:
        await session.rollback()
        return Added.TOO_MANY
    outcome = await ledger.reserve(
        session,
        owner_id=row.owner_id,
        reservation_id=row.id,
        bytes=row.length or 0,
        defaults=quota,
        now=row.created_at,
    )
    if outcome is not ledger.Outcome.RESERVED:
        await session.rollback()
        return Added.OVER_QUOTA if outcome is ledger.Outcome.OVER else Added.NO_USAGE_ROW
    session.add(row)
    if in_commit is not None:
        await session.flush()
        await in_commit(session, row)
    await session.commit()
    return Added.ADDED


async def owned(
    session: AsyncSession, *, owner_id: uuid.UUID, upload_id: uuid.UUID
) -> Upload | None:
    """Another user's upload is None, like a missing one."""
    return await session.scalar(
        select(Upload).where(Upload.id == upload_id, Upload.owner_id == owner_id)
    )


async def take_lease(
    session: AsyncSession,
    upload_id: uuid.UUID,
    *,
    owner_id: uuid.UUID | None,
    token: str,
    now: datetime,
    until: datetime,
) -> Taken | None:
    """Lease the upload to ``token`` if nobody holds it, and read the row and
    its recorded parts, all in one transaction. None when there is no such
    upload (of ``owner_id``, when given)."""
    condition = [
        Upload.id == upload_id,
        or_(Upload.lease_token.is_(None), Upload.lease_until < now),
    ]
    if owner_id is not None:
        condition.append(Upload.owner_id == owner_id)
    result = await session.execute(
        update(Upload).where(*condition).values(lease_token=token, lease_until=until)
    )
    held = bool(result.rowcount)  # type: ignore[attr-defined]
    found = select(Upload).where(Upload.id == upload_id)
    if owner_id is not None:
        found = found.where(Upload.owner_id == owner_id)
    row = await session.scalar(found)
    if row is None:
        return None
    parts: tuple[Part, ...] = ()
    if held:
        # Only S3 staging records parts; a local upload's query finds none.
        recorded = await session.scalars(
            select(UploadPart).where(UploadPart.upload_id == upload_id).order_by(UploadPart.number)
        )
        parts = tuple(Part(number=p.number, etag=p.etag, size=p.size) for p in recorded)
        await session.commit()
    return Taken(row=row, held=held, staged=staged_of(row, parts))


async def extend_lease(
    session: AsyncSession, upload_id: uuid.UUID, *, token: str, until: datetime
) -> bool:
    """False when the lease is no longer ``token``'s."""
    result = await session.execute(
        update(Upload)
        .where(Upload.id == upload_id, Upload.lease_token == token)
        .values(lease_until=until)
    )
    await session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def release_lease(session: AsyncSession, upload_id: uuid.UUID, *, token: str) -> None:
    await session.execute(
        update(Upload)
        .where(Upload.id == upload_id, Upload.lease_token == token)
        .values(lease_token=None, lease_until=None)
    )
    await session.commit()


async def record(
    session: AsyncSession,
    upload_id: uuid.UUID,
    *,
    token: str,
    values: dict[str, object],
    parts: tuple[Part, ...],
) -> bool:
    """Record a request's bytes (``values`` on the row, the new S3 ``parts``),
    only while its lease holds; False, and nothing written, once it is lost."""
    result = await session.execute(
        update(Upload).where(Upload.id == upload_id, Upload.lease_token == token).values(**values)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        await session.rollback()
        return False
    session.add_all(
        UploadPart(upload_id=upload_id, number=p.number, etag=p.etag, size=p.size) for p in parts
    )
    await session.commit()
    return True


async def finish(
    session: AsyncSession,
    row: Upload,
    *,
    token: str,
    sha256: str,
    now: datetime,
    expires_at: datetime,
) -> bool:
    """Mark the upload done, release its lease and make its file (same id, at
    `key_for(id)`), in one transaction, while the lease holds.

    The row stays until ``expires_at`` so that a client resuming after a lost
    answer still learns that the upload is complete."""
    upload_id = row.id
    file = UserFile(
        id=row.id,
        owner_id=row.owner_id,
        object_key=key_for(row.id),
        name=row.name,
        content_type=row.content_type,
        declared_type=row.declared_type,
        size=row.length,
        sha256=sha256,
        state=FileState.READY,
        created_at=now,
        updated_at=now,
    )
    result = await session.execute(
        update(Upload)
        .where(Upload.id == upload_id, Upload.lease_token == token)
        .values(
            state=UploadState.DONE,
            tail_key=None,
            lease_token=None,
            lease_until=None,
            expires_at=expires_at,
            updated_at=now,
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        await session.rollback()
        return False
    await session.execute(delete(UploadPart).where(UploadPart.upload_id == upload_id))
    session.add(file)
    await session.flush()
    await outbox.record(
        session,
        type=EventType.FILE_READY,
        resource_id=file.id,
        owner_id=file.owner_id,
        data=file_event_data(file),
    )
    # Last, as every path that makes a file does: the owner's usage row stays
    # locked only until the commit, and no two paths take the event table and
    # the usage row in opposite orders (a cycle MariaDB broke as a deadlock).
    await ledger.settle(session, reservation_id=upload_id, owner_id=row.owner_id, size=file.size)
    await session.commit()
    return True


async def delete_upload(session: AsyncSession, upload_id: uuid.UUID, *, token: str) -> None:
    """Delete the row (its lease with it) if ``token`` still holds it."""
    await session.execute(delete(UploadPart).where(UploadPart.upload_id == upload_id))
    result = await session.execute(
        delete(Upload).where(Upload.id == upload_id, Upload.lease_token == token)
    )
    if result.rowcount:  # type: ignore[attr-defined]
        await ledger.release(session, upload_id)
    await session.commit()


async def expire(session: AsyncSession, row: Upload, *, token: str) -> None:
    """Delete an expired upload (its lease is ``token``) and tell it as
    `upload.expired`, in one transaction; nothing if the lease was lost."""
    await session.execute(delete(UploadPart).where(UploadPart.upload_id == row.id))
    result = await session.execute(
        delete(Upload).where(Upload.id == row.id, Upload.lease_token == token)
    )
    if result.rowcount:  # type: ignore[attr-defined]
        await outbox.record(
            session,
            type=EventType.UPLOAD_EXPIRED,
            resource_id=row.id,
            owner_id=row.owner_id,
            data={
                "id": str(row.id),
                "name": row.name,
                "content_type": row.content_type,
                "size": row.length,
                "offset": row.upload_offset,
                "created_at": _iso(row.created_at),
                "expires_at": _iso(row.expires_at),
            },
        )
        await ledger.release(session, row.id)
    await session.commit()


def _iso(moment: datetime) -> str:
    # As pydantic writes UTC datetimes in the API's JSON.
    return moment.isoformat().replace("+00:00", "Z")


async def expired(
    session: AsyncSession, now: datetime, *, after: uuid.UUID | None, limit: int
) -> list[tuple[uuid.UUID, UploadState]]:
    """Up to ``limit`` uploads that expired before ``now``, in id order after ``after``."""
    statement = select(Upload.id, Upload.state).where(Upload.expires_at < now)
    if after is not None:
        statement = statement.where(Upload.id > after)
    rows = await session.execute(statement.order_by(Upload.id).limit(limit))
    return [(upload_id, state) for upload_id, state in rows]


async def delete_done(session: AsyncSession, upload_id: uuid.UUID, *, now: datetime) -> None:
    """Forget a finished upload's row once expired; its file lives on alone."""
    await session.execute(
        delete(Upload).where(
            Upload.id == upload_id,
            Upload.state == UploadState.DONE,
            Upload.expires_at < now,
        )
    )
    await session.commit()


async def knows(session: AsyncSession, item: StaleStaging) -> bool:
    """Whether an unfinished upload still records this staging data."""
    statement = select(Upload.id).where(Upload.state != UploadState.DONE)
    if item.handle is not None:
        statement = statement.where(Upload.handle == item.handle)
    elif item.tail_key is not None:
        statement = statement.where(Upload.tail_key == item.tail_key)
    else:
        return True
    return await session.scalar(statement.limit(1)) is not None
