"""One trip to aiosqlite's thread per SQL statement, instead of three or four.

SQLAlchemy's aiosqlite adapter drives a statement as aiosqlite exposes it: open a
cursor, execute, fetch the rows, close the cursor, each one a trip from the event
loop to aiosqlite's thread and back (a queue put, a thread wake-up, a
``call_soon_threadsafe`` and a loop wake-up). The cursor here does the four steps
in one function on that thread and keeps the rows, description, row count and
last row id it brought back, so that every later call on it is answered from
memory. Commits and rollbacks are still one trip each.

It relies on two internals: aiosqlite's ``Connection._execute(fn, *args)`` (run a
function on its thread, used by aiosqlite's own methods since 0.17) and the
layout of SQLAlchemy's adapted cursor (`AsyncAdapt_dbapi_cursor`); both are
exercised by every database test, and `tests/db/test_sqlite_trips.py` counts the
trips. Server-side cursors (``stream()``) keep SQLAlchemy's own class.

A point read marked `seau.db.engine.READ_HERE` makes no trip at all: it runs on the calling
thread (`OneTripCursor.execute_here`, chosen in `seau.db.engine`); so does a point
write marked `WRITE_HERE` once its transaction holds the write lock. A trip costs
about 0.2 ms of CPU (two thread wake-ups and the GIL handed over twice); a read
of one row by its key, about 10 us. In WAL mode a reader never waits for the
writer's lock, so such a read does not hold up the event loop; anything that
may scan (a page, a search, a count) keeps its trip.
"""

from __future__ import annotations

import collections
import sqlite3
from typing import Any

from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import immutabledict

_Result = tuple[Any, int, int | None, list[Any]]


def _run(connection: sqlite3.Connection, operation: str, parameters: Any, *, many: bool) -> _Result:
    """On aiosqlite's thread: the whole statement, rows included."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose statement is one trip to aiosqlite's thread."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    # There is no driver cursor to close: SQLAlchemy's soft close skips it.
    _awaitable_cursor_close = False

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]  # close() then skips the driver
        self._soft_closed_memoized = immutabledict()
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]  # None before an insert, as sqlite3

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        return

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        await self._trip(operation, parameters, many=False)

    def execute_here(self, operation: str, parameters: Any) -> None:
        """The statement on the calling thread, no trip (a `READ_HERE` read). The
        pool lends the connection to one unit of work at a time, so aiosqlite's
        thread has nothing of it running meanwhile."""
        try:
            result = _run(self._connection._conn, operation, parameters, many=False)
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        self._description, self._rowcount, self._lastrowid, rows = result
        self._rows = collections.deque(rows)

    def holds_write_lock(self) -> bool:
        """Whether this connection's transaction has written: Python's sqlite3 (its
        default, deferred mode) begins one only before a write, and a write takes the
        database's write lock, held until the commit or rollback."""
        driver: sqlite3.Connection = self._connection._conn
        return driver.in_transaction

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        await self._trip(operation, seq_of_parameters, many=True)

    async def _trip(self, operation: str, parameters: Any, *, many: bool) -> None:
        # No mutex: aiosqlite's thread runs one function at a time, and the
        # statement with its rows is one function.
        connection = self._connection
        result: _Result = await connection._execute(
            _run,
            connection._conn,
            operation,
            parameters,
            many=many,
        )
        self._description, self._rowcount, self._lastrowid, rows = result
        self._rows = collections.deque(rows)

    async def _async_soft_close(self) -> None:
        return

    def close(self) -> None:
        self._rows.clear()

    def nextset(self) -> None:
        self._rows.clear()


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """SQLAlchemy's aiosqlite connection with `OneTripCursor` as its cursor."""

    __slots__ = ()
    _cursor_cls = OneTripCursor  # type: ignore[assignment]  # a subclass of the base's


def one_trip_connect(
    dialect: Dialect, _record: ConnectionPoolEntry, cargs: Any, cparams: Any
) -> OneTripConnection:
    """A ``do_connect`` listener: SQLAlchemy's own connect, rewrapped."""
    adapted = dialect.loaded_dbapi.connect(*cargs, **cparams)
    return OneTripConnection(adapted.dbapi, adapted._connection)
