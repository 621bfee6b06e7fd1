"""Hostile values that reach SQL, on each database: what SQLite stores, PostgreSQL may
refuse (NUL in text), so a value that is harmless on one is a 500 on another."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from seau.app import create_app
from seau.settings import Settings
from tests.conftest import TEST_SECRET
from tests.support.databases import Kind, scratch_database

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module", params=["sqlite", "mysql", "postgresql"])
async def database_client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Kind, httpx.AsyncClient]]:
    kind: Kind = request.param
    tmp: Path = tmp_path_factory.mktemp(f"hostile-{kind}")
    with scratch_database(kind, tmp) as database_url:
        settings = Settings(
            data_dir=tmp,
            database_url=database_url,
            storage_url=(tmp / "objects").as_uri(),
            secret_key=TEST_SECRET,
        )
        app = create_app(settings)
        # The server answers an unhandled error with a 500; so does this transport.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://seau.test") as client,
        ):
            yield kind, client


async def _auth(client: httpx.AsyncClient) -> dict[str, str]:
    email, password = f"db-{secrets.token_hex(4)}@example.com", "correct horse battery"
    created = await client.post("/api/v1/users", json={"email": email, "password": password})
    assert created.status_code == 201, created.text
    token = await client.post("/api/v1/auth/token", data={"username": email, "password": password})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def _problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["code"] == code


@pytest.mark.parametrize("q", ["\x00", "name\x00", "\x1f"])
async def test_a_search_with_a_control_character_is_422_on_every_database(
    database_client: tuple[Kind, httpx.AsyncClient], q: str
) -> None:
    _, client = database_client
    response = await client.get("/api/v1/files", params={"q": q}, headers=await _auth(client))
    _problem(response, 422, "validation_error")


async def test_a_name_cursor_holding_nul_is_no_server_error_on_any_database(
    database_client: tuple[Kind, httpx.AsyncClient], request: pytest.FixtureRequest
) -> None:
    _, client = database_client
    raw = json.dumps({"s": "name", "v": "a\x00", "i": "0" * 32}).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    response = await client.get(
        "/api/v1/files", params={"sort": "name", "cursor": cursor}, headers=await _auth(client)
    )
    # No name holds NUL, so an empty page is as right as calling the cursor invalid.
    if response.status_code != 200:
        _problem(response, 400, "invalid_cursor")


async def test_an_email_holding_nul_is_422_at_sign_up(
    database_client: tuple[Kind, httpx.AsyncClient],
) -> None:
    _, client = database_client
    response = await client.post(
        "/api/v1/users", json={"email": "a\x00b@example.com", "password": "correct horse"}
    )
    _problem(response, 422, "validation_error")


async def test_a_sign_in_with_nul_is_401_on_every_database(
    database_client: tuple[Kind, httpx.AsyncClient], request: pytest.FixtureRequest
) -> None:
    _, client = database_client
    response = await client.post(
        "/api/v1/auth/token", data={"username": "a\x00b@example.com", "password": "whatever"}
    )
    _problem(response, 401, "invalid_credentials")
