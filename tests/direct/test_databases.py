"""Creation and completion of direct uploads on MariaDB and PostgreSQL (the rest of
tests/direct runs on SQLite): the reservation, the one transaction that makes the
file, completing twice, and the quota refusal."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
from tests.conftest import sign_up
from tests.direct.conftest import Site, complete, create, open_site, post_form, sha256
from tests.quotas.invariant import check_invariant


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("mysql", marks=pytest.mark.mysql),
        pytest.param("postgresql", marks=pytest.mark.postgresql),
    ],
)
async def database_site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Site]:
    database = request.param
    tmp = tmp_path_factory.mktemp(f"direct-{database}")
    async for made in open_site(request, tmp, store="local", database=database):
        yield made


async def test_create_and_complete(database_site: Site) -> None:
    data = os.urandom(70_000)
    async with database_site.client() as http:
        auth = await sign_up(http)
        me = (await http.get("/api/v1/users/me", headers=auth)).json()
        await database_site.app.state.seau.quotas.set_quota(
            me["subject"], values={"quota_bytes": 100_000}
        )
        made = await create(http, auth, name="db.bin", size=len(data), sha256=sha256(data))
        await create(http, auth, name="over.bin", size=40_000, expect=413)
        sent = await post_form(http, made["upload"], data)
        assert sent.status_code == 204, sent.text
        # Two completions at once: one makes the file, both answer it.
        first, second = await asyncio.gather(
            complete(http, auth, made["id"]), complete(http, auth, made["id"])
        )
        assert first == second
        assert first["sha256"] == sha256(data)
        usage = (await http.get("/api/v1/usage", headers=auth)).json()
        assert (usage["used_bytes"], usage["used_files"], usage["reserved_bytes"]) == (
            len(data),
            1,
            0,
        )
        listed = (await http.get("/api/v1/files", headers=auth)).json()["items"]
        assert [f["id"] for f in listed] == [made["id"]]
    url = database_site.settings.database_url
    assert url is not None
    assert (await check_invariant(url))["reservations"] == 0


async def test_a_mismatch_releases_the_reservation(database_site: Site) -> None:
    async with database_site.client() as http:
        auth = await sign_up(http)
        made = await create(http, auth, name="db.bin", size=1000)
        await post_form(http, made["upload"], os.urandom(999))
        refused = await complete(http, auth, made["id"], expect=422)
        assert refused["differs"] == "size"
        usage = (await http.get("/api/v1/usage", headers=auth)).json()
        assert (usage["used_bytes"], usage["reserved_bytes"]) == (0, 0)
    url = database_site.settings.database_url
    assert url is not None
    await check_invariant(url)
