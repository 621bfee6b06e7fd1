"""Two real `seau serve` processes sharing one PostgreSQL database and one store: what
one instance does to a share (a revoke, the last download) the other sees at once,
and concurrent downloads through both never pass `max_downloads`."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.support.databases import scratch_database
from tests.support.server import Server, seau_server

DATA = b"shared across instances\n" * 1000


@pytest.fixture
def two_instances(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    with scratch_database("postgresql", tmp_path) as database_url, ExitStack() as stack:
        env = {
            "SEAU_DATABASE_URL": database_url,
            "SEAU_STORAGE_URL": (tmp_path / "objects").as_uri(),
            "SEAU_SECRET_KEY": secrets.token_urlsafe(40),
            "SEAU_DATA_DIR": str(tmp_path / "data"),
        }
        servers = []
        for directory in ("a", "b"):
            (tmp_path / directory).mkdir()
            # One after the other: the first migrates, the second finds it done.
            servers.append(stack.enter_context(seau_server(env, cwd=tmp_path / directory)))
        yield servers[0], servers[1]


async def test_revoke_and_exhaustion_are_seen_by_the_other_instance_at_once(
    two_instances: tuple[Server, Server],
) -> None:
    a, b = two_instances
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=30) as ca,
        httpx.AsyncClient(base_url=b.url, timeout=30) as cb,
    ):
        email, password = f"share-{secrets.token_hex(4)}@example.com", "shared password"
        assert (
            await ca.post("/api/v1/users", json={"email": email, "password": password})
        ).status_code == 201
        token = await ca.post("/api/v1/auth/token", data={"username": email, "password": password})
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
        uploaded = await ca.post(
            "/api/v1/files", params={"name": "both.txt"}, content=DATA, headers=auth
        )
        file_id = uploaded.json()["id"]

        async def share(**body: object) -> dict[str, str]:
            made = await ca.post(f"/api/v1/files/{file_id}/shares", json=body, headers=auth)
            assert made.status_code == 201, made.text
            result: dict[str, str] = made.json()
            return result

        # Revoked on A: B refuses the very next request.
        revoked = await share()
        assert (await cb.get(f"{revoked['url']}/content")).content == DATA
        assert (await ca.delete(f"/api/v1/shares/{revoked['id']}", headers=auth)).status_code == 204
        gone = await cb.get(f"{revoked['url']}/content")
        assert gone.status_code == 404
        assert gone.json()["code"] == "share_not_found"

        # The last download taken on B: A answers 410 at once.
        last = await share(max_downloads=2)
        assert (await ca.get(f"{last['url']}/content")).status_code == 200
        assert (await cb.get(f"{last['url']}/content")).status_code == 200
        exhausted = await ca.get(f"{last['url']}/content")
        assert exhausted.status_code == 410
        assert exhausted.json()["code"] == "share_exhausted"

        # Sixteen at once, half through each instance, for three downloads.
        limited = await share(max_downloads=3)
        answers = await asyncio.gather(
            *((ca if i % 2 else cb).get(f"{limited['url']}/content") for i in range(16))
        )
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [200] * 3 + [410] * 13, statuses
        listed = (await cb.get(f"/api/v1/files/{file_id}/shares", headers=auth)).json()
        counts = {item["id"]: item["downloads"] for item in listed["items"]}
        assert counts == {last["id"]: 2, limited["id"]: 3}

        # The file deleted through B takes its shares on A too.
        assert (await cb.delete(f"/api/v1/files/{file_id}", headers=auth)).status_code == 204
        assert (await ca.get(f"{limited['url']}/content")).status_code == 404

    # The access logs name the route, never a link's secret.
    for server in (a, b):
        log = server.log.read_text(errors="replace")
        assert "/s/[secret]/content" in log
        for made in (revoked, last, limited):
            assert made["url"].removeprefix("/s/") not in log
