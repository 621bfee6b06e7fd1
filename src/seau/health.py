"""Liveness (the process answers) and readiness (database and storage reachable)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from seau.deps import StateDep
from seau.errors import DatabaseUnavailable, NotFound, StorageUnavailableError
from seau.problems import problem_responses
from seau.storage import probe

router = APIRouter(tags=["health"])

_PROBE_TIMEOUT = 5.0


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str
    storage: str


@router.get("/healthz", response_model=Health, summary="The process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses=problem_responses(DatabaseUnavailable, StorageUnavailableError),
    summary="Database and storage are reachable",
)
async def readyz(state: StateDep) -> Readiness:
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT), state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        raise DatabaseUnavailable("the database does not answer") from exc
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT):
            await probe(state.store)
    except Exception as exc:
        raise StorageUnavailableError("the object store does not answer") from exc
    return Readiness(status="ok", database="ok", storage="ok")


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics",
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(state: StateDep) -> Response:
    if not state.settings.metrics_enabled:
        raise NotFound()
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
