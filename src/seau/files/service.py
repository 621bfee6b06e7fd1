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

import asyncio
import base64
import binascii
import builtins
import functools
import hashlib
import json
import logging
import math
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, cast

from sqlalchemy import (
    Integer,
    Select,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    table,
    text,
    update,
)
from sqlalchemy.engine import Connection, Result, Row
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from seau.auth.owner_check import HOLDS, OwnerCheck
from seau.db.base import utcnow
from seau.db.engine import READ_HERE
from seau.db.models import NAME_SEARCH_TABLE, FileState, UserFile
from seau.db.unit import DEFAULT_TIMEOUT_SECONDS, InCommit, read_unit, unit_of_work
from seau.errors import (
    DatabaseUnavailable,
    FileNotFound,
    InvalidCursor,
    StorageUnavailableError,
    storage_call,
)
from seau.events import outbox
from seau.events.hook import PreUpload, Proposed
from seau.events.types import EventType
from seau.files.keys import key_for
from seau.files.meter import ByteMeter
from seau.files.names import guess_content_type, validate_file_name
from seau.files.schemas import file_event_data
from seau.files.types import TypePolicy, sniff
from seau.quotas import ledger
from seau.quotas.service import Held, Quotas
from seau.storage import ByteStream, ObjectNotFound, StorageUnavailable, Store

log = logging.getLogger("seau.files")

SortKey = Literal["created", "-created", "name", "-name", "size", "-size"]


# Object deletions in flight at once when an owner's files go; S3 answers each
# in tens of milliseconds.
_DELETE_CONCURRENCY = 16

MAX_QUERY_LENGTH = 64
"""Longest `q`: longer than any word one searches a file name for, short enough that
the trigram index's work (one posting list per trigram, 62 at most) stays small."""
SEARCH_TIMEOUT_SECONDS = 2.0
"""Longest a name search may run (less if `SEAU_DATABASE_TIMEOUT_SECONDS` is)."""
SEARCH_CONCURRENCY = 2
"""Name searches in flight per process: the rest of the pool stays for other work."""
_TRIGRAM = 3


@dataclass(frozen=True, slots=True)
class Purged:
    files: int
    bytes: int


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Listed]
    next_cursor: str | None


