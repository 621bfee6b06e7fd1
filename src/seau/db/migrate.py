"""Run the shipped Alembic history from code: upgrade a live database, or print DDL."""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

Dialect = Literal["sqlite", "mysql", "postgresql"]

_OFFLINE_URLS: dict[Dialect, str] = {
    "sqlite": "sqlite://",
    "mysql": "mysql+pymysql://",
    "postgresql": "postgresql://",
}


def alembic_config(*, url: str | None = None, output: io.StringIO | None = None) -> Config:
    config = Config(output_buffer=output) if output is not None else Config()
    config.set_main_option("script_location", "seau.db:migrations")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url)
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    async with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch mode rebuilds a table by copying it and dropping the old one; with
            # foreign keys on, the drop would cascade to every row that refers to it.
            # The pragma works only outside a transaction: first thing on this
            # connection, and back on before it returns to the pool.
            await connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            await connection.commit()
        try:
            async with _one_at_a_time(connection), connection.begin():
                await connection.run_sync(_upgrade, revision)
                if sqlite:
                    broken = (await connection.exec_driver_sql("PRAGMA foreign_key_check")).all()
                    if broken:
                        raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                await connection.rollback()
                await connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                await connection.commit()


# One name per database (a user lock's name is server-wide, and at most 64 characters).
_MARIADB_LOCK = "CONCAT('seau_migrate_', MD5(DATABASE()))"


@asynccontextmanager
async def _one_at_a_time(connection: AsyncConnection) -> AsyncIterator[None]:
    """Several instances may start at once against one database: one migrates, the
    others wait and then find nothing left to do. The lock is held until the
    migration has committed: released before, it would let an instance read the
    version of the step not yet committed, and run that step again.

    PostgreSQL's is an advisory lock of the migration's own transaction, taken in
    `_upgrade` and released by its commit. MariaDB's DDL commits as it goes, and a
    user lock belongs to the connection, not a transaction: it is taken before the
    transaction and released after its commit. SQLite's file lock serializes writers.
    """
    if connection.dialect.name != "mysql":
        yield
        return
    got = await connection.scalar(text(f"SELECT GET_LOCK({_MARIADB_LOCK}, 120)"))
    await connection.commit()
    if got != 1:
        raise RuntimeError("another instance has been migrating the database for two minutes")
    try:
        yield
    finally:
        # A connection that broke meanwhile took its lock with it.
        with contextlib.suppress(DBAPIError):
            await connection.execute(text(f"SELECT RELEASE_LOCK({_MARIADB_LOCK})"))
            await connection.commit()


def _upgrade(connection: Connection, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(7315420261125)"))
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def offline_sql(dialect: Dialect, revision: str = "head") -> str:
    """The DDL of the whole history for one dialect, for a DBA to apply by hand."""
    buffer = io.StringIO()
    command.upgrade(alembic_config(url=_OFFLINE_URLS[dialect], output=buffer), revision, sql=True)
    return buffer.getvalue()
