"""Users' files: rows in SQL, bytes in the object store, kept consistent.

Order of an upload: stream the bytes to a fresh server-made key while counting
and hashing them, check the stored size, then insert the row, `ready`, in one
commit. Any failure deletes what was written (and the row, should its commit
have landed unseen); what a crash leaves (a temp file, an unfinished multipart
upload, an object without a row) is the reconciler's. Only `ready` rows are
listed or served. docs/decisions.md ("Consistency: bytes first and one commit")
says why there is no `pending` row first.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypeVar

from sqlalchemy import and_, delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from seau.db.base import utcnow
from seau.db.guard import DEFAULT_TIMEOUT_SECONDS, unit_of_work
from seau.db.models import FileState, UserFile
from seau.errors import (
    FileNotFound,
    InvalidCursor,
    PayloadTooLarge,
    StorageUnavailableError,
)
from seau.files.http import validate_file_name
from seau.files.keys import key_for
from seau.storage import ByteStream, ObjectNotFound, StorageUnavailable, Store

log = logging.getLogger("seau.files")

SortKey = Literal["created", "-created", "name", "-name", "size", "-size"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page:
    items: list[UserFile]
    next_cursor: str | None


class _Metered:
    """Passes chunks through while counting, hashing and enforcing the byte limit.

    SHA-256 runs on the event loop, chunk by chunk: hashing 1 MiB batches on a
    worker thread took the loop's share of a 512 MiB upload from 63-65 % to
    40-45 % of a core but cost more CPU in all (2.2-2.3 vs 1.9 s/GiB: a copy per
    batch and a thread trip), 2 MiB more memory, and no throughput on two cores
    (docs/benchmarks.md, "Tried and dropped").
    """

    def __init__(self, source: AsyncIterable[bytes], *, limit: int) -> None:
        self._source = source
        self._limit = limit
        self.size = 0
        self.sha256 = hashlib.sha256()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._source:
            self.size += len(chunk)
            if self.size > self._limit:
                raise PayloadTooLarge(f"the file exceeds the limit of {self._limit} bytes")
            self.sha256.update(chunk)
            yield chunk


class FileService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        store: Store,
        max_name_length: int = 255,
        db_timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self._db_timeout = db_timeout
        self._sessions = sessions
        self._store = store
        self._max_name_length = max_name_length

    # -- writing -----------------------------------------------------------

    async def upload(
        self,
        *,
        owner_id: uuid.UUID,
        name: str,
        content_type: str,
        data: AsyncIterable[bytes],
        max_bytes: int,
    ) -> UserFile:
        name = validate_file_name(name, max_length=self._max_name_length)
        file_id = uuid.uuid4()
        row = UserFile(
            id=file_id,
            owner_id=owner_id,
            object_key=key_for(file_id),
            name=name,
            content_type=content_type,
            size=0,
            state=FileState.READY,
        )
        inserting = False
        try:
            metered = _Metered(data, limit=max_bytes)
            await self._storage(self._store.put(row.object_key, metered, content_type=content_type))
            stored = await self._storage(self._store.head(row.object_key))
            if stored.size != metered.size:
                raise StorageUnavailableError(
                    f"the store kept {stored.size} bytes of {metered.size} sent"
                )
            row.size = metered.size
            row.sha256 = metered.sha256.hexdigest()
            row.created_at = row.updated_at = utcnow()
            inserting = True
            await self._db(functools.partial(_insert_row, row=row))
        except BaseException:
            # Nothing of a failed upload may survive. Once the insert was sent the
            # row may exist even if the answer never came (a commit applied, then
            # the connection lost), and the row must go before its bytes.
            if inserting:
                await self.discard([row])
            else:
                await self._forget_object(row)
            raise
        return row

    async def _forget_object(self, row: UserFile) -> None:
        """Best-effort removal of the bytes of an upload that never got a row."""
        try:
            await self._store.delete(row.object_key)
        except Exception:
            log.warning("could not delete object of failed upload %s", row.id, exc_info=True)

    async def discard(self, rows: Sequence[UserFile]) -> None:
        """Best-effort removal of files that must not survive; the reconciler
        removes whatever this cannot reach (an object without a row).

        The row goes first and the bytes only once it is gone: a row may be
        `ready` (a multipart request's earlier files, or a commit whose answer
        was lost but which the database applied), and a ready row must never
        point at missing bytes.
        """
        for row in rows:
            try:
                await self._db(functools.partial(_delete_row, file_id=row.id))
            except Exception:
                log.warning("could not delete row of failed upload %s", row.id, exc_info=True)
                continue
            try:
                await self._store.delete(row.object_key)
            except Exception:
                log.warning("could not delete object of failed upload %s", row.id, exc_info=True)

    async def rename(self, *, owner_id: uuid.UUID, file_id: str, name: str) -> UserFile:
        name = validate_file_name(name, max_length=self._max_name_length)

        async def run(session: AsyncSession) -> UserFile:
            row = await self._owned(session, owner_id=owner_id, file_id=file_id)
            row.name = name
            row.updated_at = utcnow()
            await session.commit()
            return row

        return await self._db(run)

    async def delete(self, *, owner_id: uuid.UUID, file_id: str) -> None:
        # The row goes first: a listed row never points at missing bytes. If the
        # object delete then fails, the orphan is the reconciler's to remove.
        async def run(session: AsyncSession) -> UserFile:
            row = await self._owned(session, owner_id=owner_id, file_id=file_id)
            await session.execute(delete(UserFile).where(UserFile.id == row.id))
            await session.commit()
            return row

        row = await self._db(run)
        try:
            await self._store.delete(row.object_key)
        except StorageUnavailable:
            log.warning(
                "object %s of deleted file %s left for the reconciler", row.object_key, row.id
            )

    # -- reading -----------------------------------------------------------

    async def get(self, *, owner_id: uuid.UUID, file_id: str) -> UserFile:
        async def run(session: AsyncSession) -> UserFile:
            return await self._owned(session, owner_id=owner_id, file_id=file_id)

        return await self._db(run)

    async def open_content(
        self, row: UserFile, *, start: int = 0, end: int | None = None
    ) -> ByteStream:
        try:
            return await self._storage(self._store.get(row.object_key, start=start, end=end))
        except ObjectNotFound:
            # A ready row without bytes breaks seau's promise; say so loudly.
            log.error("ready file %s has no object at %s", row.id, row.object_key)
            raise FileNotFound() from None

    async def list(
        self,
        *,
        owner_id: uuid.UUID,
        limit: int,
        cursor: str | None = None,
        sort: SortKey = "-created",
        query: str | None = None,
    ) -> Page:
        column: ColumnElement[object] = {
            "created": UserFile.created_at,
            "name": UserFile.name,
            "size": UserFile.size,
        }[sort.lstrip("-")]  # type: ignore[assignment]
        descending = sort.startswith("-")
        statement = select(UserFile).where(
            UserFile.owner_id == owner_id, UserFile.state == FileState.READY
        )
        if query:
            escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            statement = statement.where(UserFile.name.ilike(f"%{escaped}%", escape="\\"))
        if cursor is not None:
            value, last_id = _decode_cursor(cursor, sort=sort)
            if descending:
                after = or_(column < value, and_(column == value, UserFile.id < last_id))
            else:
                after = or_(column > value, and_(column == value, UserFile.id > last_id))
            statement = statement.where(after)
        order = (column.desc(), UserFile.id.desc()) if descending else (column, UserFile.id)
        statement = statement.order_by(*order).limit(limit + 1)

        async def run(session: AsyncSession) -> list[UserFile]:
            return list(await session.scalars(statement))

        rows = await self._db(run)
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = _encode_cursor(rows[-1], sort=sort)
        return Page(items=rows, next_cursor=next_cursor)

    # -- plumbing ----------------------------------------------------------

    @staticmethod
    async def _owned(session: AsyncSession, *, owner_id: uuid.UUID, file_id: str) -> UserFile:
        """The ready file ``file_id`` of ``owner_id``; anything else is "not found"."""
        try:
            parsed = uuid.UUID(file_id)
        except ValueError:
            raise FileNotFound() from None
        row = await session.scalar(
            select(UserFile).where(
                UserFile.id == parsed,
                UserFile.owner_id == owner_id,
                UserFile.state == FileState.READY,
            )
        )
        if row is None:
            raise FileNotFound()
        return row

    async def _db(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        return await unit_of_work(self._sessions, work, limit_seconds=self._db_timeout)

    @staticmethod
    async def _storage(operation: Awaitable[T]) -> T:
        try:
            return await operation
        except StorageUnavailable as exc:
            log.warning("storage unavailable: %s", exc)
            raise StorageUnavailableError() from exc


_FILE_TABLE = UserFile.metadata.tables[UserFile.__tablename__]
_INSERT_FILE = insert(_FILE_TABLE)


async def _insert_row(session: AsyncSession, *, row: UserFile) -> None:
    # One prepared Core insert of the table rather than `session.add` or an ORM
    # insert: the row is complete, and the ORM's bookkeeping was about 8 % of a
    # small upload's event-loop samples in a profile.
    values = {column.key: getattr(row, column.key) for column in _FILE_TABLE.columns}
    await session.execute(_INSERT_FILE, values)
    await session.commit()


async def _delete_row(session: AsyncSession, *, file_id: uuid.UUID) -> None:
    await session.execute(delete(UserFile).where(UserFile.id == file_id))
    await session.commit()


def _encode_cursor(row: UserFile, *, sort: SortKey) -> str:
    field = sort.lstrip("-")
    value: object = {
        "created": row.created_at.isoformat(),
        "name": row.name,
        "size": row.size,
    }[field]
    raw = json.dumps({"s": sort, "v": value, "i": row.id.hex}, ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


_MAX_BIGINT = 2**63 - 1
_CONTROL = frozenset(chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)])


def _decode_cursor(cursor: str, *, sort: SortKey) -> tuple[object, uuid.UUID]:
    """The (value, id) a cursor resumes after, or `InvalidCursor`.

    Cursors come back from clients, so everything is checked: the shape, the
    sort they were made for, and that the value is one every database can bind
    (a BIGINT, a UTF-8 name without NUL, a date UTC can represent).
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("s") != sort:
            raise InvalidCursor("the cursor was made for another sort order")
        last_id = uuid.UUID(hex=data["i"])
        value = data["v"]
        field = sort.lstrip("-")
        if field == "created" and isinstance(value, str):
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                raise ValueError("naive")
            return parsed.astimezone(UTC), last_id
        if field == "size" and type(value) is int and 0 <= value <= _MAX_BIGINT:
            return value, last_id
        if field == "name" and isinstance(value, str) and not _CONTROL.intersection(value):
            value.encode("utf-8")  # a lone surrogate cannot be sent to the database
            return value, last_id
        raise ValueError("cursor value of the wrong type")
    except InvalidCursor:
        raise
    except (
        ValueError,
        KeyError,
        TypeError,
        OverflowError,
        RecursionError,
        binascii.Error,
        UnicodeError,
    ):
        raise InvalidCursor() from None