class Listed(Protocol):
    """A file as a page lists it: a row of the columns it shows."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def name(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def content_type(self) -> str: ...
    @property
    def declared_type(self) -> str: ...
    @property
    def sha256(self) -> str | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...


class StoredFile(Listed, Protocol):
    """A ready file as reading it needs: what a page shows, its owner and its key."""

    @property
    def owner_id(self) -> uuid.UUID: ...
    @property
    def object_key(self) -> str: ...


@dataclass(frozen=True, slots=True)
class _Stored:
    """A file whose bytes are stored and checked, its row not yet written."""

    row: UserFile
    held: Held


@dataclass(frozen=True, slots=True, kw_only=True)
class NewFile:
    """One file of a request with several, as `FileService.upload_many` takes them."""

    name: str
    """As the uploader sent it; `seau.files.names` makes the stored name of it."""
    content_type: str | None
    """As the uploader declared it, if at all."""
    data: AsyncIterable[bytes]


class FileService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        store: Store,
        max_name_length: int = 255,
        db_timeout: float = DEFAULT_TIMEOUT_SECONDS,
        search_sessions: async_sessionmaker[AsyncSession] | None = None,
        search_timeout: float = SEARCH_TIMEOUT_SECONDS,
        on_event: Callable[[], None] | None = None,
        pre_upload: PreUpload | None = None,
        quotas: Quotas | None = None,
        types: TypePolicy | None = None,
    ) -> None:
        """``search_sessions``: where name searches run (SQLite's reader connection,
        `seau.db.engine.create_search_engine`); ``sessions`` when None. ``on_event``
        is called after each commit that wrote an event (`seau.events.outbox.Wakeup`).
        ``pre_upload`` is asked before each file is stored and raises to refuse it
        (`seau.events.hook`). ``quotas`` holds each upload's room (unlimited
        quotas, usage still counted, when None). ``types``: the detected types
        that may be stored (any when None)."""
        self._types = types or TypePolicy()
        self._quotas = quotas or Quotas(sessions=sessions, db_timeout=db_timeout)
        self._on_event = on_event or _nothing
        self._pre_upload = pre_upload
        self._db_timeout = db_timeout
        self._sessions = sessions
        engine = sessions.kw["bind"]
        assert isinstance(engine, AsyncEngine)
        self._engine = engine
        self._search_sessions = search_sessions or sessions
        self._search_timeout = search_timeout
        self._search_slots = asyncio.Semaphore(SEARCH_CONCURRENCY)
        self._name_index: bool | None = None
        self._store = store
        self._max_name_length = max_name_length

    # -- writing -----------------------------------------------------------

    async def upload(
        self,
        *,
        owner_id: uuid.UUID,
        name: str,
        content_type: str | None,
        data: AsyncIterable[bytes],
        max_bytes: int,
        subject: str | None = None,
        size: int | None = None,
        via: str = "raw",
        in_commit: InCommit[UserFile] | None = None,
        check: OwnerCheck | None = None,
    ) -> UserFile:
        """Store one file, or nothing. ``content_type`` is the uploader's, if any:
        the declared type is that, when it says something, else the name's guess;
        the stored one is detected from the first bytes (`seau.files.types`).
        ``subject``, ``size`` (as announced, if it was) and ``via`` are what the
        pre-upload hook is told. ``in_commit`` runs in the transaction that makes the
        file, before its commit (a retry's answer is stored with the file:
        `seau.idempotent`). ``check``: a seau sign-in's owner check still to make
        (`seau.auth.owner_check`), folded into the first statement, before the
        hook is asked or a byte stored."""
        stored = await self._store_bytes(
            owner_id=owner_id,
            name=name,
            content_type=content_type,
            data=data,
            max_bytes=max_bytes,
            subject=subject,
            size=size,
            via=via,
            check=check,
        )
        (row,) = await self._make([stored], in_commit=_of_the_one(in_commit))
        return row

    async def _store_bytes(
        self,
        *,
        owner_id: uuid.UUID,
        name: str,
        content_type: str | None,
        data: AsyncIterable[bytes],
        max_bytes: int,
        subject: str | None,
        size: int | None,
        via: str,
        check: OwnerCheck | None,
    ) -> _Stored:
        """A file's bytes stored and checked, and its room held in the quota; its
        row is not written (`_make` does). If it fails, nothing of it is left."""
        content_type = guess_content_type(name, content_type)
        name = validate_file_name(name, max_length=self._max_name_length)
        file_id = uuid.uuid4()
        row = UserFile(
            id=file_id,
            owner_id=owner_id,
            object_key=key_for(file_id),
            name=name,
            content_type=content_type,
            declared_type=content_type,
            size=0,
            state=FileState.READY,
        )
        # Room in the owner's quota first, before a byte is stored: all of it when
        # the size is announced, else some ahead of the bytes, grown as they come.
        # With the sign-in's owner check, if it is still to make: before the hook
        # hears of the upload.
        held = await self._quotas.reserve(
            owner_id=owner_id, reservation_id=file_id, size=size, check=check
        )
        if self._pre_upload is not None:
            try:
                await self._pre_upload(
                    Proposed(
                        subject=subject, name=name, size=size, content_type=content_type, via=via
                    )
                )
            except BaseException:
                await self._release(held)
                raise
        gated = self._quotas.gate(held, data)
        try:
            metered = ByteMeter(gated, limit=max_bytes, sha256=hashlib.sha256())
            # The type, and whether it may be stored, from the first bytes held back.
            sniffed = await sniff(metered)
            row.content_type = await self._types.detect(sniffed.head)
            # What the store holds, as it answered the put (`Store.put`): no HEAD
            # after it, a second request per upload on S3.
            stored = await storage_call(
                self._store.put(row.object_key, sniffed, content_type=row.content_type)
            )
            if stored.size != metered.size:
                raise StorageUnavailableError(
                    f"the store kept {stored.size} bytes of {metered.size} sent"
                )
            row.size = metered.size
            assert metered.sha256 is not None
            row.sha256 = metered.sha256.hexdigest()
            row.created_at = row.updated_at = utcnow()
        except BaseException:
            await self._unstore([_Stored(row=row, held=held)])
            raise
        finally:
            await gated.aclose()
        return _Stored(row=row, held=held)

    async def _make(
        self, stored: Sequence[_Stored], *, in_commit: InCommit[list[UserFile]] | None
    ) -> list[UserFile]:
        """One transaction makes the files of ``stored``: their rows, ready, their
        events, ``in_commit``, their quota settled. If it fails, nothing is left:
        the rows go first (a commit whose answer was lost may have landed, and a
        ready row must never point at missing bytes), then the bytes.

        Except when the commit was sent with ``in_commit``'s work (an idempotent
        request's answer) and its outcome is unknown (the database's answer lost,
        the unit's time up, the request cancelled): then nothing is undone. Had it
        landed, a retry would replay the stored answer, and taking the files back
        under it acknowledged files that no longer existed (bench/scale.py: four
        uploads in 10,000). Landed, the files are made; not landed, the retry runs
        again and the bytes and the reservation are the reconciler's (`seau gc`),
        as after a crash."""
        rows = [one.row for one in stored]
        committing = False
        try:
            async with self._unit() as session:
                told = await _insert_rows(session, stored, in_commit=in_commit)
                committing = True
                await session.commit()
        except BaseException:
            if committing and in_commit is not None:
                log.warning(
                    "the commit of %d file(s) and their answer may not have landed; "
                    "left as it is (seau gc removes the bytes if it did not): %s",
                    len(rows),
                    ", ".join(str(row.id) for row in rows),
                )
                raise
            await self.discard(rows)
            for one in stored:
                await self._release(one.held)
            raise
        if told:
            self._on_event()
        return rows

    async def _unstore(self, stored: Sequence[_Stored]) -> None:
        """Best effort: the bytes and the quota of files that got no row."""
        for one in stored:
            await self._forget_object(one.row)
            await self._release(one.held)

    async def _release(self, held: Held) -> None:
        """Best effort: what a failed upload held goes back (else `seau gc` does it)."""
        if not held.reserved:
            return
        try:
            await asyncio.shield(self._quotas.release(held.id))
        except Exception:
            log.warning("could not release the quota held by upload %s", held.id, exc_info=True)

    async def upload_many(
        self,
        *,
        owner_id: uuid.UUID,
        files: AsyncIterator[NewFile],
        max_bytes: int,
        subject: str | None = None,
        in_commit: InCommit[list[UserFile]] | None = None,
        check: OwnerCheck | None = None,
    ) -> list[UserFile]:
        """Store every file ``files`` yields, one after the other, or none of them.

        One request, one outcome: the bytes of each file are stored as it comes,
        and one transaction makes all the files once the last is stored (with
        ``in_commit``, before its commit: a retry's answer is stored with the
        files). Whatever fails first (a file, or ``files`` itself, which may raise
        to refuse the request part way), the bytes already stored are deleted
        before the error propagates; a process that dies leaves no file of the
        request, only bytes without a row, for `seau gc`. ``max_bytes`` bounds
        each file.
        """
        stored: list[_Stored] = []
        try:
            async for new in files:
                stored.append(
                    await self._store_bytes(
                        owner_id=owner_id,
                        name=new.name,
                        content_type=new.content_type,
                        data=new.data,
                        max_bytes=max_bytes,
                        subject=subject,
                        size=None,
                        via="multipart",
                        check=check,
                    )
                )
        except BaseException:
            await self._unstore(stored)
            raise
        finally:
            # A generator left part way would be finalised only by the garbage
            # collector, outside any request; close it while its request lives.
            if isinstance(files, AsyncGenerator):
                await files.aclose()
        if not stored:
            return []
        return await self._make(stored, in_commit=in_commit)

    async def purge_owner(self, owner_id: uuid.UUID) -> Purged:
        """Remove every file of ``owner_id``, rows and objects, whatever their state.

        For an owner who can no longer start uploads (locked out first). Objects
        go before rows: if the store fails part way (`StorageUnavailable`), the
        rows still name every object left, and running it again finishes. An
        upload that passed authentication before the lock-out may add a row
        meanwhile; its object goes too, after the rows.
        """
        async with self._unit() as session:
            keys = set(
                await session.scalars(
                    select(UserFile.object_key).where(UserFile.owner_id == owner_id)
                )
            )
            size = await session.scalar(
                select(func.coalesce(func.sum(UserFile.size), 0)).where(
                    UserFile.owner_id == owner_id, UserFile.state == FileState.READY
                )
            )
        await self._delete_objects(keys)
        async with self._unit() as session:
            late = (
                set(
                    await session.scalars(
                        select(UserFile.object_key).where(UserFile.owner_id == owner_id)
                    )
                )
                - keys
            )
            gone = await session.scalars(
                select(UserFile).where(
                    UserFile.owner_id == owner_id, UserFile.state == FileState.READY
                )
            )
            told = [await _record(session, EventType.FILE_DELETED, row) for row in gone]
            await session.execute(delete(UserFile).where(UserFile.owner_id == owner_id))
            await ledger.recount(session, owner_id)
            await session.commit()
        if any(told):
            self._on_event()
        await self._delete_objects(late)
        return Purged(files=len(keys | late), bytes=int(size or 0))

    async def _delete_objects(self, keys: set[str]) -> None:
        limit = asyncio.Semaphore(_DELETE_CONCURRENCY)

        async def one(key: str) -> None:
            async with limit:
                await self._store.delete(key)

        await asyncio.gather(*(one(k) for k in sorted(keys)))

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
                async with self._unit() as session:
                    told = await _undo_row(session, row=row)
                if told:
                    self._on_event()
            except Exception:
                log.warning("could not delete row of failed upload %s", row.id, exc_info=True)
                continue
            try:
                await self._store.delete(row.object_key)
            except Exception:
                log.warning("could not delete object of failed upload %s", row.id, exc_info=True)

    async def rename(
        self,
        *,
        owner_id: uuid.UUID,
        file_id: str,
        name: str,
        pending: OwnerCheck | None = None,
    ) -> UserFile:
        """``pending``: a sign-in's owner check, folded into the file's statement."""
        name = validate_file_name(name, max_length=self._max_name_length)
        async with self._unit() as session:
            row = await self._owned(session, owner_id=owner_id, file_id=file_id, pending=pending)
            now = utcnow()
            await session.execute(_RENAME, {"file_id": row.id, "name": name, "updated_at": now})
            renamed = UserFile(
                **{**cast("Row[Any]", row)._asdict(), "name": name, "updated_at": now}
            )
            told = await _record(session, EventType.FILE_RENAMED, renamed)
            await session.commit()
        if told:
            self._on_event()
        return renamed

    async def delete(
        self, *, owner_id: uuid.UUID, file_id: str, pending: OwnerCheck | None = None
    ) -> None:
        """``pending``: a sign-in's owner check, folded into the file's statement."""
        # The row goes first: a listed row never points at missing bytes. If the
        # object delete then fails, the orphan is the reconciler's to remove.
        async with self._unit() as session:
            row = await self._owned(session, owner_id=owner_id, file_id=file_id, pending=pending)
            result = await session.execute(_DELETE_FILE, {"file_id": row.id})
            told = await _record(session, EventType.FILE_DELETED, row)
            # The usage row last, as in `_insert_rows`.
            if result.rowcount:  # type: ignore[attr-defined]
                await ledger.forget_file(session, owner_id=row.owner_id, size=row.size)
            await session.commit()
        if told:
            self._on_event()
        try:
            await self._store.delete(row.object_key)
        except StorageUnavailable:
            log.warning(
                "object %s of deleted file %s left for the reconciler", row.object_key, row.id
            )

    async def confirm_owner(self, check: OwnerCheck) -> None:
        """`InvalidToken` unless a sign-in's owner check holds: for a request refused
        before its first statement could fold the check in."""
        async with self._unit() as session:
            await check.confirm(session)

    # -- reading -----------------------------------------------------------

    async def get(
        self, *, owner_id: uuid.UUID, file_id: str, pending: OwnerCheck | None = None
    ) -> StoredFile:
        """The ready file ``file_id`` of ``owner_id``, else `FileNotFound`. With
        ``pending`` (a sign-in's owner check, `seau.auth.owner_check`), the check is
        folded into the same statement: `InvalidToken` when it fails, file or not.

        A row of the table's columns, not an ORM object: loading one was about a
        tenth of a small download's event-loop time, and nothing here changes it."""
        async with read_unit(self._engine, timeout_seconds=self._db_timeout) as connection:
            return await connection.run_sync(_owned, owner_id, file_id, pending)

    async def open_content(
        self, row: StoredFile, *, start: int = 0, end: int | None = None
    ) -> ByteStream:
        try:
            return await storage_call(self._store.get(row.object_key, start=start, end=end))
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
        pending: OwnerCheck | None = None,
    ) -> Page:
        """A page of the owner's ready files: the columns a page shows, as rows
        (no ORM objects: loading them was about a third of a page's event-loop
        time). With ``pending`` (a sign-in's owner check), the check is folded into
        the page's statement: `InvalidToken` when it fails."""
        params: dict[str, object] = {"owner_id": owner_id, "limit": limit + 1}
        if pending is not None:
            params.update(pending.params())
        if query:
            escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params["name_pattern"] = f"%{escaped}%"
        if cursor is not None:
            params["after_value"], params["after_id"] = _decode_cursor(cursor, sort=sort)
        statement = _page_statement(
            sort, checked=pending is not None, named=bool(query), resumed=cursor is not None
        )
        if query:
            rows = await self._search(statement, params, query=query, pending=pending)
        else:
            async with self._unit() as session:
                rows = await _page(session, statement, params, pending)
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = _encode_cursor(rows[-1], sort=sort)
        return Page(items=rows, next_cursor=next_cursor)

    async def _search(
        self,
        statement: Select[Any],
        params: dict[str, object],
        *,
        query: str,
        pending: OwnerCheck | None,
    ) -> builtins.list[Listed]:
        """Run a listing filtered by name, bounded in time and in concurrency.

        ``statement`` already holds the exact test (case-insensitive substring,
        `%`, `_` and `\\` literal); what the database offers only narrows the rows
        it is applied to. SQLite: the FTS5 trigram index of migration 0004 for 3
        characters or more (a trigram cannot hold fewer), on a reader connection
        of its own so that no search ever waits for, or delays, the connection
        every other request needs. PostgreSQL: the same statement, which its
        planner serves from the pg_trgm index. MariaDB: a scan. Everywhere: at
        most `SEARCH_CONCURRENCY` searches per process and `SEARCH_TIMEOUT_SECONDS`
        each, enforced by the server (statement timeouts) or, on SQLite, by
        interrupting the statement; past it the answer is 503.
        """
        timeout = min(self._search_timeout, self._db_timeout)
        try:
            async with asyncio.timeout(timeout):
                await self._search_slots.acquire()
        except TimeoutError:
            raise DatabaseUnavailable("too many searches at once; try again") from None
        try:
            async with unit_of_work(self._search_sessions, timeout_seconds=timeout) as session:
                dialect = session.get_bind().dialect
                if dialect.name == "sqlite":
                    if len(query) >= _TRIGRAM and await self._has_name_index(session):
                        statement = statement.where(_fts_candidates(query))
                    return await _page(session, statement, params, pending)
                if dialect.name == "postgresql":
                    # Ends with the transaction; the unit's deadline stays the bound.
                    await session.execute(
                        text(f"SET LOCAL statement_timeout = {_milliseconds(timeout)}")
                    )
                    return await _page(session, statement, params, pending)
                rows = await _bounded_mysql(session, statement, params, seconds=timeout)
                if not rows and pending is not None:
                    await pending.confirm(session)
                return rows
        finally:
            self._search_slots.release()

    async def _has_name_index(self, session: AsyncSession) -> bool:
        # Migration 0004 makes the index only where SQLite has FTS5's trigram
        # tokenizer (3.34+); without it, searching scans, bounded like any search.
        if self._name_index is None:
            found = await session.scalar(
                text("SELECT count(*) FROM sqlite_master WHERE name = :name"),
                {"name": NAME_SEARCH_TABLE},
            )
            self._name_index = bool(found)
        return self._name_index

    # -- plumbing ----------------------------------------------------------

    @staticmethod
    async def _owned(
        session: AsyncSession,
        *,
        owner_id: uuid.UUID,
        file_id: str,
        pending: OwnerCheck | None = None,
    ) -> StoredFile:
        return await session.run_sync(_owned, owner_id, file_id, pending)

    def _unit(self) -> AbstractAsyncContextManager[AsyncSession]:
        return unit_of_work(self._sessions, timeout_seconds=self._db_timeout)


