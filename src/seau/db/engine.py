"""Engine and session factory for a database URL, tuned per backend."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, SessionTransaction

from seau.db._sqlite import OneTripCursor, one_trip_connect

DEADLINE = "seau.deadline"
"""`Session.info` key: the event-loop time (`loop.time()`) at which the unit of work
that owns the session gives up; set by `seau.db.unit.unit_of_work`."""
_INTERRUPTS = "seau.interrupts"

READ_HERE = "seau_read_here"
"""Execution option of a statement that reads a row or two by key: on SQLite it
runs on the event loop's thread, without a trip to the driver's
(`seau.db._sqlite.OneTripCursor.execute_here`); elsewhere it means nothing. Only
for reads bounded by an index lookup, as the loop waits for them; never for a
page, a search or a count."""

WRITE_HERE = "seau_write_here"
"""Execution option of a write of a row or two by key that comes after the first
write of its transaction (an upload's event and usage after its file's row): on
SQLite, once the transaction holds the database's write lock, it runs on the event
loop's thread too. It cannot wait for another writer then (the lock is held until
the commit), and it writes to SQLite's page cache only (the commit, which syncs the
file, keeps its trip). Run first in a transaction, it takes its trip as any write:
the lock may be another connection's, and SQLite's busy handler would sleep on the
loop. Elsewhere it means nothing."""

DATABASE_FILE_MODE = 0o600
"""The SQLite file holds password hashes; its -wal and -shm files take its mode."""


def create_engine(url: str, *, connect_timeout: float = 10.0) -> AsyncEngine:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    connect_args: dict[str, Any] = {}
    if backend == "sqlite":
        connect_args["timeout"] = 30  # seconds to wait on a locked database
        # A file database never drops a connection; the ping cost ~10 % of
        # small-download throughput (bench/core.py, docs/benchmarks.md).
        kwargs["pool_pre_ping"] = False
        # One connection: SQLite has one writer at a time, and a second connection
        # that finds the lock taken does not queue, it sleeps in SQLite's busy
        # handler (up to 100 ms a nap). Waiting in the pool's FIFO instead took
        # the p99 of 4 KiB uploads at 32 in flight from seconds to under 1 s
        # (docs/benchmarks.md). Every unit of work is short and none nests.
        kwargs["pool_size"] = 1
        kwargs["max_overflow"] = 0
        # Sessions end in a commit or a rollback of their own, and a closed
        # connection rolls back what it began: the pool's extra rollback on
        # return was one more trip to aiosqlite's thread per unit of work.
        kwargs["pool_reset_on_return"] = None
    elif backend == "mysql":
        if "charset" not in parsed.query:
            parsed = parsed.update_query_dict({"charset": "utf8mb4"})
        connect_args["connect_timeout"] = connect_timeout
        # MariaDB closes idle connections after wait_timeout (8 h by default).
        kwargs["pool_recycle"] = 3600
        # PostgreSQL's level, which every unit of work is written for. Under
        # MariaDB's REPEATABLE READ a locking scan (the dispatcher's claim of new
        # events) also locks the gaps between rows, so uploads inserting their
        # `file.ready` waited on it and closed cycles with each other: 1 upload
        # in 200 answered 503 (a deadlock) in the two-instance events test.
        kwargs["isolation_level"] = "READ COMMITTED"
    elif backend == "postgresql":
        connect_args["timeout"] = connect_timeout
    engine = create_async_engine(parsed, connect_args=connect_args, **kwargs)
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            path = database

            def private_file(*_: Any) -> None:
                _create_private(path)

            event.listen(engine.sync_engine, "do_connect", private_file)
        # After private_file: the first listener to return a connection ends the chain.
        event.listen(engine.sync_engine, "do_connect", one_trip_connect)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        _skip_idle_rollbacks(engine)
        _read_here_when_marked(engine)
    elif backend == "mysql":
        _treat_ping_errors_as_disconnects(engine)
    return engine


def create_search_engine(url: str) -> AsyncEngine | None:
    """A second, read-only SQLite connection for file-name searches; None elsewhere.

    The main SQLite engine has one connection that every request queues for, so a
    search there, however bounded, delays everyone behind it. In WAL mode a reader
    neither waits for the writer nor blocks it, and Python's sqlite3 runs the
    statement without the GIL: searches queue for this connection only.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    engine = create_async_engine(
        parsed,
        connect_args={"timeout": 30},
        pool_pre_ping=False,
        pool_size=1,
        max_overflow=0,
        pool_reset_on_return=None,
    )
    event.listen(engine.sync_engine, "do_connect", one_trip_connect)
    event.listen(engine.sync_engine, "connect", _sqlite_reader_pragmas)
    _skip_idle_rollbacks(engine)
    return engine


