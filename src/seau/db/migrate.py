"""Run the shipped Alembic history from code: upgrade a live database, or print DDL."""

from __future__ import annotations

import io
from typing import Literal

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

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
            async with connection.begin():
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


def _upgrade(connection: Connection, revision: str) -> None:
    # Several instances may start at once against one database: a server-side
    # lock makes the second wait and then find nothing left to do.
    backend = connection.dialect.name
    if backend == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(7315420261125)"))
    elif backend in ("mysql", "mariadb"):
        connection.execute(text("SELECT GET_LOCK('seau_migrate', 120)"))
    try:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    finally:
        if backend in ("mysql", "mariadb"):
            connection.execute(text("SELECT RELEASE_LOCK('seau_migrate')"))


def offline_sql(dialect: Dialect, revision: str = "head") -> str:
    """The DDL of the whole history for one dialect, for a DBA to apply by hand."""
    buffer = io.StringIO()
    command.upgrade(alembic_config(url=_OFFLINE_URLS[dialect], output=buffer), revision, sql=True)
    return buffer.getvalue()
