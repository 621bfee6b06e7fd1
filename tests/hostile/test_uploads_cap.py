"""One user cannot pile up unfinished resumable uploads (issue 17, finding 6).

Before: one user created 1,000 unfinished 5 GiB tus uploads in 23 s; nothing
counted them. After: `SEAU_MAX_ACTIVE_UPLOADS` unfinished, unexpired uploads per
owner, then 429 `too_many_active_uploads`, exactly, even for creations racing
each other on MariaDB and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from seau.app import create_app
from seau.db.base import utcnow
from seau.db.models import Upload
from seau.settings import Settings
from tests.support.databases import Kind, scratch_database

CAP = 3
TUS = {"Tus-Resumable": "1.0.0"}
SECRET = "uploads-cap-secret-" + "c" * 48


class App:
    def __init__(self, client: httpx.AsyncClient, settings: Settings, app: object) -> None:
        self.client = client
        self.settings = settings
        self.app = app


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("mysql", marks=pytest.mark.mysql),
        pytest.param("postgresql", marks=pytest.mark.postgresql),
    ]
)
async def served(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[App]:
    kind: Kind = request.param
    with scratch_database(kind, tmp_path) as url:
        settings = Settings(
            data_dir=tmp_path,
            database_url=url,
            storage_url=(tmp_path / "objects").as_uri(),
            secret_key=SECRET,
            max_active_uploads=CAP,
            gc_interval_seconds=0,
            signup_per_address_per_hour=0,
            signup_per_minute=0,
        )
        app = create_app(settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://seau.test"
            ) as client,
        ):
            yield App(client, settings, app)


async def _sign_up(client: httpx.AsyncClient) -> dict[str, str]:
    email = f"cap-{secrets.token_hex(4)}@example.com"
    password = "correct horse battery"
    created = await client.post("/api/v1/users", json={"email": email, "password": password})
    assert created.status_code == 201, created.text
    token = await client.post("/api/v1/auth/token", data={"username": email, "password": password})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


async def _create(client: httpx.AsyncClient, auth: dict[str, str]) -> httpx.Response:
    return await client.post(
        "/api/v1/uploads", headers={**auth, **TUS, "Upload-Length": str(5 * 1024**3)}
    )


async def test_creation_past_the_cap_is_429_and_finishing_or_ending_one_makes_room(
    served: App,
) -> None:
    client = served.client
    auth, other = await _sign_up(client), await _sign_up(client)
    locations = []
    for _ in range(CAP):
        made = await _create(client, auth)
        assert made.status_code == 201, made.text
        locations.append(made.headers["location"])

    refused = await _create(client, auth)
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "too_many_active_uploads"
    assert refused.headers["tus-resumable"] == "1.0.0"
    # The cap is per owner.
    assert (await _create(client, other)).status_code == 201

    # Terminated: room for one more.
    ended = await client.delete(locations.pop(), headers={**auth, **TUS})
    assert ended.status_code == 204, ended.text
    small = await client.post("/api/v1/uploads", headers={**auth, **TUS, "Upload-Length": "2"})
    assert small.status_code == 201, small.text
    assert (await _create(client, auth)).status_code == 429

    # Finished (done rows stay until they expire): they do not count.
    finished = await client.patch(
        small.headers["location"],
        headers={
            **auth,
            **TUS,
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": "0",
        },
        content=b"ok",
    )
    assert finished.status_code == 204, finished.text
    made = await _create(client, auth)
    assert made.status_code == 201, made.text
    assert (await _create(client, auth)).status_code == 429

    # Expired, not yet reclaimed: they do not count either.
    state = served.app.state.seau  # type: ignore[attr-defined]
    async with state.sessions() as session:
        await session.execute(
            update(Upload)
            .where(Upload.id.in_([_upload_id(made), _upload_id_of(locations[0])]))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    assert (await _create(client, auth)).status_code == 201
    assert (await _create(client, auth)).status_code == 201
    assert (await _create(client, auth)).status_code == 429


async def test_racing_creations_stop_exactly_at_the_cap(served: App) -> None:
    client = served.client
    auth = await _sign_up(client)
    answers = await asyncio.gather(*(_create(client, auth) for _ in range(4 * CAP)))
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: CAP, 429: 3 * CAP}, [a.text for a in answers if a.status_code >= 500]


def test_the_reconciler_runs_hourly_inside_serve_by_default() -> None:
    assert Settings(secret_key=SECRET).gc_interval_seconds == 3600
    assert Settings(secret_key=SECRET).max_active_uploads == 100


def _upload_id(response: httpx.Response) -> uuid.UUID:
    return _upload_id_of(response.headers["location"])


def _upload_id_of(location: str) -> uuid.UUID:
    return uuid.UUID(location.rsplit("/", 1)[1])
