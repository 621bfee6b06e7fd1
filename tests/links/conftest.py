"""seau on SQLite with each kind of store, and an HTTP client like `curl -L`."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from seau.app import create_app
from seau.settings import Settings
from tests.api.helpers import upload_raw
from tests.conftest import TEST_SECRET, s3_settings, sign_up
from tests.links.sigv4 import VerifyingS3
from tests.support.databases import scratch_database
from tests.support.moto import SECRET_ACCESS_KEY, make_bucket

SEAU = "http://seau.test"


@dataclass
class Site:
    store: str
    app: FastAPI
    settings: Settings
    s3: VerifyingS3 | None

    def api(self) -> httpx.AsyncClient:
        """The API, as the tests of tests/api reach it."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url=SEAU,
        )

    def anyone(self) -> httpx.AsyncClient:
        """A client with no token that follows redirects, to seau or to the bucket
        (through `VerifyingS3`, which refuses what AWS would)."""
        mounts: dict[str, httpx.AsyncBaseTransport] = {
            SEAU: httpx.ASGITransport(app=self.app),
        }
        if self.s3 is not None:
            mounts["all://"] = self.s3
        return httpx.AsyncClient(base_url=SEAU, mounts=mounts, follow_redirects=True)


@pytest.fixture(scope="module", params=["local", "s3"])
async def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Site]:
    store = request.param
    tmp = tmp_path_factory.mktemp(f"links-{store}")
    with scratch_database("sqlite", tmp) as database_url:
        extra: dict[str, object] = {}
        s3 = None
        if store == "s3":
            server = request.getfixturevalue("s3_server")
            storage_url = f"s3://{make_bucket(server.endpoint_url)}"
            extra = s3_settings(server.endpoint_url)
            s3 = VerifyingS3(secret_access_key=SECRET_ACCESS_KEY)
        else:
            storage_url = (tmp / "objects").as_uri()
        settings = Settings(
            data_dir=tmp,
            database_url=database_url,
            storage_url=storage_url,
            secret_key=TEST_SECRET,
            max_upload_bytes=8 * 1024 * 1024,
            signup_per_address_per_hour=0,
            signup_per_minute=0,
            **extra,  # type: ignore[arg-type]
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            yield Site(store=store, app=app, settings=settings, s3=s3)


# Seeded: random bytes that begin with a magic number would sniff as another type.
DATA = random.Random(81).randbytes(300 * 1024 + 7)


async def link_to(
    api: httpx.AsyncClient, auth: dict[str, str], file_id: object, **body: object
) -> dict[str, Any]:
    """`POST /api/v1/files/{id}/link` with ``body``: the answer, `url` and `expires_at`."""
    response = await api.post(f"/api/v1/files/{file_id}/link", json=body, headers=auth)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def stored(
    api: httpx.AsyncClient,
    auth: dict[str, str],
    name: str = "report 2026 é.bin",
    data: bytes = DATA,
    content_type: str = "application/octet-stream",
) -> dict[str, Any]:
    return await upload_raw(api, auth, name, data, content_type)


@pytest.fixture
async def api(site: Site) -> AsyncIterator[httpx.AsyncClient]:
    async with site.api() as client:
        yield client


@pytest.fixture
async def auth(api: httpx.AsyncClient) -> dict[str, str]:
    return await sign_up(api)


@pytest.fixture
async def anyone(site: Site) -> AsyncIterator[httpx.AsyncClient]:
    async with site.anyone() as client:
        yield client