def _owned(
    executor: Connection | Session,
    owner_id: uuid.UUID,
    file_id: str,
    pending: OwnerCheck | None,
) -> StoredFile:
    """The ready file ``file_id`` of ``owner_id``; anything else is "not found"
    (once a ``pending`` owner check is known to hold: a bad token says so first).
    Synchronous, for one `run_sync` of a session or a bare connection."""
    try:
        params: dict[str, object] = {"file_id": uuid.UUID(file_id), "owner_id": owner_id}
    except ValueError:
        row = None
    else:
        if pending is None:
            row = executor.execute(_OWNED, params).first()
        else:
            params.update(pending.params())
            row = executor.execute(_OWNED_CHECKED, params).first()
    if row is None:
        if pending is not None:
            pending.confirm_in(executor)
        raise FileNotFound()
    return cast(StoredFile, row)


_FILE_TABLE = UserFile.metadata.tables[UserFile.__tablename__]
# Built once: their compiled forms are cached, and no statement is assembled per request.
# A row by its key: read on the event loop's thread on SQLite (`READ_HERE`).
_OWNED = (
    select(_FILE_TABLE)
    .where(
        _FILE_TABLE.c.id == bindparam("file_id"),
        _FILE_TABLE.c.owner_id == bindparam("owner_id"),
        _FILE_TABLE.c.state == FileState.READY,
    )
    .execution_options(**{READ_HERE: True})
)
_OWNED_CHECKED = _OWNED.where(HOLDS)
_RENAME = (
    update(_FILE_TABLE)
    .where(_FILE_TABLE.c.id == bindparam("file_id"))
    .values(name=bindparam("name"), updated_at=bindparam("updated_at"))
)
_INSERT_FILE = insert(_FILE_TABLE)
# A Core delete of the table, built once: not the ORM's bulk delete (its session
# synchronization and compile state), nor a statement assembled per request.
_DELETE_FILE = delete(_FILE_TABLE).where(_FILE_TABLE.c.id == bindparam("file_id"))
# What a page shows of each file (`seau.files.schemas.FileRead`), and no more.
_LISTED = [
    _FILE_TABLE.c[name]
    for name in (
        "id",
        "name",
        "size",
        "content_type",
        "declared_type",
        "sha256",
        "created_at",
        "updated_at",
    )
]


