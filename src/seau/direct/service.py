"""Direct uploads: the client sends the bytes to the store; seau chooses the key,
hands out URLs that can write only there, and makes the file only once it has
verified what arrived (docs/decisions.md, "Direct uploads").

The order: at creation, the name and declared type pass seau's rules and the
pre-upload hook, the declared size is reserved in the owner's quota, and a row
records the upload (its id is the file's, its key `key_for(id)`). The client sends
the bytes (one presigned POST, or presigned parts). At completion seau checks the
stored size, the SHA-256 (the store's own full-object checksum when it verified
one, else by reading the object back) and the type of the first bytes; then one
transaction deletes the upload's row, inserts the ready file with its `file.ready`
event and settles the reservation. Anything that does not match deletes the
object and the row and releases the reservation (422 `verification_failed`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import AsyncIterable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seau.db.base import utcnow
from seau.db.models import DirectUpload, FileState, UserFile
from seau.db.unit import DEFAULT_TIMEOUT_SECONDS, InCommit, unit_of_work
from seau.direct import repository
from seau.direct.errors import (
    DirectUploadExpired,
    DirectUploadNotFound,
    NotMultipart,
    PolicyViolated,
    VerificationFailed,
)
from seau.direct.signing import DIRECT_PATH, OBJECT, UrlSigner, part_target
from seau.direct.verify import agrees
from seau.errors import PayloadTooLarge, SeauError, StorageUnavailableError, storage_call
from seau.events.hook import PreUpload, Proposed
from seau.files.keys import key_for
from seau.files.meter import ByteMeter
from seau.files.names import OCTET_STREAM, sanitize_content_type, validate_file_name
from seau.files.types import SNIFF_BYTES, TypePolicy, detect
from seau.quotas import ledger
from seau.quotas.service import Quotas
from seau.storage import ObjectNotFound, StorageError, Store
from seau.storage.direct import (
    DirectTarget,
    PartsRejected,
    PresignedPost,
    ReceivesParts,
    StoredPart,
    UploadSigner,
)

log = logging.getLogger("seau.direct")

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PARTS = 10_000
MAX_SINGLE_PART = 5 * 1024 * 1024 * 1024
"""S3's largest single PUT or POST: anything larger goes in parts."""
_BATCH = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectLimits:
    max_size: int
    multipart_threshold: int
    expiry: timedelta
    """How long an upload may take from creation to completion."""
    url_ttl: timedelta
    """How long each URL lasts (never past the upload's expiry)."""
    max_name_length: int = 255


@dataclass(frozen=True, slots=True)
class Sending:
    """How to send the bytes of a direct upload."""

    upload: DirectUpload
    post: PresignedPost | None
    """Single part: the form to POST (its ``url`` may be a seau path); None for multipart."""
    url_expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class PartUrl:
    number: int
    url: str
    """Absolute (presigned by the store), or a seau path starting with ``/``."""


