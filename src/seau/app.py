"""`create_app(settings)`: the one place concrete parts are chosen and wired."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seau import __version__, problems
from seau.auth.routes import router as auth_router
from seau.auth.service import AuthService
from seau.auth.throttle import SignInGuard
from seau.auth.tokens import TokenSigner
from seau.db.engine import create_engine, create_sessionmaker
from seau.deps import AppState
from seau.files.routes import router as files_router
from seau.files.service import FileService
from seau.gc import ExtraStep, collect
from seau.health import router as health_router
from seau.limits import SmallBodyLimit
from seau.observability import Metrics, ObservabilityMiddleware
from seau.settings import Settings, load_settings
from seau.storage import Store
from seau.storage.factory import open_store
from seau.storage.multipart import open_upload_staging, part_size_for
from seau.storage.s3 import S3Options
from seau.uploads.routes import router as uploads_router
from seau.uploads.service import UploadLimits, UploadService, reclaim_expired_uploads
from seau.uploads.tus import TUS_REQUEST_HEADERS, TUS_RESPONSE_HEADERS
from seau.web.routes import router as web_router

log = logging.getLogger("seau")


def s3_options(settings: Settings) -> S3Options:
    """Everything but the bucket, which `open_store` reads from the URL."""
    return S3Options(
        bucket="",
        endpoint_url=settings.aws_endpoint_url,
        region=settings.aws_region,
        access_key_id=settings.aws_access_key_id,
        secret_access_key=settings.aws_secret_access_key,
        session_token=settings.aws_session_token,
        path_style=settings.s3_path_style,
        timeout_seconds=settings.storage_timeout_seconds,
        # The smallest parts (5 MiB) that still reach the largest upload allowed:
        # an upload holds about three parts in memory.
        part_size=part_size_for(settings.max_upload_bytes),
    )


def gc_steps(
    settings: Settings, *, sessions: async_sessionmaker[AsyncSession], store: Store
) -> list[tuple[str, ExtraStep]]:
    """Reconciler steps contributed by optional features (e.g. resumable uploads)."""

    async def expired_uploads(cutoff: datetime, dry_run: bool) -> int:
        return await reclaim_expired_uploads(
            sessions=sessions, store=store, older_than=cutoff, dry_run=dry_run
        )

    return [("expired_uploads", expired_uploads)]


def upload_service(
    settings: Settings, *, sessions: async_sessionmaker[AsyncSession], store: Store
) -> UploadService | None:
    """Resumable uploads, when the store can stage them (not the memory store)."""
    staging = open_upload_staging(store)
    if staging is None:
        return None
    limits = UploadLimits(
        max_size=settings.tus_effective_max_size,
        part_size=part_size_for(settings.tus_effective_max_size, settings.tus_part_size),
        expiry=timedelta(seconds=settings.upload_expiry_seconds),
        lease=timedelta(seconds=settings.upload_lease_seconds),
        max_name_length=settings.max_name_length,
    )
    return UploadService(sessions=sessions, store=store, staging=staging, limits=limits)


async def _periodic_gc(settings: Settings, state: AppState) -> None:
    grace = timedelta(seconds=settings.gc_grace_seconds)
    while True:
        await asyncio.sleep(settings.gc_interval_seconds)
        try:
            report = await collect(
                sessions=state.sessions,
                store=state.store,
                grace=grace,
                extra_steps=gc_steps(settings, sessions=state.sessions, store=state.store),
            )
            state.metrics.gc_runs.labels("ok").inc()
            state.metrics.gc_removed.labels("orphan_object").inc(len(report.orphan_objects))
            state.metrics.gc_removed.labels("stale_pending").inc(len(report.stale_pending))
            state.metrics.gc_removed.labels("temporary").inc(report.temporary_removed)
            log.info(
                "gc removed %d (orphan objects %d, stale pending %d, temporary %d)",
                report.removed,
                len(report.orphan_objects),
                len(report.stale_pending),
                report.temporary_removed,
            )
        except Exception:
            state.metrics.gc_runs.labels("failed").inc()
            log.warning("periodic gc failed", exc_info=True)


def create_app(settings: Settings) -> FastAPI:
    # The multipart parser logs a warning per malformed body: hostile clients
    # could flood the log with them. Our own error responses say enough.
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.database_url is None or settings.storage_url is None:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.effective_database_url)
        store = open_store(
            settings.effective_storage_url, s3=s3_options(settings), data_dir=settings.data_dir
        )
        uploads: UploadService | None = None
        try:
            if settings.auto_migrate:
                # Imported here: Alembic (and Mako) cost ~10 MiB that a server
                # whose migrations ran before it started (`seau serve`) never needs.
                from seau.db.migrate import upgrade

                await upgrade(engine)
            sessions = create_sessionmaker(engine)
            uploads = upload_service(settings, sessions=sessions, store=store)
            signer = TokenSigner(
                secret=settings.load_secret_key(),
                ttl=timedelta(seconds=settings.token_ttl_seconds),
            )
            app.state.seau = AppState(
                settings=settings,
                engine=engine,
                sessions=sessions,
                store=store,
                auth=AuthService(
                    sessions=sessions,
                    signer=signer,
                    db_timeout=settings.database_timeout_seconds,
                ),
                files=FileService(
                    sessions=sessions,
                    store=store,
                    max_name_length=settings.max_name_length,
                    db_timeout=settings.database_timeout_seconds,
                ),
                sign_in=SignInGuard(),
                metrics=metrics,
                uploads=uploads,
            )
            collector = None
            if settings.gc_interval_seconds > 0:
                collector = asyncio.create_task(_periodic_gc(settings, app.state.seau))
            try:
                yield
            finally:
                if collector is not None:
                    collector.cancel()
        finally:
            if uploads is not None:
                await uploads.close()
            await store.close()
            await engine.dispose()

    app = FastAPI(
        title="seau",
        version=__version__,
        summary="Users' files in object storage, one SQL row per file.",
        lifespan=lifespan,
    )
    problems.install(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Range",
                "If-None-Match",
                "If-Range",
                *TUS_REQUEST_HEADERS,
            ],
            expose_headers=[
                "Content-Disposition",
                "Content-Range",
                "ETag",
                "X-Request-ID",
                *TUS_RESPONSE_HEADERS,
            ],
        )
    app.add_middleware(SmallBodyLimit)
    # Outermost, so that even errors rendered by inner layers carry the request id.
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    app.include_router(auth_router)
    app.include_router(files_router)
    app.include_router(uploads_router)
    app.include_router(health_router)
    app.include_router(web_router)
    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` and `seau serve --workers N`."""
    return create_app(load_settings())
