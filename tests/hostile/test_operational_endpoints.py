"""Issue 17, finding 9: `/metrics` behind its own token, `/readyz` that does not list
the bucket on every call."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from seau import health
from seau.app import create_app
from seau.deps import AppState
from seau.settings import Settings
from seau.storage import ObjectInfo, Store
from tests.api.helpers import assert_problem
from tests.conftest import TEST_SECRET

METRICS_TOKEN = "metrics-" + "m" * 40


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    settings = Settings(data_dir=tmp_path, secret_key=TEST_SECRET, metrics_token=METRICS_TOKEN)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://seau.test") as http:
        yield http


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "token_invalid"),
        ("Bearer", "token_invalid"),
        (f"Basic {METRICS_TOKEN}", "token_invalid"),
        ("Bearer wrong", "token_invalid"),
        (f"Bearer {METRICS_TOKEN}x", "token_invalid"),
    ],
    ids=["none", "empty-bearer", "basic", "wrong", "longer"],
)
async def test_metrics_with_a_token_set_refuse_anyone_without_it(
    client: httpx.AsyncClient, authorization: str | None, code: str
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.get("/metrics", headers=headers)
    assert_problem(response, 401, code)
    assert response.headers["www-authenticate"].startswith('Bearer realm="seau"')
    assert "seau_http_requests_total" not in response.text


async def test_metrics_answer_the_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics", headers={"Authorization": f"bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    assert "seau_http_requests_total" in response.text


class CountingStore:
    """The app's store, counting the listings the readiness probe makes."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.listings = 0

    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        self.listings += 1
        return self.inner.list(prefix)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclasses.dataclass
class Probes:
    store: CountingStore
    database: int = 0


def _count_probes(app: FastAPI) -> Probes:
    state: AppState = app.state.seau
    counting = CountingStore(state.store)
    app.state.seau = dataclasses.replace(state, store=counting)
    probes = Probes(store=counting)

    # Only the probe's own statement: the webhook dispatcher polls the same engine.
    @event.listens_for(state.engine.sync_engine, "before_cursor_execute")
    def _statement(_connection: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.strip().upper() == "SELECT 1":
            probes.database += 1

    return probes


async def test_readiness_probes_once_for_many_calls_within_its_window(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    probes = _count_probes(app)
    first = await asyncio.gather(*(client.get("/readyz") for _ in range(20)))
    then = [await client.get("/readyz") for _ in range(20)]
    assert {r.status_code for r in [*first, *then]} == {200}
    assert (probes.store.listings, probes.database) == (1, 1)


async def test_readiness_probes_again_once_its_window_has_passed(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    now = [1000.0]
    app.state.readiness = health.ReadinessCheck(clock=lambda: now[0])
    probes = _count_probes(app)
    for _ in range(3):
        assert (await client.get("/readyz")).status_code == 200
    now[0] += health.READINESS_TTL_SECONDS - 0.1
    assert (await client.get("/readyz")).status_code == 200
    assert probes.store.listings == 1
    now[0] += 0.1
    assert (await client.get("/readyz")).status_code == 200
    assert probes.store.listings == 2


async def test_a_failed_readiness_check_is_kept_for_its_window_too(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    probes = _count_probes(app)

    def unreachable(prefix: str = "") -> AsyncIterator[ObjectInfo]:
        probes.store.listings += 1
        raise OSError("no route to the store")

    probes.store.list = unreachable  # type: ignore[method-assign]
    for _ in range(5):
        assert_problem(await client.get("/readyz"), 503, "storage_unavailable")
    assert probes.store.listings == 1
