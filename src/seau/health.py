"""Liveness (the process answers), readiness (database and storage reachable) and metrics."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import text

from seau.deps import AppState, StateDep
from seau.errors import (
    DatabaseUnavailable,
    InvalidToken,
    NotAuthenticated,
    NotFound,
    ServiceUnavailable,
    StorageUnavailableError,
)
from seau.observability import exposition_registry
from seau.problems import problem_responses
from seau.storage import probe

router = APIRouter(tags=["health"])
log = logging.getLogger("seau")

_PROBE_TIMEOUT = 5.0
# How long one readiness check answers for. A storage probe lists the bucket (a billable
# request on S3) and anyone may call /readyz: within this window every call, from any
# number of clients, shares one check of the database and one of the store.
READINESS_TTL_SECONDS: Final = 5.0


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str
    storage: str
    identity: str | None = Field(
        default=None,
        description="The identity provider's keys (with SEAU_OIDC_ISSUER): `ok: …`, or "
        "`degraded: …` while the provider is unreachable and cached keys still work. "
        "Not a failure: tokens signed with known keys keep being accepted.",
    )


class ReadinessCheck:
    """The last readiness outcome, kept for ``ttl`` seconds; callers arriving while a
    check runs wait for it rather than starting their own.

    A failure is kept too: a store that does not answer is not asked again by every
    caller. What is kept is the error's class and text, raised afresh each time (an
    exception raised again would keep growing its traceback).
    """

    def __init__(
        self, *, ttl: float = READINESS_TTL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._clock = clock
        self._lock = asyncio.Lock()
        self._checked_at: float | None = None
        self._outcome: type[ServiceUnavailable] | None = None
        self._detail = ""

    async def check(self, state: AppState) -> Readiness:
        async with self._lock:
            checked_at = self._checked_at
            if checked_at is None or self._clock() - checked_at >= self._ttl:
                self._outcome, self._detail = await _check(state)
                self._checked_at = self._clock()
            failure, detail = self._outcome, self._detail
        if failure is not None:
            raise failure(detail)
        identity = None
        if state.oidc is not None:
            fresh, said = state.oidc.status()
            identity = f"{'ok' if fresh else 'degraded'}: {said}"
        return Readiness(status="ok", database="ok", storage="ok", identity=identity)


async def _check(state: AppState) -> tuple[type[ServiceUnavailable] | None, str]:
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT), state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        # Logged here, once per window, since callers only see the kept outcome.
        log.warning("readiness: the database does not answer: %r", exc)
        return DatabaseUnavailable, "the database does not answer"
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT):
            await probe(state.store)
    except Exception as exc:
        log.warning("readiness: the object store does not answer: %r", exc)
        return StorageUnavailableError, "the object store does not answer"
    return None, ""


async def get_readiness(request: Request) -> ReadinessCheck:
    check: ReadinessCheck = request.app.state.readiness
    return check


ReadinessDep = Annotated[ReadinessCheck, Depends(get_readiness)]


@router.get("/healthz", response_model=Health, summary="The process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    response_model_exclude_none=True,
    responses=problem_responses(DatabaseUnavailable, StorageUnavailableError),
    summary="Database and storage are reachable",
    description=f"One check of each answers for {READINESS_TTL_SECONDS:g} s.",
)
async def readyz(state: StateDep, readiness: ReadinessDep) -> Readiness:
    return await readiness.check(state)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics",
    description="With `SEAU_METRICS_TOKEN` set, only for `Authorization: Bearer <token>`.",
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}},
        **problem_responses(NotAuthenticated, InvalidToken),
    },
)
async def metrics(request: Request, state: StateDep) -> Response:
    if not state.settings.metrics_enabled:
        raise NotFound()
    if state.settings.metrics_token is not None:
        _check_metrics_token(request.headers.get("authorization"), state.settings.metrics_token)
    # Under `seau serve --workers N` the sum over the workers, not just this one's.
    registry = exposition_registry(state.metrics.registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _check_metrics_token(authorization: str | None, expected: str) -> None:
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise NotAuthenticated("/metrics needs the metrics bearer token")
    # Digests of equal length, compared in constant time: neither the token nor its
    # length shows in how long a wrong guess takes.
    if not hmac.compare_digest(_digest(presented.strip()), _digest(expected)):
        raise InvalidToken("not the metrics token")


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()
