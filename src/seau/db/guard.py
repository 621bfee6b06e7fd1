"""One unit of database work: bounded in time, and unreachable means 503.

Every service runs its database work through `unit_of_work`, so that a refused,
dropped or stalled database answers `DatabaseUnavailable` (503, Retry-After)
promptly, whichever route met it, instead of a 500 or a request that hangs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seau.errors import DatabaseUnavailable

log = logging.getLogger("seau.db")

T = TypeVar("T")

DEFAULT_TIMEOUT_SECONDS = 10.0


async def unit_of_work(
    sessions: async_sessionmaker[AsyncSession],
    work: Callable[[AsyncSession], Awaitable[T]],
    *,
    limit_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> T:
    try:
        async with asyncio.timeout(limit_seconds), sessions() as session:
            return await work(session)
    except TimeoutError as exc:
        log.warning("database did not answer within %.1f s", limit_seconds)
        raise DatabaseUnavailable("the database did not answer in time") from exc
    except (OperationalError, InterfaceError, PoolTimeout, OSError, ConnectionError) as exc:
        log.warning("database unavailable: %s", exc.__class__.__name__)
        raise DatabaseUnavailable() from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise DatabaseUnavailable() from exc
        raise
