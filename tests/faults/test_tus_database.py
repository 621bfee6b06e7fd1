"""A stalled database gives tus requests a prompt 503, like every other route.

The database sits behind a `FaultProxy` that holds every byte once stalled;
the app runs in process with a short `database_timeout_seconds`. The token's
user is looked up before the stall (the `current_user` seam), so the time
bound measured is the tus request's own database work, not authentication's.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from seau.app import create_app
from seau.auth.principal import Principal
from seau.deps import current_principal
from seau.settings import Settings
from tests.api.helpers import assert_problem
from tests.conftest import TEST_SECRET, sign_up
from tests.support.databases import (
    MYSQL_HOST,
    MYSQL_PORT,
    PG_HOST,
    PG_PORT,
    Kind,
    scratch_database,
)
from tests.support.faultproxy import FaultProxy
from tests.uploads.helpers import OFFSET_STREAM, TUS, create, metadata, patch

BOUND = 1.5
# The bound, plus what the rest of the request and a loaded machine may take.
PROMPT = BOUND + 3.0

DATABASES = [
    pytest.param("mysql", marks=pytest.mark.mysql, id="mysql"),
    pytest.param("postgresql", marks=pytest.mark.postgresql, id="postgresql"),
]


@dataclass
class Stallable:
    client: httpx.AsyncClient
    proxy: FaultProxy
    auth: dict[str, str]


@pytest.fixture(params=DATABASES)
async def stallable(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stallable]:
    kind: Kind = request.param
    upstream = {"mysql": (MYSQL_HOST, MYSQL_PORT), "postgresql": (PG_HOST, PG_PORT)}[kind]
    with (
        scratch_database(kind, tmp_path) as direct_url,
        FaultProxy(*upstream) as proxy,
    ):
        settings = Settings(
            data_dir=tmp_path,
            database_url=direct_url.replace(f"{upstream[0]}:{upstream[1]}", proxy.address),
            storage_url=(tmp_path / "objects").as_uri(),
            secret_key=TEST_SECRET,
            database_timeout_seconds=BOUND,
        )
        app = create_app(settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://seau.test"
            ) as client,
        ):
            auth = await sign_up(client)
            await _authenticate_without_the_database(app, auth)
            try:
                yield Stallable(client=client, proxy=proxy, auth=auth)
            finally:
                # Released, the stalled connections finish and the pool can close.
                proxy.passthrough()


async def _authenticate_without_the_database(app: FastAPI, auth: dict[str, str]) -> None:
    caller: Principal = await app.state.seau.authenticator.authenticate(
        auth["Authorization"].removeprefix("Bearer ")
    )

    async def known_caller() -> Principal:
        return caller

    app.dependency_overrides[current_principal] = known_caller


async def test_tus_creation_answers_a_prompt_503_while_the_database_is_stalled(
    stallable: Stallable,
) -> None:
    stallable.proxy.stall()
    headers = {
        **stallable.auth,
        **TUS,
        "Upload-Length": "10",
        "Upload-Metadata": metadata(filename="a"),
    }
    started = time.monotonic()
    response = await stallable.client.post("/api/v1/uploads", headers=headers)
    elapsed = time.monotonic() - started
    assert_problem(response, 503, "database_unavailable")
    assert response.headers["tus-resumable"] == "1.0.0"
    assert BOUND * 0.9 <= elapsed < PROMPT, elapsed


async def test_tus_creation_with_bytes_answers_a_prompt_503_while_the_database_is_stalled(
    stallable: Stallable,
) -> None:
    stallable.proxy.stall()
    headers = {
        **stallable.auth,
        **TUS,
        **OFFSET_STREAM,
        "Upload-Length": "10",
        "Upload-Metadata": metadata(filename="a"),
    }
    started = time.monotonic()
    response = await stallable.client.post("/api/v1/uploads", headers=headers, content=b"0123")
    elapsed = time.monotonic() - started
    assert_problem(response, 503, "database_unavailable")
    assert elapsed < PROMPT, elapsed


async def test_tus_patch_answers_a_prompt_503_while_the_database_is_stalled(
    stallable: Stallable,
) -> None:
    client, auth = stallable.client, stallable.auth
    location = await create(client, auth, length=10)
    assert (await patch(client, auth, location, offset=0, data=b"01234")).status_code == 204
    stallable.proxy.stall()
    started = time.monotonic()
    response = await patch(client, auth, location, offset=5, data=b"56789")
    elapsed = time.monotonic() - started
    assert_problem(response, 503, "database_unavailable")
    assert response.headers["tus-resumable"] == "1.0.0"
    assert BOUND * 0.9 <= elapsed < PROMPT, elapsed

    # Once the database answers again, the upload goes on where it stood.
    stallable.proxy.passthrough()
    head = await client.head(location, headers={**auth, **TUS})
    assert head.headers["upload-offset"] == "5"
