"""Start-up checks and short-lived access for CLI commands, with one-line failures."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import text

from seau.auth.service import AuthService
from seau.auth.tokens import TokenSigner
from seau.db.engine import create_engine, create_sessionmaker
from seau.db.migrate import upgrade
from seau.gc import GcReport, collect
from seau.settings import Settings
from seau.storage import StorageError, probe
from seau.storage.factory import open_store

T = TypeVar("T")


class PreflightError(Exception):
    """A dependency is unreachable or misconfigured; the message is one line."""


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


async def migrate(settings: Settings, revision: str = "head") -> None:
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.effective_database_url)
    try:
        await upgrade(engine, revision)
    except Exception as exc:
        raise PreflightError(
            f"cannot migrate the database at {_redact(settings.effective_database_url)}: "
            f"{_first_line(exc)}"
        ) from exc
    finally:
        await engine.dispose()


async def preflight(settings: Settings) -> None:
    """Check the database and the store answer before the server starts."""
    from seau.app import s3_options

    try:
        settings.load_secret_key()
    except OSError as exc:
        raise PreflightError(f"cannot read or create the secret key: {exc}") from exc
    if settings.database_url is None or settings.storage_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.effective_database_url)
    try:
        async with asyncio.timeout(15), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        raise PreflightError(
            f"cannot reach the database at {_redact(settings.effective_database_url)}: "
            f"{_first_line(exc)}"
        ) from exc
    finally:
        await engine.dispose()
    try:
        store = open_store(
            settings.effective_storage_url, s3=s3_options(settings), data_dir=settings.data_dir
        )
    except ValueError as exc:
        raise PreflightError(f"invalid SEAU_STORAGE_URL: {exc}") from exc
    try:
        async with asyncio.timeout(30):
            await probe(store)
    except (StorageError, TimeoutError) as exc:
        raise PreflightError(
            f"cannot reach the object store at {settings.effective_storage_url}: {_first_line(exc)}"
        ) from exc
    finally:
        await store.close()


async def run_gc(settings: Settings, *, dry_run: bool) -> GcReport:
    from seau.app import gc_steps, s3_options

    await migrate(settings)
    engine = create_engine(settings.effective_database_url)
    store = open_store(
        settings.effective_storage_url, s3=s3_options(settings), data_dir=settings.data_dir
    )
    try:
        sessions = create_sessionmaker(engine)
        return await collect(
            sessions=sessions,
            store=store,
            grace=timedelta(seconds=settings.gc_grace_seconds),
            dry_run=dry_run,
            extra_steps=gc_steps(settings, sessions=sessions, store=store),
        )
    finally:
        await store.close()
        await engine.dispose()


async def with_auth(settings: Settings, work: Callable[[AuthService], Awaitable[T]]) -> T:
    await migrate(settings)
    engine = create_engine(settings.effective_database_url)
    try:
        signer = TokenSigner(secret=settings.load_secret_key(), ttl=timedelta(seconds=60))
        return await work(AuthService(sessions=create_sessionmaker(engine), signer=signer))
    finally:
        await engine.dispose()


def _first_line(exc: BaseException) -> str:
    text_ = str(exc).strip().splitlines()
    return text_[0] if text_ else exc.__class__.__name__
