"""The SQL of quotas: functions of a session, run inside the caller's transaction
(none of them commits), so that a reservation goes with the upload row that owns
it, and usage with the file row that makes it.

Each owner has one `owner_usage` row. Every change to it is one UPDATE of that row:
PostgreSQL and MariaDB lock the row for the rest of the transaction, and SQLite has
one writer at a time, so two uploads of one owner, on any instances, are counted one
after the other and never pass the quota together. A reservation of known size is
one conditional UPDATE (``... WHERE used + reserved + n <= quota``); one of unknown
size (`extend`) locks the row, reads it and grows by what is left. The usage row is
locked last in every transaction (docs/decisions.md, "Lock order"), so that no two
transactions can wait for each other through it.

The row is made on the owner's first upload, from their ready files (migration 0008
made it for every owner that existed then), by an insert that does nothing when
another instance made it first (`ensure_row`), in a transaction of its own.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Insert,
    Select,
    Update,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from seau.auth.owner_check import HOLDS, OwnerCheck
from seau.db.engine import READ_HERE, WRITE_HERE
from seau.db.models import (
    DirectUpload,
    FileState,
    OwnerUsage,
    QuotaReservation,
    Upload,
    UserFile,
)
from seau.errors import InvalidToken, QuotaExceeded

_USAGE = OwnerUsage.metadata.tables[OwnerUsage.__tablename__]
_HELD = QuotaReservation.metadata.tables[QuotaReservation.__tablename__]
_FILES = UserFile.metadata.tables[UserFile.__tablename__]
_UPLOADS = Upload.metadata.tables[Upload.__tablename__]
_DIRECT = DirectUpload.metadata.tables[DirectUpload.__tablename__]


@dataclass(frozen=True, slots=True)
class Defaults:
    """The server's quotas (`SEAU_DEFAULT_QUOTA_BYTES`, `_FILES`); 0 = unlimited."""

    bytes: int = 0
    files: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    used_bytes: int
    used_files: int
    reserved_bytes: int
    reserved_files: int
    quota_bytes: int
    """The quota that applies (the owner's own, or the server's default); 0: none."""
    quota_files: int
    own_quota_bytes: int | None
    """What an admin set for this owner; None: the server's default applies."""
    own_quota_files: int | None

    def refusal(self, *, bytes: int, files: int) -> QuotaExceeded:
        """The 413 for an upload of ``bytes`` and ``files`` that did not fit."""
        if self.quota_bytes and self.used_bytes + self.reserved_bytes + bytes > self.quota_bytes:
            return QuotaExceeded(
                unit="bytes",
                limit=self.quota_bytes,
                used=self.used_bytes,
                reserved=self.reserved_bytes,
            )
        return QuotaExceeded(
            unit="files",
            limit=self.quota_files,
            used=self.used_files,
            reserved=self.reserved_files,
        )


UNBOUNDED = 2**63 - 1
"""What `extend` answers for an owner without a byte quota: the upload may go on
without holding more (an admin's new quota applies from the next upload)."""


class Outcome(enum.Enum):
    RESERVED = "reserved"
    OVER = "over"
    NO_ROW = "no_row"
    """The owner has no usage row yet: `ensure_row` (its own transaction), then again."""


# The hot path's statements, built once (like `seau.files.service`'s insert): building
# and caching an expression per call cost more than the database's own work.
_P_OWNER = bindparam("p_owner", type_=_USAGE.c.owner_id.type)
_P_BYTES = bindparam("p_bytes", type_=BigInteger)
_P_FILES = bindparam("p_files", type_=BigInteger)
_P_DEFAULT_BYTES = bindparam("p_default_bytes", type_=BigInteger)
_P_DEFAULT_FILES = bindparam("p_default_files", type_=BigInteger)


