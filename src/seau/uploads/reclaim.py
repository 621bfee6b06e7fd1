"""What `seau gc` does for resumable uploads: remove expired uploads, and the
staging data no upload records (what a crash between creating it and recording
it left behind).

An expired upload whose every byte is recorded (`completing`: its completion was
cut, and nobody asked since) is made a file instead; only one whose bytes are
gone (`UploadDataLost`) is removed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seau.db.base import utcnow
from seau.db.models import Upload, UploadState
from seau.db.unit import unit_of_work
from seau.errors import DatabaseUnavailable, StorageUnavailableError, TypeNotAllowed
from seau.storage import StorageUnavailable, Store
from seau.storage.staging import Staged, UploadStaging
from seau.uploads import repository
from seau.uploads.errors import UploadDataLost, UploadLocked
from seau.uploads.lease import Lease, new_token

log = logging.getLogger("seau.uploads")

# The reconciler holds an upload only while it removes it.
RECLAIM_LEASE = timedelta(minutes=5)
_BATCH = 500

Complete = Callable[[Lease, Upload, Staged], Awaitable[Upload]]
"""Makes a `completing` upload a file under the caller's lease (`UploadSteps.complete`)."""


async def remove_data(
    *, staging: UploadStaging, store: Store, staged: Staged, completing: bool
) -> None:
    """Remove an unfinished upload's bytes; the caller holds its lease."""
    try:
        await staging.abort(staged)
        if completing:
            # The object may already be assembled, with no file row to own it.
            await store.delete(staged.key)
    except StorageUnavailable as exc:
        log.warning("storage unavailable: %s", exc)
        raise StorageUnavailableError() from exc


async def reclaim_expired(
    *,
    sessions: async_sessionmaker[AsyncSession],
    db_timeout: float,
    store: Store,
    staging: UploadStaging,
    older_than: datetime,
    dry_run: bool = False,
    on_event: Callable[[], None] | None = None,
    complete: Complete | None = None,
) -> int:
    """Remove expired uploads' data and rows (each told as `upload.expired`), and
    staging data no upload records that is older than ``older_than``. Returns how
    many were (or, with ``dry_run``, would be) removed. An expired `completing`
    upload is made a file by ``complete`` instead, and left alone without it."""
    reclaimer = _Reclaimer(
        sessions=sessions,
        db_timeout=db_timeout,
        store=store,
        staging=staging,
        on_event=on_event or (lambda: None),
        complete=complete,
    )
    return await reclaimer.run(older_than=older_than, dry_run=dry_run)


class _Reclaimer:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        db_timeout: float,
        store: Store,
        staging: UploadStaging,
        on_event: Callable[[], None],
        complete: Complete | None,
    ) -> None:
        self._on_event = on_event
        self._complete = complete
        self._sessions = sessions
        self._db_timeout = db_timeout
        self._store = store
        self._staging = staging

    async def run(self, *, older_than: datetime, dry_run: bool) -> int:
        count = 0
        now = utcnow()
        after: uuid.UUID | None = None
        while True:
            async with self._unit() as session:
                batch = await repository.expired(session, now, after=after, limit=_BATCH)
            if not batch:
                break
            after = batch[-1][0]
            for upload_id, state in batch:
                if state is UploadState.DONE:
                    # Nothing stored: the upload is a file now, which lives on alone.
                    if not dry_run:
                        async with self._unit() as session:
                            await repository.delete_done(session, upload_id, now=now)
                elif dry_run:
                    # A `completing` upload would be made a file, not removed.
                    count += state is not UploadState.COMPLETING
                else:
                    try:
                        count += await self._reclaim_one(upload_id, now)
                    except (StorageUnavailableError, DatabaseUnavailable):
                        log.warning("could not reclaim expired upload %s", upload_id, exc_info=True)
        async for item in self._staging.stale(older_than=older_than):
            async with self._unit() as session:
                if await repository.knows(session, item):
                    continue
            if not dry_run:
                try:
                    await self._staging.remove_stale(item)
                except StorageUnavailable:
                    log.warning("could not remove stale upload data %s", item, exc_info=True)
                    continue
            count += 1
        return count

    async def _reclaim_one(self, upload_id: uuid.UUID, now: datetime) -> int:
        token = new_token()
        async with self._unit() as session:
            taken = await repository.take_lease(
                session, upload_id, owner_id=None, token=token, now=now, until=now + RECLAIM_LEASE
            )
        if taken is None or not taken.held:
            return 0
        lease = Lease(
            sessions=self._sessions,
            db_timeout=self._db_timeout,
            upload_id=upload_id,
            token=token,
            duration=RECLAIM_LEASE,
        )
        row = taken.row
        try:
            if row.state is UploadState.DONE or row.expires_at > now:
                return 0
            if row.state is UploadState.COMPLETING:
                if self._complete is None:
                    return 0
                try:
                    await self._complete(lease, row, taken.staged)
                    log.info("made expired upload %s, every byte recorded, a file", upload_id)
                    return 0
                except (UploadLocked, TypeNotAllowed):
                    # Taken by a request meanwhile; or an empty one of a refused type, deleted.
                    return 0
                except UploadDataLost:
                    log.warning("expired upload %s lost its bytes", upload_id, exc_info=True)
            await remove_data(
                staging=self._staging,
                store=self._store,
                staged=taken.staged,
                completing=row.state is UploadState.COMPLETING,
            )
            async with self._unit() as session:
                await repository.expire(session, row, token=token)
            lease.released()
            self._on_event()
            return 1
        finally:
            await lease.release()

    def _unit(self) -> AbstractAsyncContextManager[AsyncSession]:
        return unit_of_work(self._sessions, timeout_seconds=self._db_timeout)
