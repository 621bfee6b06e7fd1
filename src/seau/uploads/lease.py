"""The lease on an upload row: who may write to an upload (tusd's `Locker`).

The contract:

- **Who may write.** Only the holder of an upload's lease writes its bytes and
  its row. A request takes the lease with one conditional UPDATE (portable to
  SQLite, MariaDB and PostgreSQL; `repository.take_lease`) that succeeds when
  nobody holds it or the holder's time ran out, on any instance. Every write
  that records the holder's work matches its token, so a request that lost the
  lease can record nothing. A request that finds the lease held answers 423.
- **Renewal.** While bytes stream (`renewing`), the lease is extended every
  third of its duration; each extension must finish within that third and
  within the database timeout, or it counts as failed.
- **Losing it.** One failed or refused extension marks the lease `lost`: the
  holder must stop writing at once (`check` raises `UploadLocked`) and discard
  what it wrote, since its record will not match. Another request may take the
  lease once its time has run out, not before: two more renewals' worth.
- **Release.** The commit that records the holder's last write releases the
  lease in the same statement; the holder then calls `released`. Otherwise
  `release` frees it, shielded from cancellation so that a client's retry is
  not kept waiting, and at most once. A lease never released expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seau.db.base import utcnow
from seau.db.unit import unit_of_work
from seau.uploads import repository
from seau.uploads.errors import UploadLocked

log = logging.getLogger("seau.uploads")


def new_token() -> str:
    return secrets.token_hex(16)


class Lease:
    """A held lease on one upload row (see the module's contract)."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        db_timeout: float,
        upload_id: uuid.UUID,
        token: str,
        duration: timedelta,
    ) -> None:
        self._sessions = sessions
        self._db_timeout = db_timeout
        self.upload_id = upload_id
        self.token = token
        self._duration = duration
        self.lost = False
        self._held = True

    def check(self, offset: int) -> None:
        """Raises `UploadLocked` (with the recorded ``offset``) once the lease is lost."""
        if self.lost:
            raise UploadLocked(offset, "the upload's lock was lost mid-request")

    def released(self) -> None:
        """A commit of the holder's released the lease (or deleted the row)."""
        self._held = False

    @contextlib.asynccontextmanager
    async def renewing(self) -> AsyncIterator[None]:
        task = asyncio.create_task(self._renew())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _renew(self) -> None:
        # A third of the lease: two renewals may fail (a slow database) before
        # another instance could take it; after one failure, stop writing at once.
        interval = self._duration.total_seconds() / 3
        while not self.lost:
            await asyncio.sleep(interval)
            try:
                # A renewal that hangs counts as failed: the lease must not run out unseen.
                renewed = await asyncio.wait_for(self._extend(), interval)
            except Exception:
                log.warning("could not renew the lease of upload %s", self.upload_id)
                renewed = False
            if not renewed:
                self.lost = True

    async def _extend(self) -> bool:
        async with unit_of_work(self._sessions, timeout_seconds=self._db_timeout) as session:
            return await repository.extend_lease(
                session, self.upload_id, token=self.token, until=utcnow() + self._duration
            )

    async def release(self) -> None:
        """Free the upload for the next request, unless a commit already did."""
        if not self._held:
            return
        self._held = False
        # Shielded: a cancelled request must still free the upload for its retry.
        try:
            await asyncio.shield(self._release())
        except Exception:
            log.warning("could not release the lease of upload %s; it expires", self.upload_id)

    async def _release(self) -> None:
        async with unit_of_work(self._sessions, timeout_seconds=self._db_timeout) as session:
            await repository.release_lease(session, self.upload_id, token=self.token)