def _reserve_update() -> Update:
    c = _USAGE.c
    limit_bytes = func.coalesce(c.quota_bytes, _P_DEFAULT_BYTES)
    limit_files = func.coalesce(c.quota_files, _P_DEFAULT_FILES)
    return (
        update(_USAGE)
        .where(
            c.owner_id == _P_OWNER,
            or_(limit_bytes == 0, c.used_bytes + c.reserved_bytes + _P_BYTES <= limit_bytes),
            or_(limit_files == 0, c.used_files + c.reserved_files + _P_FILES <= limit_files),
        )
        .values(
            reserved_bytes=c.reserved_bytes + _P_BYTES, reserved_files=c.reserved_files + _P_FILES
        )
    )


_RESERVE = _reserve_update()
_INSERT_HELD = insert(_HELD)
_USAGE_OWNER = select(_USAGE.c.owner_id).where(_USAGE.c.owner_id == _P_OWNER)
_HELD_BYTES = select(_HELD.c.bytes).where(_HELD.c.id == bindparam("p_id", type_=_HELD.c.id.type))


async def reserve(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    reservation_id: uuid.UUID,
    bytes: int,
    files: int = 1,
    defaults: Defaults,
    now: datetime,
) -> Outcome:
    """Hold ``bytes`` and ``files`` for an upload, if they fit: the reservation's
    insert, then one conditional UPDATE of the owner's row (the caller rolls back
    when it did not take). Exactly reaching the quota fits.

    The owner's usage row is always the last row a transaction locks: the
    reservation's insert takes a share lock on the owner's account (its foreign
    key), and a tus creation locks that account before it reserves; taking the
    usage row first here made a cycle with it (seen as deadlocks on PostgreSQL
    and MariaDB under two instances)."""
    await session.execute(
        _INSERT_HELD,
        {
            "id": reservation_id,
            "owner_id": owner_id,
            "bytes": bytes,
            "files": files,
            "created_at": now,
        },
    )
    params = {
        "p_owner": owner_id,
        "p_bytes": bytes,
        "p_files": files,
        "p_default_bytes": defaults.bytes,
        "p_default_files": defaults.files,
    }
    if (await session.execute(_RESERVE, params)).rowcount:  # type: ignore[attr-defined]
        return Outcome.RESERVED
    found = await session.scalar(_USAGE_OWNER, {"p_owner": owner_id})
    return Outcome.OVER if found is not None else Outcome.NO_ROW


async def extend(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    reservation_id: uuid.UUID,
    at_least: int,
    wanted: int,
    exact: bool = False,
    files: int = 1,
    defaults: Defaults,
    now: datetime,
) -> int | None:
    """Make the reservation hold ``at_least`` bytes, ``wanted`` if that much is
    left (an upload of unknown size asks for some room ahead); with ``exact``,
    exactly ``wanted`` (a size that became known: room held beyond it goes back).
    A reservation not made yet is made, with ``files``.

    Returns the bytes now held (`UNBOUNDED` when the owner has no byte quota and
    the size is still unknown), or None when the owner has no usage row yet;
    raises `QuotaExceeded` when ``at_least`` does not fit (the caller's transaction
    is then to be rolled back). As in `reserve`, the reservation's row comes first
    and the owner's row last. The reservation is this upload's alone (one request
    at a time holds it), so it is read without a lock: a locking read of a missing
    key would take a gap lock on MariaDB, which two inserts then deadlock on."""
    found = (await session.execute(_HELD_BYTES, {"p_id": reservation_id})).first()
    held = 0 if found is None else int(found.bytes)
    if found is not None and held >= at_least and not (exact and held != wanted):
        return held
    new_files = files if found is None else 0
    if found is None:
        await session.execute(
            _INSERT_HELD,
            {
                "id": reservation_id,
                "owner_id": owner_id,
                "bytes": 0,
                "files": new_files,
                "created_at": now,
            },
        )
    c = _USAGE.c
    row = (
        await session.execute(select(_USAGE).where(c.owner_id == owner_id).with_for_update())
    ).first()
    if row is None:
        return None
    usage = _usage_of(row, defaults)
    delta = wanted - held
    unbounded = not usage.quota_bytes and not exact
    if unbounded:
        # No byte quota: nothing to hold ahead of the bytes, and no need to come back
        # (an upload of unknown size then costs no round trip while it streams).
        delta = 0
    if delta > 0 and usage.quota_bytes:
        left = usage.quota_bytes - usage.used_bytes - usage.reserved_bytes
        if at_least - held > left:
            raise usage.refusal(bytes=at_least - held, files=new_files)
        delta = min(delta, max(left, at_least - held))
    if (
        new_files
        and usage.quota_files
        and usage.used_files + usage.reserved_files + new_files > usage.quota_files
    ):
        raise usage.refusal(bytes=0, files=new_files)
    if delta or new_files:
        await session.execute(
            update(_USAGE)
            .where(c.owner_id == owner_id)
            .values(
                reserved_bytes=c.reserved_bytes + delta,
                reserved_files=c.reserved_files + new_files,
            )
        )
    if delta:
        await session.execute(
            update(_HELD).where(_HELD.c.id == reservation_id).values(bytes=held + delta)
        )
    return UNBOUNDED if unbounded else held + delta


