"""Resumable uploads: tus semantics over a row per upload and a store's staging area.

Everything an upload needs between requests is in its `upload` row (offset,
length, the store's handle, recorded S3 parts, tail, expiry) and in the store,
so any instance can take the next request, before or after a restart.

One request writes to an upload at a time, on any instance: it holds the
upload's lease (`seau.uploads.lease`). A PATCH makes two database round trips
of its own: one unit takes the lease and reads the row and its parts, one
commit records the bytes and releases the lease. The PATCH that brings the last
byte makes a third: the staging area becomes the object at `key_for(id)`, and
one transaction makes it a ready `user_file` with the same id, marks the upload
done and releases the lease.

The service checks each request against the row and orchestrates: the steps
that write under the lease (bytes in, file made) are in `steps`, the SQL in
`repository`, the lease in `lease`, the reclaim of expired uploads in `reclaim`;
the byte meter is the one of plain uploads (`seau.files.meter`).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seau.db.base import utcnow
from seau.db.models import Upload, UploadState
from seau.db.unit import DEFAULT_TIMEOUT_SECONDS, InCommit, unit_of_work
from seau.events.hook import PreUpload, Proposed
from seau.files.names import DEFAULT_NAME, guess_content_type, validate_file_name
from seau.files.types import TypePolicy
from seau.quotas.service import Quotas
from seau.storage import Store
from seau.storage.staging import Staged, UploadStaging
from seau.uploads import repository
from seau.uploads.errors import (
    OffsetMismatch,
    TooManyActiveUploads,
    UploadExpired,
    UploadLocked,
    UploadNotFound,
    UploadTooLarge,
)
from seau.uploads.lease import Lease, new_token
from seau.uploads.reclaim import reclaim_expired, remove_data
from seau.uploads.schemas import UploadLimits, UploadStatus
from seau.uploads.steps import UploadSteps
from seau.uploads.tus import Checksum

__all__ = ["UploadLimits", "UploadService", "UploadStatus"]


class UploadService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        store: Store,
        staging: UploadStaging,
        limits: UploadLimits,
        db_timeout: float = DEFAULT_TIMEOUT_SECONDS,
        on_event: Callable[[], None] | None = None,
        pre_upload: PreUpload | None = None,
        quotas: Quotas | None = None,
        types: TypePolicy | None = None,
    ) -> None:
        """``on_event`` is called after each commit that wrote an event;
        ``pre_upload`` is asked before an upload is created and raises to refuse it;
        ``quotas`` holds each upload's room (unlimited, usage still counted, when None);
        ``types``: the detected types that may be stored (any when None), checked
        at the first bytes."""
        self._types = types or TypePolicy()
        self._quotas = quotas or Quotas(sessions=sessions, db_timeout=db_timeout)
        self._on_event = on_event or (lambda: None)
        self._pre_upload = pre_upload
        self._sessions = sessions
        self._db_timeout = db_timeout
        self._store = store
        self._staging = staging
        self.limits = limits
        self._steps = UploadSteps(
            sessions=sessions,
            db_timeout=db_timeout,
            store=store,
            staging=staging,
            limits=limits,
            quotas=self._quotas,
            types=self._types,
            on_event=self._on_event,
        )

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
        subject: str | None = None,
        in_commit: InCommit[UploadStatus] | None = None,
    ) -> UploadStatus:
        """A new upload; with ``body`` (creation-with-upload), its first bytes too.
        ``subject`` is what the pre-upload hook is told of the owner. ``in_commit``
        runs in the transaction that makes the upload, before its commit, with the
        upload as made (no byte yet): a retry's answer is stored with the upload
        (`seau.idempotent`)."""
        if length is not None and length > self.limits.max_size:
            raise UploadTooLarge(f"the upload exceeds the limit of {self.limits.max_size} bytes")
        name = validate_file_name(filename or DEFAULT_NAME, max_length=self.limits.max_name_length)
        content_type = guess_content_type(name, filetype)
        if self._pre_upload is not None:
            await self._pre_upload(
                Proposed(
                    subject=subject, name=name, size=length, content_type=content_type, via="tus"
                )
            )
        declared_type = content_type
        if length == 0:
            # No first bytes will come: an empty file's type, refused now if it must be.
            content_type = await self._types.detect(b"")
        writes = body is not None and declared != 0
        now = utcnow()
        # Held from the start when there is work to do, so that the first bytes
        # go in before anyone else's; otherwise a release would cost a commit.
        token = new_token() if writes or length == 0 else None
        row = Upload(
            id=uuid.uuid4(),
            owner_id=owner_id,
            name=name,
            content_type=content_type,
            declared_type=declared_type,
            tus_metadata=metadata or None,
            length=length,
            upload_offset=0,
            part_size=self.limits.part_size,
            state=UploadState.ACTIVE,
            expires_at=now + self.limits.expiry,
            lease_token=token,
            lease_until=None if token is None else now + self.limits.lease,
            created_at=now,
            updated_at=now,
        )
        # The upload row and its room in the quota (all of `Upload-Length`) go in
        # together; a second try follows the owner's usage row's making.
        made = None if in_commit is None else _as_made(in_commit)
        for _ in range(2):
            async with self._unit() as session:
                added = await repository.add(
                    session,
                    row,
                    max_active=self.limits.max_active,
                    quota=self._quotas.defaults,
                    in_commit=made,
                )
            if added is not repository.Added.NO_USAGE_ROW:
                break
            await self._quotas.ensure_row(owner_id)
        if added is repository.Added.TOO_MANY:
            raise TooManyActiveUploads(
                f"at most {self.limits.max_active} unfinished uploads at once; "
                "finish or terminate one first"
            )
        if added is not repository.Added.ADDED:
            usage = await self._quotas.usage(owner_id)
            raise usage.refusal(bytes=length or 0, files=1)
        if token is None:
            return UploadStatus.of(row)
        lease = self._lease(row.id, token)
        staged = repository.staged_of(row)
        try:
            if body is not None and writes:
                row, staged = await self._steps.append(
                    lease,
                    row,
                    staged,
                    data=body,
                    new_length=None,
                    declared=declared,
                    checksum=checksum,
                    discard_mismatch=True,
                )
            if row.length is not None and row.upload_offset == row.length:
                row = await self._steps.complete(lease, row, staged)
        finally:
            await lease.release()
        return UploadStatus.of(row)

    async def status(self, *, owner_id: uuid.UUID, upload_id: str) -> UploadStatus:
        parsed = _parse_id(upload_id)
        async with self._unit() as session:
            row = await repository.owned(session, owner_id=owner_id, upload_id=parsed)
        if row is None:
            raise UploadNotFound()
        _check_not_expired(row, utcnow())
        if _has_every_byte(row):
            # The request that recorded the last byte died before the file
            # existed; finish its work rather than report a file that is not there.
            # While a lease holds the upload (that request's, if its process was
            # killed, until the lease lapses), it is not finished: 423, which tus
            # clients retry. An answer with Upload-Offset = Upload-Length would tell
            # them the upload is complete, and nobody would ever complete it.
            async with self._leased(owner_id=owner_id, upload_id=parsed) as (
                lease,
                row,
                staged,
            ):
                if _has_every_byte(row):
                    row = await self._steps.complete(lease, row, staged)
        return UploadStatus.of(row)

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
        parsed = _parse_id(upload_id)
        async with self._leased(owner_id=owner_id, upload_id=parsed) as (lease, row, staged):
            if offset != row.upload_offset:
                raise OffsetMismatch(
                    row.upload_offset, f"the upload is at {row.upload_offset}, not {offset}"
                )
            if row.state is UploadState.ACTIVE:
                row, staged = await self._steps.append(
                    lease,
                    row,
                    staged,
                    data=data,
                    new_length=new_length,
                    declared=declared,
                    checksum=checksum,
                    discard_mismatch=False,
                )
            elif declared:
                raise UploadTooLarge("the upload has all its bytes already")
            if _has_every_byte(row):
                row = await self._steps.complete(lease, row, staged)
            return UploadStatus.of(row)

    async def terminate(self, *, owner_id: uuid.UUID, upload_id: str) -> None:
        parsed = _parse_id(upload_id)
        async with self._leased(owner_id=owner_id, upload_id=parsed, allow_expired=True) as (
            lease,
            row,
            staged,
        ):
            if row.state is not UploadState.DONE:
                await remove_data(
                    staging=self._staging,
                    store=self._store,
                    staged=staged,
                    completing=row.state is UploadState.COMPLETING,
                )
            async with self._unit() as session:
                await repository.delete_upload(session, row.id, token=lease.token)
            lease.released()

    async def reclaim(self, *, older_than: datetime, dry_run: bool = False) -> int:
        """For `seau gc`: remove expired uploads (one with every byte recorded is
        made a file instead), and staging data older than ``older_than`` that no
        upload records. Returns how many were (or would be) removed."""
        return await reclaim_expired(
            sessions=self._sessions,
            db_timeout=self._db_timeout,
            store=self._store,
            staging=self._staging,
            older_than=older_than,
            dry_run=dry_run,
            on_event=self._on_event,
            complete=self._steps.complete,
        )

    # -- plumbing ------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _leased(
        self, *, owner_id: uuid.UUID, upload_id: uuid.UUID, allow_expired: bool = False
    ) -> AsyncIterator[tuple[Lease, Upload, Staged]]:
        """The upload's lease, its row and its staging state, from one unit of
        work; the lease is released on the way out unless a commit did it."""
        now = utcnow()
        token = new_token()
        async with self._unit() as session:
            taken = await repository.take_lease(
                session,
                upload_id,
                owner_id=owner_id,
                token=token,
                now=now,
                until=now + self.limits.lease,
            )
        if taken is None:
            raise UploadNotFound()
        if not taken.held:
            _check_not_expired(taken.row, now)
            raise UploadLocked(taken.row.upload_offset)
        lease = self._lease(upload_id, token)
        try:
            if not allow_expired:
                _check_not_expired(taken.row, now)
            yield lease, taken.row, taken.staged
        finally:
            await lease.release()

    def _lease(self, upload_id: uuid.UUID, token: str) -> Lease:
        return Lease(
            sessions=self._sessions,
            db_timeout=self._db_timeout,
            upload_id=upload_id,
            token=token,
            duration=self.limits.lease,
        )

    def _unit(self) -> AbstractAsyncContextManager[AsyncSession]:
        return unit_of_work(self._sessions, timeout_seconds=self._db_timeout)


def _as_made(in_commit: InCommit[UploadStatus]) -> InCommit[Upload]:
    async def run(session: AsyncSession, row: Upload) -> None:
        await in_commit(session, UploadStatus.of(row))

    return run


def _parse_id(upload_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(upload_id)
    except ValueError:
        raise UploadNotFound() from None


def _has_every_byte(row: Upload) -> bool:
    """Whether the upload is to be made a file: `completing`, or an empty upload
    whose creation was cut before its file was made (still `active`, at 0 of 0)."""
    if row.state is UploadState.COMPLETING:
        return True
    return row.state is UploadState.ACTIVE and row.length == 0


def _check_not_expired(row: Upload, now: datetime) -> None:
    if row.state is UploadState.COMPLETING:
        # Every byte is recorded: the upload is made a file whenever asked (by
        # `seau gc` too), never expired with bytes that were acknowledged.
        return
    if row.expires_at <= now:
        if row.state is UploadState.DONE:
            raise UploadNotFound()
        raise UploadExpired()
