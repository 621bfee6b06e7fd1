"""One unit of database work: bounded in time, and unreachable means 503.

Every service opens its database work with ``async with unit_of_work(...) as
session``, so that a refused, dropped or stalled database answers
`DatabaseUnavailable` (503, Retry-After) promptly, whichever route met it,
instead of a 500 or a request that hangs.

Units are short on purpose: one per step of a request, never one per request
(a request-scoped session would hold a pooled connection for the whole of a
5 GiB upload). The body of a unit talks to the database only: any
`OSError` or `TimeoutError` raised in it is taken for the database's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from seau.db.engine import DEADLINE, disarm
from seau.errors import DatabaseUnavailable

log = logging.getLogger("seau.db")

DEFAULT_TIMEOUT_SECONDS = 10.0
"""The default of `Settings.database_timeout_seconds`, for services built without settings."""

T = TypeVar("T")

InCommit = Callable[[AsyncSession, T], Awaitable[None]]
"""Work a caller adds to the transaction in which a service makes something: run in
that unit, with what it made, before its commit, so that it commits with it or not
at all (an idempotent request's answer: `seau.idempotent`)."""


@asynccontextmanager
async def unit_of_work(
    sessions: async_sessionmaker[AsyncSession], *, timeout_seconds: float
) -> AsyncIterator[AsyncSession]:
    """A session whose whole body, commit included, must finish within ``timeout_seconds``.

    The body runs in the caller's task, so the deadline cancels whatever
    statement it is waiting on. On SQLite the statement itself is interrupted
    in the driver's thread at the deadline (`seau.db.engine`), so the one
    connection is free at once; asyncpg cancels it on PostgreSQL; on MariaDB it
    runs on in the server (name searches, the one lever a user holds, set
    `max_statement_time` themselves). Errors of the body other than a lost
    database (an `IntegrityError`, a seau error) pass through unchanged.
    """
    deadline = asyncio.get_running_loop().time() + timeout_seconds
    with _database_errors(timeout_seconds):
        async with (
            asyncio.timeout_at(deadline),
            sessions(info={DEADLINE: deadline}) as session,
        ):
            try:
                yield session
            finally:
                # Before the session closes: once its connection is back in the
                # pool, an interrupt could only hit someone else's statement.
                disarm(session)


@asynccontextmanager
async def read_unit(
    engine: AsyncEngine, *, timeout_seconds: float
) -> AsyncIterator[AsyncConnection]:
    """A connection, without a session, for a read of rows by their key: bounded in
    time and mapped to `DatabaseUnavailable` as `unit_of_work` is, at about two
    thirds of its cost (no session, its transaction state and its close). Its work
    is one `AsyncConnection.run_sync`, whose statements are marked `READ_HERE`: on
    SQLite they run on the event loop's thread, where no interrupt could stop them
    and none is needed (`seau.db.engine`)."""
    with _database_errors(timeout_seconds):
        async with asyncio.timeout(timeout_seconds), engine.connect() as connection:
            yield connection


@contextmanager
def _database_errors(timeout_seconds: float) -> Iterator[None]:
    try:
        yield
    except TimeoutError as exc:
        log.warning("database did not answer within %.1f s", timeout_seconds)
        raise DatabaseUnavailable("the database did not answer in time") from exc
    except (OperationalError, InterfaceError, PoolTimeout, OSError, ConnectionError) as exc:
        # The driver's own words (a MariaDB deadlock and a refused connection are
        # both OperationalError) are what an operator needs to tell them apart.
        log.warning(
            "database unavailable: %s: %s", exc.__class__.__name__, getattr(exc, "orig", exc)
        )
        raise DatabaseUnavailable() from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise DatabaseUnavailable() from exc
        raise