_P_RESERVATION = bindparam("p_reservation", type_=_HELD.c.id.type)
_P_SIZE = bindparam("p_size", type_=BigInteger)
# The statements that settle a file's usage come after its row's write in the same
# transaction: on SQLite without a trip to the driver's thread (`WRITE_HERE`).
_TAKE_HELD = (
    delete(_HELD)
    .where(_HELD.c.id == _P_RESERVATION)
    .returning(_HELD.c.bytes, _HELD.c.files)
    .execution_options(**{WRITE_HERE: True})
)


def _settle_update(held_bytes: ColumnElement[int], held_files: ColumnElement[int]) -> Update:
    c = _USAGE.c
    return (
        update(_USAGE)
        .where(c.owner_id == _P_OWNER)
        .values(
            used_bytes=c.used_bytes + _P_SIZE,
            used_files=c.used_files + 1,
            reserved_bytes=c.reserved_bytes - held_bytes,
            reserved_files=c.reserved_files - held_files,
        )
    )


_SETTLE = _settle_update(
    bindparam("p_held_bytes", type_=BigInteger), bindparam("p_held_files", type_=BigInteger)
).execution_options(**{WRITE_HERE: True})
_REMOVED = _TAKE_HELD.cte("removed")
# PostgreSQL: one statement; the reservation's DELETE runs once, whatever reads it.
_SETTLE_PG = _settle_update(
    func.coalesce(select(_REMOVED.c.bytes).scalar_subquery(), 0),
    func.coalesce(select(_REMOVED.c.files).scalar_subquery(), 0),
).add_cte(_REMOVED)


async def settle(
    session: AsyncSession,
    *,
    reservation_id: uuid.UUID,
    owner_id: uuid.UUID,
    size: int,
    reserved: bool = True,
) -> None:
    """The upload's file is ready (its row written in this transaction): its
    reservation becomes usage. Without a reservation (an upload begun before
    migration 0008, or one that ``reserved`` nothing because no quota applied), the
    file is counted all the same."""
    params: dict[str, object] = {
        "p_reservation": reservation_id,
        "p_owner": owner_id,
        "p_size": size,
    }
    if not reserved:
        result = await session.execute(_SETTLE, {**params, "p_held_bytes": 0, "p_held_files": 0})
    elif session.get_bind().dialect.name == "postgresql":
        result = await session.execute(_SETTLE_PG, params)
    else:
        gone = (await session.execute(_TAKE_HELD, params)).first()
        held = (0, 0) if gone is None else (int(gone.bytes), int(gone.files))
        result = await session.execute(
            _SETTLE, {**params, "p_held_bytes": held[0], "p_held_files": held[1]}
        )
    if not result.rowcount:  # type: ignore[attr-defined]
        # Counted from the ready files, this one included.
        await session.execute(_insert_if_absent(session, owner_id))