def _create_private(path: str) -> None:
    # SQLite would create the file with 0644 less the umask; created first, it
    # keeps this mode, and SQLite gives the -wal and -shm files the same. An
    # empty file is an empty database.
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DATABASE_FILE_MODE))


def _treat_ping_errors_as_disconnects(engine: AsyncEngine) -> None:
    # Under uvloop, pinging an aiomysql connection the server has dropped raises
    # RuntimeError (a write to a closed transport), which the pool does not take
    # for a disconnect: the request got a 500 instead of a fresh connection.
    dialect = engine.sync_engine.dialect
    ping = dialect.do_ping

    def do_ping(dbapi_connection: Any) -> bool:
        try:
            return bool(ping(dbapi_connection))
        except RuntimeError:
            return False

    dialect.do_ping = do_ping  # type: ignore[method-assign]


def _skip_idle_rollbacks(engine: AsyncEngine) -> None:
    # Python's sqlite3 begins a transaction only before a write, so a read-only
    # unit of work has nothing to roll back when its session closes; asking
    # aiosqlite's thread anyway was ~10 % of a small download's event-loop time.
    dialect = engine.sync_engine.dialect
    rollback = dialect.do_rollback

    def do_rollback(dbapi_connection: Any) -> None:
        driver = getattr(getattr(dbapi_connection, "_connection", None), "_conn", None)
        if isinstance(driver, sqlite3.Connection) and not driver.in_transaction:
            return
        rollback(dbapi_connection)

    dialect.do_rollback = do_rollback  # type: ignore[method-assign]


def _read_here_when_marked(engine: AsyncEngine) -> None:
    # A statement marked READ_HERE (a row or two by key), or WRITE_HERE in a
    # transaction that holds the write lock, runs on the event loop's thread: no
    # trip to aiosqlite's, which cost about 0.2 ms of CPU per statement
    # (`seau.db._sqlite`).
    dialect = engine.sync_engine.dialect
    execute = dialect.do_execute

    def do_execute(cursor: Any, statement: str, parameters: Any, context: Any = None) -> None:
        if (
            context is not None
            and isinstance(cursor, OneTripCursor)
            and (
                context.execution_options.get(READ_HERE)
                or (context.execution_options.get(WRITE_HERE) and cursor.holds_write_lock())
            )
        ):
            cursor.execute_here(statement, parameters)
        else:
            execute(cursor, statement, parameters, context)

    dialect.do_execute = do_execute  # type: ignore[method-assign]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; synchronous=FULL makes a commit
    # survive power loss in WAL mode (NORMAL only survives a process crash).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_reader_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


class _SeauSession(Session):
    """seau's sessions, so that the deadline listener below is not global."""


@event.listens_for(_SeauSession, "after_begin")
def _interrupt_at_deadline(
    session: Session, _transaction: SessionTransaction, connection: Connection
) -> None:
    """On SQLite, abort the running statement when the unit of work's time is up.

    Cancelling the waiting task does not stop the statement: it runs on in
    aiosqlite's thread, holding the connection everyone queues for, and even the
    unit's own rollback waits behind it. `sqlite3.Connection.interrupt` is the one
    call another thread may make; with no statement running it does nothing.
    """
    deadline = session.info.get(DEADLINE)
    if deadline is None or connection.dialect.name != "sqlite":
        return
    driver = getattr(connection.connection.driver_connection, "_conn", None)
    if not isinstance(driver, sqlite3.Connection):
        return
    handle = asyncio.get_running_loop().call_at(deadline, driver.interrupt)
    session.info.setdefault(_INTERRUPTS, []).append(handle)


def disarm(session: AsyncSession) -> None:
    """Cancel the deadline interrupts of a session whose unit of work is over."""
    for handle in session.info.pop(_INTERRUPTS, ()):
        handle.cancel()


def create_sessionmaker(
    engine: AsyncEngine, *, info: dict[str, object] | None = None
) -> async_sessionmaker[AsyncSession]:
    """``info``: each session's `Session.info` (`seau.events.outbox.KEEP_EVERY_EVENT`)."""
    return async_sessionmaker(
        engine, expire_on_commit=False, sync_session_class=_SeauSession, info=info
    )
