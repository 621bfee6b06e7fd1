"""`create_app(settings)`: the FastAPI app, its middleware and routers; its parts
come from `seau.wiring`, built in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from seau import __version__, problems
from seau.apidocs.routes import router as apidocs_router
from seau.apidocs.schema import install_security_schemes
from seau.auth.routes import router as auth_router
from seau.auth.routes import tokens_router
from seau.deps import AppState
from seau.direct.routes import router as direct_router
from seau.events.routes import router as webhooks_router
from seau.files.routes import ContentLane, links_router
from seau.files.routes import router as files_router
from seau.health import ReadinessCheck
from seau.health import router as health_router
from seau.limits import SmallBodyLimit
from seau.observability import Metrics, ObservabilityMiddleware
from seau.quotas.routes import admin_router as quotas_admin_router
from seau.quotas.routes import router as usage_router
from seau.settings import Settings, load_settings
from seau.shares.routes import api_router as shares_router
from seau.shares.routes import link_router as share_links_router
from seau.uploads.routes import router as uploads_router
from seau.uploads.tus import TUS_REQUEST_HEADERS, TUS_RESPONSE_HEADERS
from seau.web.routes import router as web_router
from seau.wiring import Parts, open_parts

log = logging.getLogger("seau")


async def _periodic_gc(parts: Parts, metrics: Metrics) -> None:
    interval = parts.settings.gc_interval_seconds
    # The first run comes at a random point of the first interval: a server
    # restarted more often than the interval still collects, and instances
    # started together do not all collect at the same moment.
    delay = random.uniform(0, interval)  # noqa: S311  (spreading load, not a secret)
    while True:
        await asyncio.sleep(delay)
        delay = interval
        try:
            report = await parts.collect_garbage()
            metrics.gc_runs.labels("ok").inc()
            metrics.gc_removed.labels("orphan_object").inc(len(report.orphan_objects))
            metrics.gc_removed.labels("stale_pending").inc(len(report.stale_pending))
            metrics.gc_removed.labels("temporary").inc(report.temporary_removed)
            log.info(
                "gc removed %d (orphan objects %d, stale pending %d, temporary %d)",
                report.removed,
                len(report.orphan_objects),
                len(report.stale_pending),
                report.temporary_removed,
            )
        except Exception:
            metrics.gc_runs.labels("failed").inc()
            log.warning("periodic gc failed", exc_info=True)


async def _deliver_webhooks(parts: Parts, metrics: Metrics) -> None:
    """The outbox's dispatcher, and its backlog in the metrics every few seconds."""

    async def watch_backlog() -> None:
        while not parts.dispatcher.stopping:
            try:
                count, age = await parts.dispatcher.backlog()
                metrics.webhook_backlog.set(count)
                metrics.webhook_oldest_seconds.set(age)
            except Exception:
                log.debug("could not read the webhook backlog", exc_info=True)
            for _ in range(50):
                if parts.dispatcher.stopping:
                    break
                await asyncio.sleep(0.1)

    parts.dispatcher.report_to(lambda outcome: metrics.webhook_deliveries.labels(outcome).inc())
    async with asyncio.TaskGroup() as group:
        group.create_task(parts.dispatcher.run())
        group.create_task(watch_backlog())


def create_app(settings: Settings) -> FastAPI:
    # The multipart parser logs a warning per malformed body: hostile clients
    # could flood the log with them. Our own error responses say enough.
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_parts(settings, migrate=settings.auto_migrate) as parts:
            app.state.seau = AppState(
                settings=settings,
                engine=parts.engine,
                sessions=parts.sessions,
                store=parts.store,
                auth=parts.auth,
                authenticator=parts.authenticator,
                keys=parts.keys,
                oidc=parts.oidc,
                files=parts.files,
                links=parts.links,
                shares=parts.shares,
                metrics=metrics,
                quotas=parts.quotas,
                uploads=parts.uploads,
                direct=parts.direct,
                webhooks=parts.webhooks,
                idempotency=parts.idempotency,
            )
            delivering = asyncio.create_task(_deliver_webhooks(parts, metrics))
            background = [delivering]
            if settings.gc_interval_seconds > 0:
                background.append(asyncio.create_task(_periodic_gc(parts, metrics)))
            try:
                yield
            finally:
                # The dispatcher finishes its step (an attempt times out in 10 s);
                # cancelled only if it takes longer than that.
                parts.dispatcher.stop()
                with contextlib.suppress(Exception):  # its failures are logged there
                    await asyncio.wait_for(asyncio.shield(delivering), timeout=15)
                for task in background:
                    task.cancel()
                    # Waited for, so that no run is still using the parts as they close.
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    app = FastAPI(
        title="seau",
        version=__version__,
        summary="Users' files in object storage, one SQL row per file.",
        lifespan=lifespan,
        # FastAPI's pages load their scripts from a CDN; seau.apidocs serves its own.
        docs_url=None,
        redoc_url=None,
        # No trailing-slash redirects: a client does not follow a 307 for a POST, and
        # Starlette builds the redirect's Location from the request's Host header. A
        # path that has no route answers 404 (routes that mean both spellings name both).
        redirect_slashes=False,
        # seau's metrics and logs are its own (`seau.observability`). FastAPI's native
        # OpenTelemetry asked the global providers whether anyone listens on every
        # request: about 2 % of a small download's samples, for nothing.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.readiness = ReadinessCheck()
    install_security_schemes(app, settings)
    problems.install(app)
    # Routes are added below; the middleware reads the list when requests come.
    app.add_middleware(SmallBodyLimit, routes=app.routes)
    # Downloads answered before the router (`seau.files.routes.ContentLane`): outside the
    # cap, which it leaves to the routes (it passes a request with a body on), inside
    # CORS, whose headers its answers need like any other.
    app.add_middleware(ContentLane)
    # CORS outside both, so that a browser can read their refusals (a 413) too.
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Seau-Subject",
                "Content-Type",
                "Range",
                "If-None-Match",
                "If-Range",
                "Idempotency-Key",
                *TUS_REQUEST_HEADERS,
            ],
            expose_headers=[
                "Content-Disposition",
                "Content-Range",
                "ETag",
                "X-Request-ID",
                "Idempotent-Replayed",
                "Retry-After",
                *TUS_RESPONSE_HEADERS,
            ],
        )
    # Outermost, so that even errors rendered by inner layers carry the request id.
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    app.include_router(auth_router)
    app.include_router(tokens_router)
    app.include_router(files_router)
    app.include_router(links_router)
    app.include_router(uploads_router)
    app.include_router(direct_router)
    app.include_router(shares_router)
    app.include_router(share_links_router)
    app.include_router(webhooks_router)
    app.include_router(usage_router)
    app.include_router(quotas_admin_router)
    app.include_router(health_router)
    app.include_router(web_router)
    app.include_router(apidocs_router)
    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` and `seau serve --workers N`."""
    return create_app(load_settings())