def _listed(result: Result[Any]) -> builtins.list[Listed]:
    return cast("builtins.list[Listed]", result.all())


@functools.cache
def _page_statement(sort: SortKey, *, checked: bool, named: bool, resumed: bool) -> Select[Any]:
    """A page's statement, built once per shape and sort, its values bound when it
    runs (`FileService.list`): building it per request, and making its cache key,
    was about a tenth of a page's time. The bound values: ``owner_id``, ``limit``;
    ``check_*`` when ``checked`` (`seau.auth.owner_check`); ``name_pattern`` (a
    LIKE pattern, ``\\`` its escape) when ``named``; ``after_value``, ``after_id``
    (where the previous page ended) when ``resumed``."""
    files = _FILE_TABLE.c
    column: ColumnElement[Any] = {
        "created": files.created_at,
        "name": files.name,
        "size": files.size,
    }[sort.lstrip("-")]
    descending = sort.startswith("-")
    statement = select(*_LISTED).where(
        files.owner_id == bindparam("owner_id"), files.state == FileState.READY
    )
    if checked:
        statement = statement.where(HOLDS)
    if named:
        statement = statement.where(files.name.ilike(bindparam("name_pattern"), escape="\\"))
    if resumed:
        value = bindparam("after_value", type_=column.type)
        last_id = bindparam("after_id", type_=files.id.type)
        if descending:
            after = or_(column < value, and_(column == value, files.id < last_id))
        else:
            after = or_(column > value, and_(column == value, files.id > last_id))
        statement = statement.where(after)
    order = (column.desc(), files.id.desc()) if descending else (column, files.id)
    return statement.order_by(*order).limit(bindparam("limit", type_=Integer))


