"""Start-up checks and short-lived access for CLI commands, with one-line failures.

The parts come from `seau.wiring`, as the server's do; this module only decides
what a command checks first and turns each failure into one line naming what
could not be reached, without a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from seau.auth.service import AuthService
from seau.errors import ConfigurationError, PreflightError
from seau.files.types import detect
from seau.gc import GcReport
from seau.settings import Settings
from seau.storage import StorageError, Store
from seau.wiring import Parts, open_engine, open_parts, open_storage

T = TypeVar("T")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


async def migrate(settings: Settings, revision: str = "head") -> None:
    async with open_engine(settings) as engine:
        await _upgrade(engine, settings=settings, revision=revision)


async def _upgrade(engine: AsyncEngine, *, settings: Settings, revision: str = "head") -> None:
    # Imported here: the serving process (which runs no migrations) must not load Alembic.
    from seau.db.migrate import upgrade

    try:
        await upgrade(engine, revision)
    except Exception as exc:
        raise PreflightError(
            f"cannot migrate the database at {_redact(settings.effective_database_url)}: "
            f"{_first_line(exc)}"
        ) from exc


async def preflight(settings: Settings) -> None:
    """Check the database and the store answer, and libmagic tells types, before the
    server starts."""
    try:
        settings.load_secret_key()
    except OSError as exc:
        raise PreflightError(f"cannot read or create the secret key: {exc}") from exc
    try:
        detect(b"%PDF-1.4\n")
    except ConfigurationError as exc:
        raise PreflightError(str(exc)) from exc
    async with open_engine(settings) as engine:
        try:
            async with asyncio.timeout(15), engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:
            raise PreflightError(
                f"cannot reach the database at {_redact(settings.effective_database_url)}: "
                f"{_first_line(exc)}"
            ) from exc
    async with AsyncExitStack() as stack:
        try:
            store = await stack.enter_async_context(open_storage(settings))
        except ValueError as exc:
            raise PreflightError(f"invalid SEAU_STORAGE_URL: {exc}") from exc
        await check_store(settings, store)


PROBE_PREFIX = ".seau-probe/"
"""Where the start-up check writes (and at once deletes) its probe object: outside
``files/`` and ``uploads/``, so neither the reconciler nor the staging sweep ever
lists it."""

_PROBE_TIMEOUT = 30.0


async def check_store(settings: Settings, store: Store) -> None:
    """Write, read back and delete a probe object, or raise `PreflightError` with one
    line naming the likely cause: the store must be the configured one and writable,
    not merely answer."""
    try:
        await _write_probe(store)
    except (StorageError, TimeoutError) as exc:
        cause = await _likely_cause(settings, exc)
        raise PreflightError(
            f"cannot write to the object store at {settings.effective_storage_url}: {cause}"
        ) from exc


async def _write_probe(store: Store) -> None:
    key = f"{PROBE_PREFIX}{secrets.token_hex(8)}"
    body = b"seau start-up probe\n"

    async def data() -> AsyncIterator[bytes]:
        yield body

    async with asyncio.timeout(_PROBE_TIMEOUT):
        try:
            await store.put(key, data(), content_type="text/plain")
            written = await store.head(key)
            if written.size != len(body):
                raise StorageError(f"the probe object reads back as {written.size} bytes")
        finally:
            with contextlib.suppress(StorageError):
                await store.delete(key)


async def _likely_cause(settings: Settings, exc: BaseException) -> str:
    """One line: what the failure most likely means, and what to change."""
    if isinstance(exc, TimeoutError):
        return (
            f"no answer within {_PROBE_TIMEOUT:g} s (is the endpoint "
            f"{settings.aws_endpoint_url or 'of the region'} reachable?)"
        )
    text = _chain_text(exc)
    if not settings.effective_storage_url.startswith("s3://"):
        return _first_line(exc)
    endpoint = settings.aws_endpoint_url or "AWS S3"
    if "NoSuchBucket" in text:
        if not settings.s3_path_style and await _works_path_style(settings):
            return (
                "the bucket answers only with path-style addressing: set "
                "SEAU_S3_PATH_STYLE=true (MinIO, Ceph and most self-hosted servers need it)"
            )
        return f"no such bucket at {endpoint} (create it, or fix SEAU_STORAGE_URL)"
    refused = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403 Forbidden")
    if any(word in text for word in refused):
        return (
            f"{endpoint} refused the credentials (check AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY and the key's permissions on the bucket)"
        )
    unreachable = ("error sending request", "Connection refused", "dns error", "timed out")
    if any(word in text for word in unreachable):
        return f"the endpoint {endpoint} is unreachable (check AWS_ENDPOINT_URL)"
    return _first_line(exc)


async def _works_path_style(settings: Settings) -> bool:
    try:
        async with open_storage(settings.model_copy(update={"s3_path_style": True})) as store:
            await _write_probe(store)
    except Exception:
        return False
    return True


def _chain_text(exc: BaseException) -> str:
    parts: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(parts) < 10:
        parts.append(str(current))
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


@asynccontextmanager
async def command_parts(settings: Settings) -> AsyncIterator[Parts]:
    """The server's parts for one CLI command, on a database migrated to head."""
    async with AsyncExitStack() as stack:
        try:
            parts = await stack.enter_async_context(open_parts(settings))
        except ValueError as exc:
            raise PreflightError(f"invalid SEAU_STORAGE_URL: {exc}") from exc
        except OSError as exc:
            # The data directory or the secret key kept in it (the error names the path).
            raise PreflightError(f"cannot prepare the data directory: {exc}") from exc
        await _upgrade(parts.engine, settings=settings)
        yield parts


async def run_gc(settings: Settings, *, dry_run: bool) -> GcReport:
    async with command_parts(settings) as parts:
        return await parts.collect_garbage(dry_run=dry_run)


async def with_auth(settings: Settings, work: Callable[[AuthService], Awaitable[T]]) -> T:
    async with command_parts(settings) as parts:
        return await work(parts.auth)


def _first_line(exc: BaseException) -> str:
    text_ = str(exc).strip().splitlines()
    return text_[0] if text_ else exc.__class__.__name__