async def release(session: AsyncSession, reservation_id: uuid.UUID) -> None:
    """Give back what a failed, terminated or expired upload held (if anything)."""
    gone = (
        await session.execute(
            delete(_HELD)
            .where(_HELD.c.id == reservation_id)
            .returning(_HELD.c.owner_id, _HELD.c.bytes, _HELD.c.files)
        )
    ).first()
    if gone is None:
        return
    c = _USAGE.c
    await session.execute(
        update(_USAGE)
        .where(c.owner_id == gone.owner_id)
        .values(
            reserved_bytes=c.reserved_bytes - gone.bytes,
            reserved_files=c.reserved_files - gone.files,
        )
    )


async def forget_file(session: AsyncSession, *, owner_id: uuid.UUID, size: int) -> None:
    """A ready file's row was deleted in this transaction."""
    await session.execute(_FORGET_FILE, {"p_owner": owner_id, "p_size": size})


# Built once, like the statements above, not assembled (and its cache key made) per
# delete.
_FORGET_FILE = (
    update(_USAGE)
    .where(_USAGE.c.owner_id == _P_OWNER)
    .values(
        used_bytes=_USAGE.c.used_bytes - bindparam("p_size", type_=_USAGE.c.used_bytes.type),
        used_files=_USAGE.c.used_files - 1,
    )
    .execution_options(**{WRITE_HERE: True})
)


async def recount(session: AsyncSession, owner_id: uuid.UUID) -> None:
    """Count the owner's ready files again (after removing many at once)."""
    c = _USAGE.c
    await session.execute(
        update(_USAGE)
        .where(c.owner_id == owner_id)
        .values(
            used_bytes=_ready_bytes(owner_id).scalar_subquery(),
            used_files=_ready_files(owner_id).scalar_subquery(),
        )
    )


async def stale(session: AsyncSession, *, before: datetime, limit: int) -> list[uuid.UUID]:
    """Reservations older than ``before`` whose upload is gone: a plain upload's
    (its process was killed), or a resumable one's whose row was removed without it.
    A resumable or direct upload's reservation lives as long as its upload row."""
    rows = await session.scalars(
        select(_HELD.c.id)
        .where(
            _HELD.c.created_at < before,
            ~exists().where(_UPLOADS.c.id == _HELD.c.id),
            ~exists().where(_DIRECT.c.id == _HELD.c.id),
        )
        .order_by(_HELD.c.created_at)
        .limit(limit)
    )
    return list(rows)


# Rows by their keys: read on the event loop's thread on SQLite (`READ_HERE`).
_OWN_QUOTAS = (
    select(_USAGE.c.quota_bytes, _USAGE.c.quota_files)
    .where(_USAGE.c.owner_id == _P_OWNER)
    .execution_options(**{READ_HERE: True})
)


def _of_usage(column: ColumnElement[int | None]) -> ColumnElement[int | None]:
    return select(column).where(_USAGE.c.owner_id == _P_OWNER).scalar_subquery()


# The same read with a seau sign-in's owner check folded in: one row whatever is
# found (no FROM, no WHERE: valid on the three databases).
_OWN_QUOTAS_CHECKED = select(
    HOLDS.label("holds"),
    exists().where(_USAGE.c.owner_id == _P_OWNER).label("has_row"),
    _of_usage(_USAGE.c.quota_bytes).label("quota_bytes"),
    _of_usage(_USAGE.c.quota_files).label("quota_files"),
).execution_options(**{READ_HERE: True})


async def own_quotas(
    session: AsyncSession, owner_id: uuid.UUID, *, check: OwnerCheck | None = None
) -> tuple[int, int] | None:
    """The owner's own byte and file quotas (0 where none is set, or unlimited), or
    None when the owner has no usage row yet. With ``check`` (a seau sign-in's owner
    check, `seau.auth.owner_check`), in the same statement: `InvalidToken` unless it
    holds."""
    if check is None:
        found = (await session.execute(_OWN_QUOTAS, {"p_owner": owner_id})).first()
        if found is None:
            return None
        return (int(found.quota_bytes or 0), int(found.quota_files or 0))
    params = {"p_owner": owner_id, **check.params()}
    row = (await session.execute(_OWN_QUOTAS_CHECKED, params)).one()
    if not row.holds:
        raise InvalidToken("the token is not valid")
    if not row.has_row:
        return None
    return (int(row.quota_bytes or 0), int(row.quota_files or 0))