def part_size_for(size: int) -> int:
    """The part size a client should use: whole MiB, at least 5 MiB (S3's smallest
    part but the last), with at most 10,000 parts."""
    needed = -(-size // MAX_PARTS)
    return max(MIN_PART_SIZE, -(-needed // (1024 * 1024)) * 1024 * 1024)


class DirectUploads:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        store: Store,
        target: DirectTarget,
        signer: UploadSigner | None,
        urls: UrlSigner,
        quotas: Quotas,
        limits: DirectLimits,
        db_timeout: float = DEFAULT_TIMEOUT_SECONDS,
        on_event: Callable[[], None] | None = None,
        pre_upload: PreUpload | None = None,
        types: TypePolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """``signer``: the store's (S3), or None when seau signs URLs to its own
        routes, which write through ``target`` (it must then `ReceivesParts`)."""
        if signer is None and not isinstance(target, ReceivesParts):
            raise ValueError("without a store signer, the target must receive parts")
        self._sessions = sessions
        self._store = store
        self._target = target
        self._signer = signer
        self._urls = urls
        self._quotas = quotas
        self._limits = limits
        self._db_timeout = db_timeout
        self._on_event = on_event or (lambda: None)
        self._pre_upload = pre_upload
        self._types = types or TypePolicy()
        self._clock = clock

    @property
    def limits(self) -> DirectLimits:
        return self._limits

    # -- the owner's API -------------------------------------------------------

    async def create(
        self,
        *,
        owner_id: uuid.UUID,
        subject: str | None,
        name: str,
        size: int,
        content_type: str | None,
        sha256: str | None,
        multipart: bool | None,
        in_commit: InCommit[Sending] | None = None,
    ) -> Sending:
        """A new direct upload, and how to send its bytes. ``in_commit`` runs in the
        transaction that records it, before its commit (a retry's answer is stored
        with the upload: `seau.idempotent`)."""
        name = validate_file_name(name, max_length=self._limits.max_name_length)
        declared = sanitize_content_type(content_type)
        if size > self._limits.max_size:
            raise PayloadTooLarge(f"the file exceeds the limit of {self._limits.max_size} bytes")
        if declared != OCTET_STREAM:
            # A type that may not be stored is refused before any byte is sent; the
            # bytes are checked again at completion.
            self._types.check(declared)
        if self._pre_upload is not None:
            await self._pre_upload(
                Proposed(subject=subject, name=name, size=size, content_type=declared, via="direct")
            )
        in_parts = bool(multipart) or (
            multipart is None and size >= self._limits.multipart_threshold
        )
        if size > MAX_SINGLE_PART:
            in_parts = True
        upload_id = uuid.uuid4()
        now = self._clock()
        row = DirectUpload(
            id=upload_id,
            owner_id=owner_id,
            object_key=key_for(upload_id),
            name=name,
            declared_type=declared,
            size=size,
            sha256=sha256,
            handle=None,
            part_size=part_size_for(size) if in_parts else None,
            expires_at=now + self._limits.expiry,
            created_at=now,
        )
        held = await self._quotas.reserve(owner_id=owner_id, reservation_id=upload_id, size=size)
        committing = False
        try:
            if in_parts:
                row.handle = await storage_call(
                    self._target.start_multipart(row.object_key, content_type=declared)
                )
            sending = await self._sending(row)
            async with self._unit() as session:
                session.add(row)
                if in_commit is not None:
                    await session.flush()
                    await in_commit(session, sending)
                committing = True
                await session.commit()
        except BaseException:
            # A commit sent with its answer (`in_commit`) may have landed unheard:
            # a retry would replay that answer, so nothing of the upload is undone
            # under it (as `FileService._make`); `seau gc` expires it otherwise.
            if not (committing and in_commit is not None):
                await asyncio.shield(self._undo_creation(row, held.id))
            raise
        return sending

    async def _undo_creation(self, row: DirectUpload, reservation_id: uuid.UUID) -> None:
        try:
            if row.handle is not None:
                await self._target.abort_multipart(row.object_key, handle=row.handle)
            await self._quotas.release(reservation_id)
        except Exception:
            log.warning("could not undo direct upload %s; gc will", row.id, exc_info=True)

    async def status(self, *, owner_id: uuid.UUID, upload_id: str) -> Sending:
        """The upload, and fresh URLs to send its bytes with."""
        row = await self._live(owner_id, upload_id)
        return await self._sending(row)

    async def sign_parts(
        self, *, owner_id: uuid.UUID, upload_id: str, numbers: Sequence[int]
    ) -> tuple[DirectUpload, list[PartUrl], datetime]:
        row = await self._live(owner_id, upload_id)
        handle = self._handle(row)
        lifetime, expires_at = self._url_lifetime(row)
        urls = []
        for number in sorted(set(numbers)):
            url = None
            if self._signer is not None:
                url = await storage_call(
                    self._signer.presign_part(
                        row.object_key, handle=handle, number=number, expires_in=lifetime
                    )
                )
            if url is None:
                query, _ = self._urls.sign(row.id, part_target(number), lifetime=lifetime)
                url = f"{DIRECT_PATH}/{row.id}/parts/{number}?{query}"
            urls.append(PartUrl(number=number, url=url))
        return row, urls, expires_at

    async def list_parts(
        self, *, owner_id: uuid.UUID, upload_id: str
    ) -> tuple[DirectUpload, list[StoredPart]]:
        row = await self._live(owner_id, upload_id)
        try:
            parts = await storage_call(
                self._target.list_parts(row.object_key, handle=self._handle(row))
            )
        except ObjectNotFound:
            parts = []
        return row, parts

    async def abort(self, *, owner_id: uuid.UUID, upload_id: str) -> None:
        row = await self._owned(owner_id, upload_id)
        if row is None:
            raise DirectUploadNotFound()
        await self._dispose(row)

    async def complete(
        self,
        *,
        owner_id: uuid.UUID,
        upload_id: str,
        parts: Sequence[tuple[int, str]] | None,
    ) -> UserFile:
        """The file, once verified; the same file when completed before."""
        row = await self._owned(owner_id, upload_id)
        if row is None:
            return await self._completed(owner_id, upload_id)
        if row.expires_at <= self._clock():
            await self._dispose(row)
            raise DirectUploadExpired()
        if row.handle is not None:
            await self._assemble(row, parts)
        elif parts:
            raise NotMultipart("a single-part upload is completed without `parts`")
        file = await self._verify(row)
        async with self._unit() as session:
            if not await repository.take(session, row.id):
                await session.rollback()
                # Completed (or aborted) by another request meanwhile.
                return await self._completed(owner_id, upload_id)
            await repository.make_file(session, file=file)
            await session.commit()
        self._on_event()
        return file

    async def _completed(self, owner_id: uuid.UUID, upload_id: str) -> UserFile:
        file_id = _parse_id(upload_id)
        async with self._unit() as session:
            file = await repository.ready_file(session, owner_id=owner_id, file_id=file_id)
        if file is None:
            raise DirectUploadNotFound()
        return file

    async def _assemble(self, row: DirectUpload, parts: Sequence[tuple[int, str]] | None) -> None:
        if not parts:
            raise NotMultipart("a multipart upload is completed with its `parts`")
        numbers = [number for number, _ in parts]
        if numbers != sorted(set(numbers)):
            raise NotMultipart("`parts` must be in ascending order of number, each once")
        try:
            await storage_call(
                self._target.complete_multipart(
                    row.object_key, handle=self._handle(row), parts=parts
                )
            )
        except PartsRejected as exc:
            await self._dispose(row)
            raise VerificationFailed(["parts"], f"the store refused the parts: {exc}") from None
        except ObjectNotFound:
            # The multipart upload is gone: completed by a request that failed before
            # it could make the file (the object is then there to verify), or aborted.
            pass

    async def _verify(self, row: DirectUpload) -> UserFile:
        """The file the stored object makes, or (after removing it all) the error."""
        try:
            stored = await storage_call(self._store.head(row.object_key))
        except ObjectNotFound:
            await self._dispose(row)
            raise VerificationFailed(["size"], "no bytes were stored") from None
        if stored.size != row.size:
            await self._dispose(row)
            raise VerificationFailed(
                ["size"], f"{stored.size} bytes were stored, {row.size} were declared"
            )
        checksum = None
        try:
            if row.sha256 is not None and row.handle is None:
                # Only a single part can carry a full-object SHA-256 that S3 verified
                # (a multipart object's is a checksum of its parts' checksums).
                checksum = await storage_call(self._target.stored_sha256(row.object_key))
            head, sha256 = await self._read_back(row, whole=checksum is None)
        except ObjectNotFound:
            await self._dispose(row)
            raise VerificationFailed(["size"], "the stored bytes are gone") from None
        sha256 = sha256 or checksum
        assert sha256 is not None
        detected = await asyncio.to_thread(detect, head)
        differs = []
        if row.sha256 is not None and sha256 != row.sha256:
            differs.append("sha256")
        if not agrees(row.declared_type, detected):
            differs.append("content_type")
        if differs:
            await self._dispose(row)
            raise VerificationFailed(
                differs,
                f"the stored bytes differ from what was declared in {', '.join(differs)}"
                + (f" (detected {detected})" if "content_type" in differs else ""),
            )
        if not self._types.allows(detected):
            await self._dispose(row)
            self._types.check(detected)
        now = self._clock()
        return UserFile(
            id=row.id,
            owner_id=row.owner_id,
            object_key=row.object_key,
            name=row.name,
            content_type=detected,
            declared_type=row.declared_type,
            size=row.size,
            sha256=sha256,
            state=FileState.READY,
            created_at=now,
            updated_at=now,
        )

    async def _read_back(self, row: DirectUpload, *, whole: bool) -> tuple[bytes, str | None]:
        """The first `SNIFF_BYTES` and, when ``whole``, the SHA-256 of everything
        (streamed: memory stays at one chunk)."""
        end = None if whole else SNIFF_BYTES
        stream = await storage_call(self._store.get(row.object_key, end=end))
        digest = hashlib.sha256()
        head = bytearray()
        try:
            async for chunk in stream:
                if len(head) < SNIFF_BYTES:
                    head += chunk[: SNIFF_BYTES - len(head)]
                if whole:
                    digest.update(chunk)
        except StorageError as exc:
            raise _storage_failure(exc) from None
        finally:
            await stream.aclose()
        return bytes(head), digest.hexdigest() if whole else None

    # -- the URLs seau signs itself (stores without a signer) --------------------

    async def receive_object(
        self,
        *,
        upload_id: str,
        expires: str,
        signature: str,
        content_type: str | None,
        data: AsyncIterable[bytes],
    ) -> None:
        """The bytes of a single-part upload, POSTed to the URL seau signed: at most
        the declared size (more is 413 and nothing is kept), as the declared type."""
        row = await self._signed(upload_id, OBJECT, expires=expires, signature=signature)
        if row.handle is not None:
            raise NotMultipart("this upload is sent in parts")
        if content_type is not None and sanitize_content_type(content_type) != row.declared_type:
            raise PolicyViolated(f"the Content-Type field must be {row.declared_type}")
        metered = ByteMeter(data, limit=row.size, too_large=_too_large, sha256=None)
        await storage_call(self._store.put(row.object_key, metered, content_type=row.declared_type))

    async def receive_part(
        self,
        *,
        upload_id: str,
        number: int,
        expires: str,
        signature: str,
        data: AsyncIterable[bytes],
    ) -> StoredPart:
        row = await self._signed(
            upload_id, part_target(number), expires=expires, signature=signature
        )
        handle = self._handle(row)
        target = self._target
        assert isinstance(target, ReceivesParts)
        try:
            others = await storage_call(self._target.list_parts(row.object_key, handle=handle))
        except ObjectNotFound:
            raise DirectUploadNotFound() from None
        # Parts never add up to more than was declared (and reserved).
        room = row.size - sum(p.size for p in others if p.number != number)
        metered = ByteMeter(data, limit=max(room, 0), too_large=_too_large, sha256=None)
        try:
            return await storage_call(
                target.write_part(row.object_key, handle=handle, number=number, data=metered)
            )
        except ObjectNotFound:
            raise DirectUploadNotFound() from None

    async def _signed(
        self, upload_id: str, target: str, *, expires: str, signature: str
    ) -> DirectUpload:
        parsed = _parse_id(upload_id)
        self._urls.verify(parsed, target, expires=expires, signature=signature)
        async with self._unit() as session:
            row = await repository.by_id(session, parsed)
        if row is None:
            raise DirectUploadNotFound()
        if row.expires_at <= self._clock():
            raise DirectUploadExpired()
        return row

    # -- gc ----------------------------------------------------------------------

    async def reclaim(self, *, dry_run: bool = False) -> int:
        """For `seau gc`: remove the uploads that expired without completing, their
        objects and multipart uploads with them. Returns how many."""
        count = 0
        while True:
            async with self._unit() as session:
                batch = await repository.expired(session, before=self._clock(), limit=_BATCH)
            if dry_run or not batch:
                return count + len(batch)
            for row in batch:
                await self._dispose(row)
            count += len(batch)
            if len(batch) < _BATCH:
                return count

    # -- plumbing ------------------------------------------------------------------

    async def _dispose(self, row: DirectUpload) -> None:
        """Remove an upload that will never make a file: its row and reservation in one
        transaction, then its bytes (what cannot be reached now, an object or an S3
        multipart upload with no row, `seau gc` removes after its grace period)."""
        async with self._unit() as session:
            await repository.take(session, row.id)
            await ledger.release(session, row.id)
            await session.commit()
        try:
            if row.handle is not None:
                await self._target.abort_multipart(row.object_key, handle=row.handle)
            await self._store.delete(row.object_key)
        except StorageError:
            log.warning("bytes of direct upload %s left for gc", row.id, exc_info=True)

    async def _sending(self, row: DirectUpload) -> Sending:
        if row.handle is not None:
            return Sending(upload=row, post=None, url_expires_at=None)
        lifetime, expires_at = self._url_lifetime(row)
        post = None
        if self._signer is not None:
            post = await storage_call(
                self._signer.presign_post(
                    row.object_key,
                    content_type=row.declared_type,
                    size=row.size,
                    expires_in=lifetime,
                    sha256=row.sha256,
                )
            )
        if post is None:
            query, _ = self._urls.sign(row.id, OBJECT, lifetime=lifetime)
            post = PresignedPost(
                url=f"{DIRECT_PATH}/{row.id}/object?{query}",
                fields={"Content-Type": row.declared_type},
            )
        return Sending(upload=row, post=post, url_expires_at=expires_at)

    def _url_lifetime(self, row: DirectUpload) -> tuple[timedelta, datetime]:
        now = self._clock()
        left = row.expires_at - now
        lifetime = max(timedelta(seconds=1), min(self._limits.url_ttl, left))
        whole = timedelta(seconds=int(lifetime.total_seconds()))
        return whole, now + whole

    @staticmethod
    def _handle(row: DirectUpload) -> str:
        if row.handle is None:
            raise NotMultipart("this upload is sent as one part (a POST), not in parts")
        return row.handle

    async def _live(self, owner_id: uuid.UUID, upload_id: str) -> DirectUpload:
        row = await self._owned(owner_id, upload_id)
        if row is None:
            raise DirectUploadNotFound()
        if row.expires_at <= self._clock():
            raise DirectUploadExpired()
        return row

    async def _owned(self, owner_id: uuid.UUID, upload_id: str) -> DirectUpload | None:
        parsed = _parse_id(upload_id)
        async with self._unit() as session:
            return await repository.owned(session, owner_id=owner_id, upload_id=parsed)

    def _unit(self) -> AbstractAsyncContextManager[AsyncSession]:
        return unit_of_work(self._sessions, timeout_seconds=self._db_timeout)


def _parse_id(upload_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(upload_id)
    except ValueError:
        raise DirectUploadNotFound() from None


def _too_large(limit: int) -> SeauError:
    return PayloadTooLarge(f"more bytes than the {limit} declared")


def _storage_failure(exc: StorageError) -> SeauError:
    log.warning("storage failed while verifying a direct upload: %s", exc)
    return StorageUnavailableError()
