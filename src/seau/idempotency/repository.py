"""The SQL of idempotency records (`seau.db.models.IdempotencyRecord`): functions
of a session, run inside the caller's transaction (none of them commits)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from seau.db.models import IdempotencyRecord

_RECORDS = IdempotencyRecord.metadata.tables[IdempotencyRecord.__tablename__]


def _mine(owner_id: uuid.UUID, key_hash: str) -> tuple[ColumnElement[bool], ...]:
    c = _RECORDS.c
    return (c.owner_id == owner_id, c.key_hash == key_hash)


async def claim(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    key_hash: str,
    fingerprint: str,
    token: str,
    now: datetime,
) -> bool:
    """Insert the record of a request about to run, unless the key has one
    already (on any instance): True when this request holds it. Run it alone in
    its transaction: a refused insert leaves that transaction to be rolled back
    (PostgreSQL aborts it)."""
    values = {
        "owner_id": owner_id,
        "key_hash": key_hash,
        "fingerprint": fingerprint,
        "claim": token,
        "claimed_at": now,
        "answer": None,
        "created_at": now,
    }
    try:
        await session.execute(insert(_RECORDS).values(values))
    except IntegrityError:
        # The key has a record (its primary key): the caller's transaction is
        # rolled back and the record read in a new one.
        return False
    return True


async def get(
    session: AsyncSession, *, owner_id: uuid.UUID, key_hash: str
) -> IdempotencyRecord | None:
    found: IdempotencyRecord | None = await session.scalar(
        select(IdempotencyRecord).where(*_mine(owner_id, key_hash))
    )
    return found


async def take_over(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    key_hash: str,
    fingerprint: str,
    token: str,
    now: datetime,
    expired_before: datetime,
    abandoned_before: datetime,
) -> bool:
    """Claim a record that no longer counts: older than a day (its key may be used
    afresh), or claimed by a request whose process stopped renewing it. The
    condition is evaluated on the row as it is when the UPDATE runs, so of two
    instances taking over at once, one does."""
    c = _RECORDS.c
    result = await session.execute(
        update(_RECORDS)
        .where(
            *_mine(owner_id, key_hash),
            or_(
                c.created_at < expired_before,
                and_(c.claim.is_not(None), c.claimed_at < abandoned_before),
            ),
        )
        .values(fingerprint=fingerprint, claim=token, claimed_at=now, answer=None, created_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def renew(
    session: AsyncSession, *, owner_id: uuid.UUID, key_hash: str, token: str, now: datetime
) -> bool:
    result = await session.execute(
        update(_RECORDS)
        .where(*_mine(owner_id, key_hash), _RECORDS.c.claim == token)
        .values(claimed_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def answer(
    session: AsyncSession, *, owner_id: uuid.UUID, key_hash: str, token: str, sealed: str
) -> bool:
    """Store the answer of the request that holds the claim; the claim ends."""
    result = await session.execute(
        update(_RECORDS)
        .where(*_mine(owner_id, key_hash), _RECORDS.c.claim == token)
        .values(claim=None, answer=sealed)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def release(session: AsyncSession, *, owner_id: uuid.UUID, key_hash: str, token: str) -> None:
    """The request failed: its key is free for a retry."""
    await session.execute(
        delete(_RECORDS).where(*_mine(owner_id, key_hash), _RECORDS.c.claim == token)
    )


def _old(before: datetime, abandoned_before: datetime) -> ColumnElement[bool]:
    """Records older than ``before`` whose request is not running."""
    c = _RECORDS.c
    return and_(c.created_at < before, or_(c.claim.is_(None), c.claimed_at < abandoned_before))


async def purge(session: AsyncSession, *, before: datetime, abandoned_before: datetime) -> int:
    """Delete the records older than ``before`` whose request is not running."""
    result = await session.execute(delete(_RECORDS).where(_old(before, abandoned_before)))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def count_old(session: AsyncSession, *, before: datetime, abandoned_before: datetime) -> int:
    """How many records `purge` would delete (`seau gc --dry-run`)."""
    found = await session.scalar(
        select(func.count()).select_from(_RECORDS).where(_old(before, abandoned_before))
    )
    return int(found or 0)