async def _page(
    session: AsyncSession,
    statement: Select[Any],
    params: dict[str, object],
    pending: OwnerCheck | None,
) -> builtins.list[Listed]:
    rows = _listed(await session.execute(statement, params))
    if not rows and pending is not None:
        # Nothing found: the owner has no such files, or the check failed.
        await pending.confirm(session)
    return rows


def _of_the_one(in_commit: InCommit[UserFile] | None) -> InCommit[list[UserFile]] | None:
    if in_commit is None:
        return None
    answer = in_commit

    async def run(session: AsyncSession, rows: list[UserFile]) -> None:
        (row,) = rows
        await answer(session, row)

    return run


async def _insert_rows(
    session: AsyncSession,
    stored: Sequence[_Stored],
    *,
    in_commit: InCommit[list[UserFile]] | None,
) -> bool:
    """Everything the files' transaction writes, its commit excepted (the caller's).
    Returns whether an event was written (`seau.events.outbox.record`)."""
    rows = [one.row for one in stored]
    # One prepared Core insert of the table rather than `session.add` or an ORM
    # insert: the rows are complete, and the ORM's bookkeeping was about 8 % of a
    # small upload's event-loop samples in a profile.
    await session.execute(
        _INSERT_FILE,
        [{column.key: getattr(row, column.key) for column in _FILE_TABLE.columns} for row in rows],
    )
    told = [await _record(session, EventType.FILE_READY, row) for row in rows]
    if in_commit is not None:
        await in_commit(session, rows)
    # Last: the owner's usage row stays locked only until the commit.
    for one in stored:
        await ledger.settle(
            session,
            reservation_id=one.held.id,
            owner_id=one.row.owner_id,
            size=one.row.size,
            reserved=one.held.reserved,
        )
    return any(told)


