"""Resumable uploads: tus semantics over a row per upload and a store's staging area.

Everything an upload needs between requests is in its `upload` row (offset,
length, the store's handle, recorded S3 parts, tail, expiry) and in the store,
so any instance can take the next request, before or after a restart.

One request writes to an upload at a time, on any instance: a request takes a
lease on the row with a conditional UPDATE (portable to SQLite, MariaDB and
PostgreSQL), renews it while it streams, and records its bytes with an UPDATE
that matches only while it still holds the lease. A request that finds the
lease held answers 423 with the current offset.

When the last byte is recorded the staging area becomes the object at
`key_for(id)`, and one transaction makes it a ready `user_file` with the same
id and marks the upload done.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seau.db.base import utcnow
from seau.db.models import FileState, Upload, UploadPart, UploadState, UserFile
from seau.errors import BadRequest, DatabaseUnavailable, StorageUnavailableError
from seau.files.http import guess_content_type, validate_file_name
from seau.files.keys import key_for
from seau.storage import ObjectNotFound, StorageUnavailable, Store
from seau.storage.multipart import (
    Part,
    Staged,
    StagingLost,
    StaleStaging,
    UploadStaging,
    open_upload_staging,
)
from seau.uploads.errors import (
    ChecksumMismatch,
    OffsetMismatch,
    UploadDataLost,
    UploadExpired,
    UploadLocked,
    UploadNotFound,
    UploadTooLarge,
)
from seau.uploads.tus import Checksum

if TYPE_CHECKING:
    from hashlib import _Hash

log = logging.getLogger("seau.uploads")

T = TypeVar("T")

DEFAULT_NAME = "untitled"
# The reconciler holds an upload only while it removes it.
_RECLAIM_LEASE = timedelta(minutes=5)
_BATCH = 500


class BodyInterrupted(Exception):
    """The request body ended early (client gone, or silent too long).

    What arrived is kept, as tus asks, unless an `Upload-Checksum` covers the
    whole body: then nothing of it can be verified, and it is discarded.
    """


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadLimits:
    max_size: int
    part_size: int
    expiry: timedelta
    lease: timedelta
    max_name_length: int = 255


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadStatus:
    id: uuid.UUID
    offset: int
    length: int | None
    metadata: str | None
    expires_at: datetime | None
    """None once the upload is a file."""

    @property
    def done(self) -> bool:
        return self.expires_at is None


class UploadService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        store: Store,
        staging: UploadStaging,
        limits: UploadLimits,
    ) -> None:
        self._sessions = sessions
        self._store = store
        self._staging = staging
        self.limits = limits
        self._hashes = _HashCache()

    async def close(self) -> None:
        await self._staging.close()

    # -- the tus verbs -----------------------------------------------------

    async def create(
        self,
        *,
        owner_id: uuid.UUID,
        length: int | None,
        metadata: str | None,
        filename: str | None,
        filetype: str | None,
        body: AsyncIterable[bytes] | None = None,
        declared: int | None = None,
        checksum: Checksum | None = None,
    ) -> UploadStatus:
        """A new upload; with ``body`` (creation-with-upload), its first bytes too."""
        if length is not None and length > self.limits.max_size:
            raise UploadTooLarge(f"the upload exceeds the limit of {self.limits.max_size} bytes")
        name = validate_file_name(filename or DEFAULT_NAME, max_length=self.limits.max_name_length)
        now = utcnow()
        token = secrets.token_hex(16)
        row = Upload(
            id=uuid.uuid4(),
            owner_id=owner_id,
            name=name,
            content_type=guess_content_type(name, filetype),
            tus_metadata=metadata or None,
            length=length,
            upload_offset=0,
            part_size=self.limits.part_size,
            state=UploadState.ACTIVE,
            expires_at=now + self.limits.expiry,
            # Held from the start, so the first bytes go in before anyone else's.
            lease_token=token,
            lease_until=now + self.limits.lease,
            created_at=now,
            updated_at=now,
        )
        await self._db(lambda s: _add(s, row))
        lease = _Lease(self._sessions, upload_id=row.id, token=token, duration=self.limits.lease)
        try:
            if body is not None and declared != 0:
                row = await self._append_leased(
                    lease,
                    row,
                    data=body,
                    new_length=None,
                    declared=declared,
                    checksum=checksum,
                    discard_mismatch=True,
                )
            if row.length is not None and row.upload_offset == row.length:
                row = await self._complete(lease, row)
        finally:
            await lease.release()
        return _status(row)

    async def status(self, *, owner_id: uuid.UUID, upload_id: str) -> UploadStatus:
        row = await self._db(lambda s: _owned(s, owner_id=owner_id, upload_id=upload_id))
        if row.state is UploadState.COMPLETING:
            # The request that recorded the last byte died before the file
            # existed; finish its work rather than report a file that is not there.
            with contextlib.suppress(UploadLocked):
                async with self._leased(owner_id=owner_id, upload_id=upload_id) as (lease, row):
                    if row.state is UploadState.COMPLETING:
                        row = await self._complete(lease, row)
        return _status(row)

    async def append(
        self,
        *,
        owner_id: uuid.UUID,
        upload_id: str,
        offset: int,
        data: AsyncIterable[bytes],
        new_length: int | None = None,
        declared: int | None = None,
        checksum: Checksum | None = None,
    ) -> UploadStatus:
        async with self._leased(owner_id=owner_id, upload_id=upload_id) as (lease, row):
            if offset != row.upload_offset:
                raise OffsetMismatch(
                    row.upload_offset, f"the upload is at {row.upload_offset}, not {offset}"
                )
            if row.state is UploadState.ACTIVE:
                row = await self._append_leased(
                    lease,
                    row,
                    data=data,
                    new_length=new_length,
                    declared=declared,
                    checksum=checksum,
                    discard_mismatch=False,
                )
            elif declared:
                raise UploadTooLarge("the upload has all its bytes already")
            if row.state is UploadState.COMPLETING:
                row = await self._complete(lease, row)
            return _status(row)

    async def terminate(self, *, owner_id: uuid.UUID, upload_id: str) -> None:
        async with self._leased(owner_id=owner_id, upload_id=upload_id, allow_expired=True) as (
            lease,
            row,
        ):
            if row.state is not UploadState.DONE:
                await self._remove_data(row)
            await self._db(lambda s: _delete_row(s, row.id, token=lease.token))

    async def reclaim(self, *, older_than: datetime, dry_run: bool = False) -> int:
        """Remove expired uploads' data and rows, and staging data no row knows
        of that is older than ``older_than``; returns how many went (or would)."""
        count = 0
        now = utcnow()
        after: uuid.UUID | None = None
        while batch := await self._expired_batch(now, after=after):
            after = batch[-1][0]
            for upload_id, state in batch:
                if state is UploadState.DONE:
                    # Nothing stored: the upload is a file now, which lives on alone.
                    if not dry_run:
                        await self._delete_done(upload_id, now)
                elif dry_run:
                    count += 1
                else:
                    try:
                        count += await self._reclaim_one(upload_id, now)
                    except (StorageUnavailableError, DatabaseUnavailable):
                        log.warning("could not reclaim expired upload %s", upload_id, exc_info=True)
        async for item in self._staging.stale(older_than=older_than):
            if await self._known(item):
                continue
            if not dry_run:
                try:
                    await self._staging.remove_stale(item)
                except StorageUnavailable:
                    log.warning("could not remove stale upload data %s", item, exc_info=True)
                    continue
            count += 1
        return count

    async def _expired_batch(
        self, now: datetime, *, after: uuid.UUID | None
    ) -> list[tuple[uuid.UUID, UploadState]]:
        return await self._db(lambda s: _expired(s, now, after=after))

    async def _delete_done(self, upload_id: uuid.UUID, now: datetime) -> None:
        await self._db(lambda s: _delete_done(s, upload_id, now))

    async def _known(self, item: StaleStaging) -> bool:
        return await self._db(lambda s: _known(s, item))

    # -- the steps -------------------------------------------------------------

    async def _append_leased(
        self,
        lease: _Lease,
        row: Upload,
        *,
        data: AsyncIterable[bytes],
        new_length: int | None,
        declared: int | None,
        checksum: Checksum | None,
        discard_mismatch: bool,
    ) -> Upload:
        """Write one request's bytes and record them; returns the updated row."""
        length = row.length
        if new_length is not None:
            if length is None:
                if new_length < row.upload_offset:
                    raise BadRequest("Upload-Length is below the upload's offset")
                if new_length > self.limits.max_size:
                    raise UploadTooLarge(
                        f"the upload exceeds the limit of {self.limits.max_size} bytes"
                    )
                length = new_length
            elif new_length != length:
                raise BadRequest("Upload-Length cannot change once set")
        room = (length if length is not None else self.limits.max_size) - row.upload_offset
        if declared is not None and declared > room:
            raise UploadTooLarge(f"the request carries {declared} bytes; {room} remain")

        old = await self._begun(lease, row)
        body = _Body(
            data,
            offset=row.upload_offset,
            room=room,
            lease=lease,
            checksum=checksum,
            sha256=self._hashes.get(row.id, row.upload_offset),
        )
        if declared == 0:
            # Nothing to write (a PATCH that only declares a deferred length).
            new = old
        else:
            async with lease.renewing():
                try:
                    new = await self._storage(self._staging.append(old, body))
                except StagingLost as exc:
                    raise UploadDataLost(str(exc)) from None
        if checksum is not None and (body.interrupted or not body.checksum_matches()):
            await self._storage(self._staging.discard(old=old, new=new))
            if body.interrupted:
                raise BodyInterrupted("the body ended before the checksum could be verified")
            if discard_mismatch:
                return row
            raise ChecksumMismatch(row.upload_offset)
        if new.size == old.size and length == row.length:
            # An empty body: what staging rewrote (an S3 tail) is not needed.
            if new != old:
                with contextlib.suppress(StorageUnavailable):
                    await self._staging.discard(old=old, new=new)
            return row
        completing = length is not None and new.size == length
        now = utcnow()
        values: dict[str, object] = {
            "upload_offset": new.size,
            "length": length,
            "tail_key": new.tail_key,
            "state": UploadState.COMPLETING if completing else UploadState.ACTIVE,
            "expires_at": now + self.limits.expiry,
            "updated_at": now,
        }
        if not completing:
            # Released in the same commit: one transaction (and fsync) less per request.
            values |= {"lease_token": None, "lease_until": None}
        added = new.parts[len(old.parts) :]
        try:
            recorded = await self._db(
                lambda s: _record(s, row.id, token=lease.token, values=values, parts=added)
            )
        except BaseException:
            with contextlib.suppress(StorageUnavailable):
                await asyncio.shield(self._staging.discard(old=old, new=new))
            raise
        if not recorded:
            with contextlib.suppress(StorageUnavailable):
                await self._staging.discard(old=old, new=new)
            raise UploadLocked(row.upload_offset, "the upload's lock was lost mid-request")
        with contextlib.suppress(StorageUnavailable):
            await self._staging.settle(old=old, new=new)
        if body.sha256 is not None:
            self._hashes.keep(row.id, new.size, body.sha256)
        for field, value in values.items():
            setattr(row, field, value)
        return row

    async def _complete(self, lease: _Lease, row: Upload) -> Upload:
        """Turn a fully recorded upload into a ready file (idempotent)."""
        assert row.length is not None
        assert row.upload_offset == row.length
        staged = await self._begun(lease, row)
        key = staged.key
        try:
            async with lease.renewing():
                await self._storage(self._staging.finish(staged, content_type=row.content_type))
                digest = self._hashes.pop(row.id, row.length)
                sha256 = digest.hexdigest() if digest is not None else await self._digest(key)
                stored = await self._storage(self._store.head(key))
        except (StagingLost, ObjectNotFound) as exc:
            raise UploadDataLost(str(exc)) from None
        if stored.size != row.length:
            raise StorageUnavailableError(f"the store kept {stored.size} bytes of {row.length}")
        now = utcnow()
        file = UserFile(
            id=row.id,
            owner_id=row.owner_id,
            object_key=key,
            name=row.name,
            content_type=row.content_type,
            size=row.length,
            sha256=sha256,
            state=FileState.READY,
            created_at=now,
            updated_at=now,
        )
        expires_at = now + self.limits.expiry
        done = await self._db(
            lambda s: _finish(
                s, row.id, token=lease.token, file=file, now=now, expires_at=expires_at
            )
        )
        if not done:
            raise UploadLocked(row.upload_offset, "the upload's lock was lost mid-request")
        row.state = UploadState.DONE
        row.tail_key = None
        row.expires_at = expires_at
        return row

    async def _begun(self, lease: _Lease, row: Upload) -> Staged:
        """The upload's staging state, its staging area opened on first use."""
        staged = await self._db(lambda s: _staged(s, row))
        if staged.handle is not None:
            return staged
        handle = await self._storage(self._staging.begin(staged, content_type=row.content_type))
        await self._db(lambda s: _set_handle(s, row.id, handle, token=lease.token))
        row.handle = handle
        return replace(staged, handle=handle)

    async def _digest(self, key: str) -> str:
        """SHA-256 of a stored object, read back once: the price of an upload whose
        bytes did not all pass through this process (see docs/decisions.md)."""
        digest = hashlib.sha256()
        stream = await self._storage(self._store.get(key))
        try:
            async for chunk in stream:
                digest.update(chunk)
        except StorageUnavailable as exc:
            raise StorageUnavailableError() from exc
        finally:
            await stream.aclose()
        return digest.hexdigest()

    async def _remove_data(self, row: Upload) -> None:
        staged = await self._db(lambda s: _staged(s, row))
        await self._storage(self._staging.abort(staged))
        if row.state is UploadState.COMPLETING:
            # The object may already be assembled, with no file row to own it.
            await self._storage(self._store.delete(staged.key))

    async def _reclaim_one(self, upload_id: uuid.UUID, now: datetime) -> int:
        lease = await self._db(
            lambda s: _take_lease(s, upload_id, owner_id=None, duration=_RECLAIM_LEASE, now=now)
        )
        if lease is None:
            return 0
        token, row = lease
        try:
            if row.state is UploadState.DONE or row.expires_at > now:
                return 0
            await self._remove_data(row)
            await self._db(lambda s: _delete_row(s, row.id, token=token))
            return 1
        finally:
            await self._db(lambda s: _release(s, upload_id, token))

    # -- plumbing ------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _leased(
        self, *, owner_id: uuid.UUID, upload_id: str, allow_expired: bool = False
    ) -> AsyncIterator[tuple[_Lease, Upload]]:
        parsed = _parse_id(upload_id)
        now = utcnow()
        taken = await self._db(
            lambda s: _take_lease(s, parsed, owner_id=owner_id, duration=self.limits.lease, now=now)
        )
        if taken is None:
            row = await self._db(lambda s: _owned(s, owner_id=owner_id, upload_id=upload_id))
            raise UploadLocked(row.upload_offset)
        token, row = taken
        lease = _Lease(self._sessions, upload_id=parsed, token=token, duration=self.limits.lease)
        try:
            if not allow_expired:
                _check_not_expired(row, now)
            yield lease, row
        finally:
            await lease.release()

    async def _db(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        return await run_db(self._sessions, work)

    @staticmethod
    async def _storage(operation: Awaitable[T]) -> T:
        try:
            return await operation
        except StorageUnavailable as exc:
            log.warning("storage unavailable: %s", exc)
            raise StorageUnavailableError() from exc


async def reclaim_expired_uploads(
    *,
    sessions: async_sessionmaker[AsyncSession],
    store: Store,
    older_than: datetime,
    dry_run: bool = False,
) -> int:
    """For `seau gc`: remove expired uploads, and staging data older than
    ``older_than`` that no upload records. Returns how many were (or would be)
    removed; 0 for a store without resumable uploads."""
    staging = open_upload_staging(store)
    if staging is None:
        return 0
    # Only removals happen here: the limits of new uploads do not matter.
    limits = UploadLimits(
        max_size=1, part_size=1, expiry=timedelta(seconds=1), lease=_RECLAIM_LEASE
    )
    service = UploadService(sessions=sessions, store=store, staging=staging, limits=limits)
    try:
        return await service.reclaim(older_than=older_than, dry_run=dry_run)
    finally:
        await service.close()


async def run_db(
    sessions: async_sessionmaker[AsyncSession], work: Callable[[AsyncSession], Awaitable[T]]
) -> T:
    try:
        async with sessions() as session:
            return await work(session)
    except (OperationalError, PoolTimeout, OSError, ConnectionError) as exc:
        log.warning("database unavailable: %s", exc.__class__.__name__)
        raise DatabaseUnavailable() from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise DatabaseUnavailable() from exc
        raise


# -- the request body ----------------------------------------------------------


class _Body:
    """The request's bytes on their way to staging: counted against the room
    left, stopped if the lease is lost, hashed for the checksum and the file."""

    def __init__(
        self,
        source: AsyncIterable[bytes],
        *,
        offset: int,
        room: int,
        lease: _Lease,
        checksum: Checksum | None,
        sha256: _Hash | None,
    ) -> None:
        self._source = source
        self._offset = offset
        self._room = room
        self._lease = lease
        self._checksum = checksum
        self._digest = hashlib.new(checksum.algorithm) if checksum is not None else None
        self.sha256 = sha256
        self.received = 0
        self.interrupted = False

    def checksum_matches(self) -> bool:
        assert self._checksum is not None
        assert self._digest is not None
        return secrets.compare_digest(self._digest.digest(), self._checksum.digest)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        iterator = aiter(self._source)
        while True:
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                return
            except BodyInterrupted:
                self.interrupted = True
                return
            if self._lease.lost:
                raise UploadLocked(self._offset, "the upload's lock was lost mid-request")
            self.received += len(chunk)
            if self.received > self._room:
                raise UploadTooLarge(f"the request carries more than the {self._room} bytes left")
            if self._digest is not None:
                self._digest.update(chunk)
            if self.sha256 is not None:
                self.sha256.update(chunk)
            yield chunk


# -- the lease -----------------------------------------------------------------


class _Lease:
    """A held lease on one upload row; renewed in the background while bytes stream."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        upload_id: uuid.UUID,
        token: str,
        duration: timedelta,
    ) -> None:
        self._sessions = sessions
        self.upload_id = upload_id
        self.token = token
        self._duration = duration
        self.lost = False

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
                renewed = await asyncio.wait_for(run_db(self._sessions, self._extend), interval)
            except Exception:
                log.warning("could not renew the lease of upload %s", self.upload_id)
                renewed = False
            if not renewed:
                self.lost = True

    async def _extend(self, session: AsyncSession) -> bool:
        result = await session.execute(
            update(Upload)
            .where(Upload.id == self.upload_id, Upload.lease_token == self.token)
            .values(lease_until=utcnow() + self._duration)
        )
        await session.commit()
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def release(self) -> None:
        # Shielded: a cancelled request must still free the upload for its retry.
        try:
            await asyncio.shield(
                run_db(self._sessions, lambda s: _release(s, self.upload_id, self.token))
            )
        except Exception:
            log.warning("could not release the lease of upload %s; it expires", self.upload_id)


# -- SHA-256 across requests ---------------------------------------------------


class _HashCache:
    """SHA-256 states of uploads whose every byte so far passed through this
    process, keyed by upload and offset. Only an optimization: a miss (another
    instance took a request, a restart) means reading the object back once at
    completion. Recorded bytes never change, so a state at a given offset stays right.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._states: OrderedDict[uuid.UUID, tuple[int, _Hash]] = OrderedDict()

    def get(self, upload_id: uuid.UUID, offset: int) -> _Hash | None:
        """A copy to continue from ``offset``; the kept state stays for a retry."""
        if offset == 0:
            return hashlib.sha256()
        found = self._states.get(upload_id)
        if found is None or found[0] != offset:
            return None
        return found[1].copy()

    def keep(self, upload_id: uuid.UUID, offset: int, state: _Hash) -> None:
        self._states[upload_id] = (offset, state)
        self._states.move_to_end(upload_id)
        while len(self._states) > self._capacity:
            self._states.popitem(last=False)

    def pop(self, upload_id: uuid.UUID, offset: int) -> _Hash | None:
        found = self._states.pop(upload_id, None)
        if found is None or found[0] != offset:
            return None
        return found[1]


# -- queries -------------------------------------------------------------------


def _parse_id(upload_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(upload_id)
    except ValueError:
        raise UploadNotFound() from None


def _status(row: Upload) -> UploadStatus:
    return UploadStatus(
        id=row.id,
        offset=row.upload_offset,
        length=row.length,
        metadata=row.tus_metadata,
        expires_at=None if row.state is UploadState.DONE else row.expires_at,
    )


def _check_not_expired(row: Upload, now: datetime) -> None:
    if row.expires_at <= now:
        if row.state is UploadState.DONE:
            raise UploadNotFound()
        raise UploadExpired()


async def _add(session: AsyncSession, row: Upload) -> None:
    session.add(row)
    await session.commit()


async def _owned(session: AsyncSession, *, owner_id: uuid.UUID, upload_id: str) -> Upload:
    """The upload ``upload_id`` of ``owner_id``, or "not found" (also for other users')."""
    row = await session.scalar(
        select(Upload).where(Upload.id == _parse_id(upload_id), Upload.owner_id == owner_id)
    )
    if row is None:
        raise UploadNotFound()
    _check_not_expired(row, utcnow())
    return row


async def _take_lease(
    session: AsyncSession,
    upload_id: uuid.UUID,
    *,
    owner_id: uuid.UUID | None,
    duration: timedelta,
    now: datetime,
) -> tuple[str, Upload] | None:
    """The lease and the row as the lease found it; None if someone holds it.
    Raises "not found" when there is no such upload of ``owner_id``."""
    token = secrets.token_hex(16)
    condition = [
        Upload.id == upload_id,
        or_(Upload.lease_token.is_(None), Upload.lease_until < now),
    ]
    if owner_id is not None:
        condition.append(Upload.owner_id == owner_id)
    result = await session.execute(
        update(Upload).where(*condition).values(lease_token=token, lease_until=now + duration)
    )
    await session.commit()
    if not result.rowcount:  # type: ignore[attr-defined]
        exists = select(Upload.id).where(Upload.id == upload_id)
        if owner_id is not None:
            exists = exists.where(Upload.owner_id == owner_id)
        if await session.scalar(exists) is None:
            raise UploadNotFound()
        return None
    row = await session.scalar(select(Upload).where(Upload.id == upload_id))
    if row is None:
        raise UploadNotFound()
    return token, row


async def _release(session: AsyncSession, upload_id: uuid.UUID, token: str) -> None:
    await session.execute(
        update(Upload)
        .where(Upload.id == upload_id, Upload.lease_token == token)
        .values(lease_token=None, lease_until=None)
    )
    await session.commit()


async def _staged(session: AsyncSession, row: Upload) -> Staged:
    parts = await session.scalars(
        select(UploadPart).where(UploadPart.upload_id == row.id).order_by(UploadPart.number)
    )
    return Staged(
        name=row.id.hex,
        key=key_for(row.id),
        part_size=row.part_size,
        handle=row.handle,
        size=row.upload_offset,
        parts=tuple(Part(number=p.number, etag=p.etag, size=p.size) for p in parts),
        tail_key=row.tail_key,
    )


async def _set_handle(
    session: AsyncSession, upload_id: uuid.UUID, handle: str, *, token: str
) -> None:
    await session.execute(
        update(Upload)
        .where(Upload.id == upload_id, Upload.lease_token == token)
        .values(handle=handle)
    )
    await session.commit()


async def _record(
    session: AsyncSession,
    upload_id: uuid.UUID,
    *,
    token: str,
    values: dict[str, object],
    parts: tuple[Part, ...],
) -> bool:
    """Record a request's bytes, only while its lease holds."""
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


async def _finish(
    session: AsyncSession,
    upload_id: uuid.UUID,
    *,
    token: str,
    file: UserFile,
    now: datetime,
    expires_at: datetime,
) -> bool:
    """Mark the upload done and make its file, in one transaction, while the lease holds.

    The row stays until ``expires_at`` so that a client resuming after a lost
    answer still learns that the upload is complete."""
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
    await session.commit()
    return True


async def _delete_row(session: AsyncSession, upload_id: uuid.UUID, *, token: str) -> None:
    await session.execute(delete(UploadPart).where(UploadPart.upload_id == upload_id))
    await session.execute(delete(Upload).where(Upload.id == upload_id, Upload.lease_token == token))
    await session.commit()


async def _expired(
    session: AsyncSession, now: datetime, *, after: uuid.UUID | None
) -> list[tuple[uuid.UUID, UploadState]]:
    statement = select(Upload.id, Upload.state).where(Upload.expires_at < now)
    if after is not None:
        statement = statement.where(Upload.id > after)
    rows = await session.execute(statement.order_by(Upload.id).limit(_BATCH))
    return [(upload_id, state) for upload_id, state in rows]


async def _delete_done(session: AsyncSession, upload_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        delete(Upload).where(
            Upload.id == upload_id,
            Upload.state == UploadState.DONE,
            Upload.expires_at < now,
        )
    )
    await session.commit()


async def _known(session: AsyncSession, item: StaleStaging) -> bool:
    """Whether an unfinished upload still records this staging data."""
    statement = select(Upload.id).where(Upload.state != UploadState.DONE)
    if item.handle is not None:
        statement = statement.where(Upload.handle == item.handle)
    elif item.tail_key is not None:
        statement = statement.where(Upload.tail_key == item.tail_key)
    else:
        return True
    return await session.scalar(statement.limit(1)) is not None
