"""The real app with `SEAU_ALLOWED_TYPES` set, on each database × store, for the type
tests of plain uploads (tests/files/test_types.py) and of tus (tests/uploads/)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from seau.app import create_app
from seau.settings import Settings
from tests.conftest import TEST_SECRET, s3_settings, sign_up
from tests.quotas.invariant import check_invariant
from tests.support.databases import Kind, scratch_database
from tests.support.moto import make_bucket

ALLOWED = "image/*,application/pdf,text/plain"

COMBINATIONS = [
    pytest.param(("sqlite", "local"), id="sqlite-local"),
    pytest.param(("sqlite", "s3"), id="sqlite-s3", marks=pytest.mark.s3),
    pytest.param(("mysql", "local"), id="mysql-local", marks=pytest.mark.mysql),
    pytest.param(("mysql", "s3"), id="mysql-s3", marks=[pytest.mark.mysql, pytest.mark.s3]),
    pytest.param(("postgresql", "local"), id="postgresql-local", marks=pytest.mark.postgresql),
    pytest.param(
        ("postgresql", "s3"), id="postgresql-s3", marks=[pytest.mark.postgresql, pytest.mark.s3]
    ),
]


@dataclass
class Typed:
    app: FastAPI
    client: httpx.AsyncClient
    database_url: str

    async def keys(self) -> set[str]:
        """Every object key of the store: files and staging alike."""
        return {info.key async for info in self.app.state.seau.store.list("")}

    async def user(self) -> dict[str, str]:
        return await sign_up(self.client)

    async def nothing_left(self, auth: dict[str, str], *, keys: set[str]) -> None:
        """No file, no object (the store holds ``keys``, as before the upload),
        nothing held in the quota, for ``auth``'s owner."""
        listed = await self.client.get("/api/v1/files", headers=auth)
        assert listed.json()["items"] == [], listed.text
        assert await self.keys() == keys
        usage = (await self.client.get("/api/v1/usage", headers=auth)).json()
        assert (usage["used_files"], usage["used_bytes"], usage["reserved_bytes"]) == (0, 0, 0)
        # Besides: no reservation outlives its upload.
        await check_invariant(self.database_url)


async def typed_app(
    request: pytest.FixtureRequest, tmp: Path, *, allowed: str = ALLOWED
) -> AsyncIterator[Typed]:
    """For a fixture parametrized with `COMBINATIONS`: a fresh app and database."""
    kind: Kind
    kind, store = request.param
    with scratch_database(kind, tmp) as url:
        extra: dict[str, object] = {}
        if store == "s3":
            server = request.getfixturevalue("s3_server")
            storage_url = f"s3://{make_bucket(server.endpoint_url)}"
            extra = s3_settings(server.endpoint_url)
        else:
            storage_url = (tmp / "objects").as_uri()
        settings = Settings(
            data_dir=tmp,
            database_url=url,
            storage_url=storage_url,
            secret_key=TEST_SECRET,
            allowed_types=allowed,
            signup_per_address_per_hour=0,
            signup_per_minute=0,
            **extra,  # type: ignore[arg-type]
        )
        app = create_app(settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://seau.test"
            ) as http,
        ):
            yield Typed(app=app, client=http, database_url=url)
