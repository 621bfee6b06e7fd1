"""Quotas: how much each owner may store, what they use, and the room uploads hold.

An upload reserves room before its first byte is stored: all of it when its size
is known (a raw body's `Content-Length`, tus `Upload-Length`), otherwise some room
ahead of its bytes, grown as they come (`gate`), so that it is cut off at the
first chunk that crosses what is left. The reservation becomes usage in the
transaction that makes the file ready, and is released when the upload fails,
is terminated or expires, or by `seau gc` when its process was killed
(docs/decisions.md, "Quotas: reservations in SQL"). The SQL is in `ledger`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, AsyncIterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seau.auth.owner_check import OwnerCheck
from seau.auth.owners import check_subject, owner_for
from seau.db.base import utcnow
from seau.db.unit import DEFAULT_TIMEOUT_SECONDS, unit_of_work
from seau.quotas import ledger
from seau.quotas.ledger import Defaults, Outcome, Usage

__all__ = ["Defaults", "Held", "Quotas", "Usage"]

MIN_STEP = 1 << 20
"""Room an upload of unknown size holds ahead of its bytes, at least..."""
MAX_STEP = 64 << 20
"""...and at most; in between, a quarter of what it has sent (few round trips for a
large upload, little room held from the owner's other uploads)."""

_STALE_BATCH = 500


@dataclass(slots=True)
class Held:
    """A reservation this process made: its id is the file's or the upload's."""

    id: uuid.UUID
    owner_id: uuid.UUID
    bytes: int
    reserved: bool = True
    """False when no quota applied at the start: nothing was held, nothing to give back."""


def _step(total: int) -> int:
    return min(MAX_STEP, max(MIN_STEP, total // 4))


class Quotas:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        defaults: Defaults | None = None,
        db_timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self._sessions = sessions
        self.defaults = defaults or Defaults()
        self._db_timeout = db_timeout

    # -- uploads -------------------------------------------------------------

    async def reserve(
        self,
        *,
        owner_id: uuid.UUID,
        reservation_id: uuid.UUID,
        size: int | None,
        check: OwnerCheck | None = None,
    ) -> Held:
        """Room for one file of ``size`` bytes (None: unknown, some room ahead),
        or `QuotaExceeded`. One transaction; a second makes the owner's row first
        when it has none. ``check``: a seau sign-in's owner check, made in that
        transaction (`InvalidToken` unless it holds; `seau.auth.owner_check`).

        When no quota applies to the owner (none by default, none of their own),
        nothing is held: a read, where a reservation is a write and, on SQLite, an
        fsync before the first byte. The file is counted when it is ready all the
        same (`ledger.settle`); only a quota set while it streams does not see it
        (docs/decisions.md, "Quotas")."""
        if not self.defaults.bytes and not self.defaults.files:
            async with self._unit() as session:
                own = await ledger.own_quotas(session, owner_id, check=check)
            check = None  # made
            if own is not None and not any(own):
                return Held(
                    id=reservation_id, owner_id=owner_id, bytes=ledger.UNBOUNDED, reserved=False
                )
        for _ in range(2):
            if size is None:
                got = await self._extend(
                    owner_id, reservation_id, at_least=0, wanted=MIN_STEP, check=check
                )
                if got is not None:
                    return Held(id=reservation_id, owner_id=owner_id, bytes=got)
            else:
                async with self._unit() as session:
                    if check is not None:
                        await check.confirm(session)
                    outcome = await ledger.reserve(
                        session,
                        owner_id=owner_id,
                        reservation_id=reservation_id,
                        bytes=size,
                        defaults=self.defaults,
                        now=utcnow(),
                    )
                    if outcome is Outcome.RESERVED:
                        await session.commit()
                        return Held(id=reservation_id, owner_id=owner_id, bytes=size)
                    await session.rollback()
                    if outcome is Outcome.OVER:
                        found = await ledger.usage(session, owner_id, self.defaults)
                        raise found.refusal(bytes=size, files=1)
            await self.ensure_row(owner_id)
        raise RuntimeError(f"owner {owner_id} has no usage row and none could be made")

    async def resize(self, held: Held, size: int) -> None:
        """The upload's size became known: hold exactly ``size`` bytes, or
        `QuotaExceeded` (and nothing changed)."""
        got = await self._extend(held.owner_id, held.id, at_least=size, wanted=size, exact=True)
        if got is None:
            await self.ensure_row(held.owner_id)
            got = await self._extend(held.owner_id, held.id, at_least=size, wanted=size, exact=True)
        if got is None:
            raise RuntimeError(f"owner {held.owner_id} has no usage row")
        held.bytes = got

    async def gate(
        self, held: Held, data: AsyncIterable[bytes], *, offset: int = 0
    ) -> AsyncGenerator[bytes, None]:
        """``data``, holding room for each chunk before it passes on: a chunk that
        would cross the quota is not passed on (`QuotaExceeded`). ``offset``:
        bytes the upload stored before (a resumable upload's). The caller closes
        it (`aclose`) when done with it, whether it read it all or not."""
        total = offset
        async for chunk in data:
            total += len(chunk)
            if total > held.bytes:
                got = await self._extend(
                    held.owner_id, held.id, at_least=total, wanted=total + _step(total)
                )
                if got is None:
                    raise RuntimeError(f"owner {held.owner_id} has no usage row")
                held.bytes = got
            yield chunk

    async def _extend(
        self,
        owner_id: uuid.UUID,
        reservation_id: uuid.UUID,
        *,
        at_least: int,
        wanted: int,
        exact: bool = False,
        check: OwnerCheck | None = None,
    ) -> int | None:
        async with self._unit() as session:
            if check is not None:
                await check.confirm(session)
            got = await ledger.extend(
                session,
                owner_id=owner_id,
                reservation_id=reservation_id,
                at_least=at_least,
                wanted=wanted,
                exact=exact,
                defaults=self.defaults,
                now=utcnow(),
            )
            if got is None:
                await session.rollback()
                return None
            await session.commit()
            return got

    async def release(self, reservation_id: uuid.UUID) -> None:
        """Give back what a failed upload held; nothing if it holds nothing."""
        async with self._unit() as session:
            await ledger.release(session, reservation_id)
            await session.commit()

    async def ensure_row(self, owner_id: uuid.UUID) -> None:
        async with self._unit() as session:
            await ledger.ensure_row(session, owner_id)
            await session.commit()

    async def release_stale(self, *, before: datetime, dry_run: bool = False) -> int:
        """For `seau gc`: release the reservations of uploads that are gone (a
        killed process's), older than ``before``. Returns how many."""
        count = 0
        while True:
            async with self._unit() as session:
                batch = await ledger.stale(session, before=before, limit=_STALE_BATCH)
            if dry_run or not batch:
                return count + len(batch)
            for reservation_id in batch:
                await self.release(reservation_id)
            count += len(batch)
            if len(batch) < _STALE_BATCH:
                return count

    # -- reading and setting -------------------------------------------------

    async def usage(self, owner_id: uuid.UUID) -> Usage:
        async with self._unit() as session:
            return await ledger.usage(session, owner_id, self.defaults)

    async def of_subject(self, subject: str) -> Usage:
        """The usage and quotas of the owner named ``subject`` (made on first use)."""
        async with self._unit() as session:
            owner = await owner_for(session, check_subject(subject))
        return await self.usage(owner.id)

    async def set_quota(self, subject: str, *, values: dict[str, int | None]) -> Usage:
        """Set the owner's ``quota_bytes`` and/or ``quota_files`` (None: back to the
        server's default; 0: unlimited); the owner is made if it does not exist yet.
        Uploads already reserved keep their room; the next ones see the new quota."""
        async with self._unit() as session:
            owner = await owner_for(session, check_subject(subject))
        await self.ensure_row(owner.id)
        async with self._unit() as session:
            await ledger.set_quota(session, owner.id, values)
            await session.commit()
        return await self.usage(owner.id)

    def _unit(self) -> AbstractAsyncContextManager[AsyncSession]:
        return unit_of_work(self._sessions, timeout_seconds=self._db_timeout)