async def _undo_row(session: AsyncSession, *, row: UserFile) -> bool:
    """Delete the row of a file being undone, and its `file.ready` with it while no
    receiver has it; once one has, the undo is told as a `file.deleted`. Returns
    whether an event was written."""
    told = False
    result = await session.execute(_DELETE_FILE, {"file_id": row.id})
    if result.rowcount:  # type: ignore[attr-defined]
        if not await outbox.withdraw(session, resource_id=row.id):
            told = await _record(session, EventType.FILE_DELETED, row)
        # The usage row last, as in `_insert_rows`.
        await ledger.forget_file(session, owner_id=row.owner_id, size=row.size)
    await session.commit()
    return told


async def _record(session: AsyncSession, type: EventType, row: StoredFile) -> bool:
    return await outbox.record(
        session, type=type, resource_id=row.id, owner_id=row.owner_id, data=file_event_data(row)
    )


def _nothing() -> None:
    pass


def _fts_candidates(query: str) -> ColumnElement[bool]:
    """``user_file`` rows whose name the FTS5 trigram index says contains ``query``.

    A quoted FTS5 string is one phrase: its trigrams, consecutive. The index
    folds case over all of Unicode, more than SQLite's `lower`, so it returns
    a superset of what the exact test (kept in the statement) accepts. Keyed by
    `user_file`'s rowid, as an external-content FTS5 table must be.
    """
    phrase = '"' + query.replace('"', '""') + '"'
    matching: Select[object] = (
        select(literal_column("rowid"))
        .select_from(table(NAME_SEARCH_TABLE))
        .where(literal_column(NAME_SEARCH_TABLE).op("MATCH")(phrase))
    )
    return literal_column(f"{UserFile.__tablename__}.rowid").in_(matching)


async def _bounded_mysql(
    session: AsyncSession, statement: Select[Any], params: dict[str, object], *, seconds: float
) -> list[Listed]:
    """MariaDB has no trigram index: the statement scans the owner's rows, stopped
    by `max_statement_time` (MySQL: the `MAX_EXECUTION_TIME` hint, which MariaDB
    reads as a comment). The connection's own bound is put back afterwards."""
    statement = statement.prefix_with(
        f"/*+ MAX_EXECUTION_TIME({_milliseconds(seconds)}) */", dialect="mysql"
    )
    if not getattr(session.get_bind().dialect, "is_mariadb", False):
        return _listed(await session.execute(statement, params))
    await session.execute(
        text(
            "SET @seau_statement_time = @@session.max_statement_time, "
            f"@@session.max_statement_time = {seconds:.3f}"
        )
    )
    try:
        return _listed(await session.execute(statement, params))
    finally:
        await session.execute(text("SET @@session.max_statement_time = @seau_statement_time"))


def _milliseconds(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _encode_cursor(row: Listed, *, sort: SortKey) -> str:
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
