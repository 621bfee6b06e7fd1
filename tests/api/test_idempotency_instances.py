"""Safe retries across real `seau serve` processes sharing one database and store:
the same request sent to two instances at once, and again after, with one
`Idempotency-Key`, makes one file, and every answer is that file (201, the first
answer replayed) or 409 while it runs; a retry through the other instance answers
the same file."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_SECRET
from tests.support.databases import Kind, scratch_database
from tests.support.server import seau_server

PASSWORD = "correct horse battery"
KEYS = 12

DATABASES = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgresql),
    pytest.param("mysql", marks=pytest.mark.mysql),
]


@pytest.mark.parametrize("kind", DATABASES)
async def test_one_key_sent_to_two_instances_at_once_makes_one_file(
    kind: Kind, tmp_path: Path
) -> None:
    with scratch_database(kind, tmp_path) as database, ExitStack() as stack:
        env = {
            "SEAU_DATA_DIR": str(tmp_path / "data"),
            "SEAU_DATABASE_URL": database,
            "SEAU_STORAGE_URL": (tmp_path / "objects").as_uri(),
            "SEAU_SECRET_KEY": TEST_SECRET,
            "SEAU_LOG_LEVEL": "warning",
            "SEAU_GC_INTERVAL_SECONDS": "0",
        }
        servers = [
            await asyncio.to_thread(stack.enter_context, seau_server(env, cwd=tmp_path))
            for _ in range(2)
        ]
        clients = [
            stack.enter_context(httpx.Client(base_url=server.url, timeout=30)) for server in servers
        ]
        email = f"retry-{uuid.uuid4().hex[:8]}@example.com"
        made = clients[0].post("/api/v1/users", json={"email": email, "password": PASSWORD})
        assert made.status_code == 201, made.text
        token = (
            clients[0]
            .post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
            .json()["access_token"]
        )
        auth = {"Authorization": f"Bearer {token}"}

        async with (
            httpx.AsyncClient(base_url=servers[0].url, timeout=30) as a,
            httpx.AsyncClient(base_url=servers[1].url, timeout=30) as b,
        ):

            async def send(client: httpx.AsyncClient, i: int, key: str) -> httpx.Response:
                return await client.post(
                    "/api/v1/files",
                    params={"name": f"r-{i:02d}.bin"},
                    content=f"file {i} ".encode() * 1000,
                    headers=auth | {"Idempotency-Key": key},
                )

            keys = [str(uuid.uuid4()) for _ in range(KEYS)]
            at_once = await asyncio.gather(
                *(send(client, i, key) for i, key in enumerate(keys) for client in (a, b))
            )
            ids: dict[str, set[str]] = {key: set() for key in keys}
            for n, answer in enumerate(at_once):
                assert answer.status_code in (201, 409), answer.text
                if answer.status_code == 201:
                    ids[keys[n // 2]].add(answer.json()["id"])
                else:
                    assert answer.json()["code"] == "idempotency_key_in_use"
            # Each key made at most one file, whichever instance answered.
            assert all(len(made_ids) <= 1 for made_ids in ids.values()), ids
            # Sent again through each instance: the one file.
            for i, key in enumerate(keys):
                for client in (b, a):
                    again = await send(client, i, key)
                    assert again.status_code == 201, again.text
                    ids[key].add(again.json()["id"])
                assert len(ids[key]) == 1, (key, ids[key])

        listed = clients[1].get("/api/v1/files", params={"limit": 1000}, headers=auth).json()
        names = sorted(item["name"] for item in listed["items"])
        assert names == [f"r-{i:02d}.bin" for i in range(KEYS)]
        assert {item["id"] for item in listed["items"]} == set().union(*ids.values())