async def ensure_row(session: AsyncSession, owner_id: uuid.UUID) -> None:
    """Make the owner's usage row from their ready files, unless it exists; run in
    a transaction of its own (an instance making it at the same moment wins)."""
    await session.execute(_insert_if_absent(session, owner_id))


async def usage(session: AsyncSession, owner_id: uuid.UUID, defaults: Defaults) -> Usage:
    """The owner's usage; for an owner without a row yet, counted from their files."""
    row = (await session.execute(select(_USAGE).where(_USAGE.c.owner_id == owner_id))).first()
    if row is not None:
        return _usage_of(row, defaults)
    used_bytes = await session.scalar(_ready_bytes(owner_id))
    used_files = await session.scalar(_ready_files(owner_id))
    return Usage(
        used_bytes=int(used_bytes or 0),
        used_files=int(used_files or 0),
        reserved_bytes=0,
        reserved_files=0,
        quota_bytes=defaults.bytes,
        quota_files=defaults.files,
        own_quota_bytes=None,
        own_quota_files=None,
    )


async def set_quota(
    session: AsyncSession,
    owner_id: uuid.UUID,
    values: dict[str, int | None],
) -> None:
    """Set ``quota_bytes`` and/or ``quota_files`` (None: the default) of a row
    that exists."""
    await session.execute(update(_USAGE).where(_USAGE.c.owner_id == owner_id).values(**values))


# -- plumbing ----------------------------------------------------------------------


def _usage_of(row: object, defaults: Defaults) -> Usage:
    own_bytes: int | None = getattr(row, "quota_bytes", None)
    own_files: int | None = getattr(row, "quota_files", None)
    return Usage(
        used_bytes=int(getattr(row, "used_bytes", 0)),
        used_files=int(getattr(row, "used_files", 0)),
        reserved_bytes=int(getattr(row, "reserved_bytes", 0)),
        reserved_files=int(getattr(row, "reserved_files", 0)),
        quota_bytes=defaults.bytes if own_bytes is None else int(own_bytes),
        quota_files=defaults.files if own_files is None else int(own_files),
        own_quota_bytes=None if own_bytes is None else int(own_bytes),
        own_quota_files=None if own_files is None else int(own_files),
    )


def _ready(owner_id: uuid.UUID) -> ColumnElement[bool]:
    return and_(_FILES.c.owner_id == owner_id, _FILES.c.state == FileState.READY.value)


def _ready_bytes(owner_id: uuid.UUID) -> Select[int]:
    return select(func.coalesce(func.sum(_FILES.c.size), 0)).where(_ready(owner_id))


def _ready_files(owner_id: uuid.UUID) -> Select[int]:
    return select(func.count()).select_from(_FILES).where(_ready(owner_id))


def _insert_if_absent(session: AsyncSession, owner_id: uuid.UUID) -> Insert:
    source = select(
        literal(owner_id, _USAGE.c.owner_id.type).label("owner_id"),
        _ready_bytes(owner_id).scalar_subquery().label("used_bytes"),
        _ready_files(owner_id).scalar_subquery().label("used_files"),
        literal(0, BigInteger).label("reserved_bytes"),
        literal(0, BigInteger).label("reserved_files"),
    )
    columns = ["owner_id", "used_bytes", "used_files", "reserved_bytes", "reserved_files"]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(_USAGE).from_select(columns, source).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(_USAGE).from_select(columns, source).on_conflict_do_nothing()
    statement = mysql.insert(_USAGE).from_select(columns, source)
    return statement.on_duplicate_key_update(owner_id=statement.inserted.owner_id)
