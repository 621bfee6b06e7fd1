"""Throwaway databases on the real MariaDB and PostgreSQL servers.

Each test run makes its own uniquely named databases and drops them at the end,
so runs never collide. Without the servers, a test fails in CI and skips locally.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Literal

import pytest

Kind = Literal["sqlite", "mysql", "postgresql"]

MYSQL_HOST = os.environ.get("SEAU_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("SEAU_TEST_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("SEAU_TEST_MYSQL_USER", "root")
MYSQL_PASSWORD = os.environ.get("SEAU_TEST_MYSQL_PASSWORD", "")
PG_HOST = os.environ.get("SEAU_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SEAU_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("SEAU_TEST_PG_USER", "postgres")


def unavailable(message: str) -> None:
    """Servers the suite needs are missing: a failure in CI, a skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI requires it)", pytrace=False)
    pytest.skip(message)


def unique_name(prefix: str = "seau_t") -> str:
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"


def _mysql_admin(statement: str) -> None:
    import pymysql

    connection = pymysql.connect(
        host=MYSQL_HOST,
        port=MYSQL_PORT,
        user=MYSQL_USER,
        password=MYSQL_PASSWORD,
        connect_timeout=5,
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def _pg_admin(statement: str) -> None:
    import asyncpg

    async def run() -> None:
        connection = await asyncpg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres", timeout=5
        )
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    # Callers may be inside the test's running event loop: use a thread of its own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, run()).result()


@contextmanager
def scratch_database(kind: Kind, tmp_dir: os.PathLike[str]) -> Iterator[str]:
    """Yield the async SQLAlchemy URL of a fresh, empty database of ``kind``."""
    name = unique_name()
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{os.fspath(tmp_dir)}/{name}.db"
        return
    if kind == "mysql":
        try:
            _mysql_admin(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
        except Exception as exc:
            unavailable(f"MariaDB at {MYSQL_HOST}:{MYSQL_PORT} is not reachable: {exc}")
        auth = MYSQL_USER + (f":{MYSQL_PASSWORD}" if MYSQL_PASSWORD else "")
        try:
            yield f"mysql+aiomysql://{auth}@{MYSQL_HOST}:{MYSQL_PORT}/{name}?charset=utf8mb4"
        finally:
            _mysql_admin(f"DROP DATABASE IF EXISTS `{name}`")
        return
    try:
        _pg_admin(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        unavailable(f"PostgreSQL at {PG_HOST}:{PG_PORT} is not reachable: {exc}")
    try:
        yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
