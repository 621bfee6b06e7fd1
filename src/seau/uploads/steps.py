"""The steps of a resumable upload that write, under the upload's lease: one
request's bytes into the staging area and their record (`append`), and a fully
recorded upload made a ready file (`complete`).

`seau.uploads.service` takes the lease, checks the request against the row and
calls these; `seau.uploads.reclaim` calls `complete` for an expired upload whose
bytes are all recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seau.db.base import utcnow
from seau.db.models import Upload, UploadState
from seau.db.unit import unit_of_work
from seau.errors import StorageUnavailableError, TypeNotAllowed, storage_call
from seau.files.types import TypePolicy, sniff
from seau.quotas.service import Held, Quotas
from seau.storage import ObjectNotFound, StorageUnavailable, Store
from seau.storage.errors import StagingLost
from seau.storage.staging import Staged, UploadStaging
from seau.uploads import repository
from seau.uploads.body import checksum_fails, metered
from seau.uploads.errors import (
    BodyInterrupted,
    ChecksumMismatch,
    UploadDataLost,
    UploadLocked,
)
from seau.uploads.hashes import HashCache, read_back
from seau.uploads.lease import Lease
from seau.uploads.schemas import UploadLimits
from seau.uploads.tus import Checksum

__all__ = ["UploadSteps"]


class UploadSteps:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        db_timeout: float,
        store: Store,
        staging: UploadStaging,
        limits: UploadLimits,
        quotas: Quotas,
        types: TypePolicy,
        on_event: Callable[[], None],
    ) -> None:
        self._sessions = sessions
        self._db_timeout = db_timeout
        self._store = store
        self._staging = staging
        self._limits = limits
        self._quotas = quotas
        self._types = types
        self._on_event = on_event
        # The SHA-256 of each upload's bytes so far, kept between its requests on
        # this instance (an upload resumed elsewhere is read back at completion).
        self._hashes = HashCache()

    async def append(
        self,
        lease: Lease,
        row: Upload,
        staged: Staged,
        *,
        data: AsyncIterable[bytes],
        new_length: int | None,
        declared: int | None,
        checksum: Checksum | None,
        discard_mismatch: bool,
    ) -> tuple[Upload, Staged]:
        """Write one request's bytes and record them; returns the updated row
        and staging state."""
        length, room = self._limits.room(
            length=row.length, offset=row.upload_offset, new_length=new_length, declared=declared
        )
        if row.length is None:
            # A deferred length: the bytes are reserved as they come, or all at once
            # when this request tells the length (before any of them is read).
            held = Held(id=row.id, owner_id=row.owner_id, bytes=row.upload_offset)
            if length is not None:
                await self._quotas.resize(held, length)
            else:
                data = self._quotas.gate(held, data, offset=row.upload_offset)

        # An upload's staging area opens with its first bytes, and its handle is
        # recorded with them, in the same commit: no round trip of its own.
        old = staged
        fresh = declared != 0 and staged.handle is None
        content_type = row.content_type
        if fresh:
            # The type from the first bytes, held back until it is known to be allowed.
            sniffed = await sniff(data)
            if sniffed.error is not None:
                # A first request cut short (the client left) would have its type
                # decided by the few bytes that came: none are kept, the client
                # sends them again.
                raise sniffed.error
            data = sniffed
            if sniffed.head:
                content_type = await self.detect(lease, row, sniffed.head)
            handle = await storage_call(self._staging.begin(staged, content_type=content_type))
            old = replace(staged, handle=handle)
        body = metered(
            data,
            room=room,
            lease=lease,
            offset=row.upload_offset,
            checksum=checksum,
            sha256=self._hashes.get(row.id, row.upload_offset),
        )
        new = old
        if declared != 0:
            async with lease.renewing():
                try:
                    new = await storage_call(self._staging.append(old, body))
                except BaseException:
                    if fresh:
                        with contextlib.suppress(StorageUnavailable):
                            await asyncio.shield(self._staging.abort(old))
                    raise
        if checksum_fails(body, checksum):
            await storage_call(self._drop(old=old, new=new, fresh=fresh))
            if body.interrupted:
                raise BodyInterrupted("the body ended before the checksum could be verified")
            if discard_mismatch:
                return row, staged
            raise ChecksumMismatch(row.upload_offset)
        if new.size == old.size and length == row.length:
            # An empty body: what staging made or rewrote (an S3 tail) is not needed.
            if new != old or fresh:
                with contextlib.suppress(StorageUnavailable):
                    await self._drop(old=old, new=new, fresh=fresh)
            return row, staged
        completing = length is not None and new.size == length
        now = utcnow()
        values: dict[str, object] = {
            "content_type": content_type,
            "upload_offset": new.size,
            "length": length,
            "handle": new.handle,
            "tail_key": new.tail_key,
            "state": UploadState.COMPLETING if completing else UploadState.ACTIVE,
            "expires_at": now + self._limits.expiry,
            "updated_at": now,
        }
        if not completing:
            # Released in the same commit: one transaction (and fsync) less per request.
            values |= {"lease_token": None, "lease_until": None}
        added = new.parts[len(old.parts) :]
        # What was staged is not dropped when this unit fails: a commit cut by the
        # database timeout or a lost connection may have happened all the same
        # (docs/decisions.md, "A completion cut short"). Unrecorded, it is overwritten
        # by the next append or left for `seau gc`, which removes what nothing records.
        async with self._unit() as session:
            recorded = await repository.record(
                session, row.id, token=lease.token, values=values, parts=added
            )
        if not recorded:
            with contextlib.suppress(StorageUnavailable):
                await self._drop(old=old, new=new, fresh=fresh)
            raise UploadLocked(row.upload_offset, "the upload's lock was lost mid-request")
        if not completing:
            lease.released()
        with contextlib.suppress(StorageUnavailable):
            await self._staging.settle(old=old, new=new)
        if body.sha256 is not None:
            self._hashes.keep(row.id, new.size, body.sha256)
        for field, value in values.items():
            setattr(row, field, value)
        return row, new

    async def detect(self, lease: Lease, row: Upload, head: bytes) -> str:
        """The type of an upload starting with ``head``; one that may not be stored
        is deleted with its room in the quota (nothing was staged yet)."""
        try:
            return await self._types.detect(head)
        except TypeNotAllowed:
            async with self._unit() as session:
                await repository.delete_upload(session, row.id, token=lease.token)
            lease.released()
            raise

    async def _drop(self, *, old: Staged, new: Staged, fresh: bool) -> None:
        """Undo an append that will not be recorded; a staging area opened for
        it goes whole (S3 would keep an unrecorded multipart upload until gc)."""
        if fresh:
            await self._staging.abort(new)
        else:
            await self._staging.discard(old=old, new=new)

    async def complete(self, lease: Lease, row: Upload, staged: Staged) -> Upload:
        """Turn a fully recorded upload into a ready file (idempotent)."""
        assert row.length is not None
        assert row.upload_offset == row.length
        key = staged.key
        try:
            async with lease.renewing():
                if staged.handle is None:
                    # Only an empty upload gets here without a staging area (its
                    # length deferred until then, or it was checked at creation).
                    row.content_type = await self.detect(lease, row, b"")
                    handle = await storage_call(
                        self._staging.begin(staged, content_type=row.content_type)
                    )
                    staged = replace(staged, handle=handle)
                await storage_call(self._staging.finish(staged, content_type=row.content_type))
                digest = self._hashes.pop(row.id, row.length)
                sha256 = (
                    digest.hexdigest()
                    if digest is not None
                    else await storage_call(read_back(self._store, key))
                )
                stored = await storage_call(self._store.head(key))
        except (StagingLost, ObjectNotFound) as exc:
            raise UploadDataLost(str(exc)) from None
        if stored.size != row.length:
            raise StorageUnavailableError(f"the store kept {stored.size} bytes of {row.length}")
        now = utcnow()
        expires_at = now + self._limits.expiry
        async with self._unit() as session:
            done = await repository.finish(
                session, row, token=lease.token, sha256=sha256, now=now, expires_at=expires_at
            )
        if not done:
            raise UploadLocked(row.upload_offset, "the upload's lock was lost mid-request")
        self._on_event()
        lease.released()
        row.state = UploadState.DONE
        row.tail_key = None
        row.expires_at = expires_at
        return row

    def _unit(self) -> AbstractAsyncContextManager[AsyncSession]:
        return unit_of_work(self._sessions, timeout_seconds=self._db_timeout)
