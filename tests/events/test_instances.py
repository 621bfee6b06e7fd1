"""Webhooks from real `seau serve` processes sharing one database and one store.

- 1,000 files made through two instances on PostgreSQL (raw bodies, multipart requests
  and tus uploads mixed; 200 on SQLite and MariaDB, the same mix and the same 16 at a
  time, for a fifth of the time, unless SEAU_TEST_EVENTS_ALL_1000=1) are each told
  once as `file.ready` with its own id, and each can be downloaded, from the other
  instance, when its event arrives.
- An instance SIGKILLed while its deliveries are in flight loses none: the other
  instance sends them, with their ids, once the dead one's claims lapse (SQLite,
  PostgreSQL and MariaDB).

Each instance is given its own path on the receiver, so the tests see which one
sent what.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TEST_SECRET
from tests.support.databases import Kind, scratch_database
from tests.support.server import Server, seau_server
from tests.support.webhook_receiver import Receiver, webhook_receiver

PASSWORD = "correct horse battery"
TUS = {"Tus-Resumable": "1.0.0"}
# uvicorn closes a connection idle for 5 s, and httpx keeps one for 5 s: a request sent
# on a pooled connection at that instant reads a closed socket (httpx.ReadError). The
# clients here let theirs go well before the server does.
LIMITS = httpx.Limits(keepalive_expiry=2.0)

DATABASES = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgresql),
    pytest.param("mysql", marks=pytest.mark.mysql),
]


@dataclass
class Cluster:
    servers: list[Server]
    auth: dict[str, str]


@asynccontextmanager
async def cluster(
    kind: Kind, tmp: Path, receiver: Receiver, *, extra: dict[str, str] | None = None
) -> AsyncIterator[Cluster]:
    """Two instances on one database and store, each sending to its own path."""
    with scratch_database(kind, tmp) as database:
        async with instances(database, tmp, receiver, extra=extra) as made:
            yield made


@asynccontextmanager
async def instances(
    database: str,
    tmp: Path,
    receiver: Receiver,
    *,
    names: tuple[str, ...] = ("a", "b"),
    extra: dict[str, str] | None = None,
) -> AsyncIterator[Cluster]:
    """Instances on the database of the URL ``database`` and one local store, each
    sending to its own path of the receiver (`/hook/a`, `/hook/b`), and a user's token."""
    with ExitStack() as stack:
        servers = []
        for name in names:
            env = {
                "SEAU_DATA_DIR": str(tmp / "data"),
                "SEAU_DATABASE_URL": database,
                "SEAU_STORAGE_URL": (tmp / "objects").as_uri(),
                "SEAU_SECRET_KEY": TEST_SECRET,
                "SEAU_WEBHOOK_URL": f"{receiver.url}/{name}",
                "SEAU_WEBHOOK_SECRET": receiver.secret,
                "SEAU_LOG_LEVEL": "warning",
                **(extra or {}),
            }
            # The first instance migrates; the others start on the migrated schema.
            servers.append(await asyncio.to_thread(stack.enter_context, seau_server(env, cwd=tmp)))
        async with httpx.AsyncClient(base_url=servers[0].url, timeout=30, limits=LIMITS) as client:
            email = "events@example.com"
            made = await client.post("/api/v1/users", json={"email": email, "password": PASSWORD})
            assert made.status_code == 201, made.text
            token = await client.post(
                "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
            )
            assert token.status_code == 200, token.text
        try:
            yield Cluster(servers, {"Authorization": f"Bearer {token.json()['access_token']}"})
        finally:
            await stop_servers(servers)


async def stop_servers(servers: list[Server]) -> None:
    """Stop them off the event loop: the receiver runs on it, and a server's shutdown
    waits for the deliveries it has in flight (their 10 s timeout, were the loop held)."""
    await asyncio.gather(*(asyncio.to_thread(server.stop) for server in servers))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with webhook_receiver() as running:
        yield running


def _content(i: int) -> bytes:
    return hashlib.sha256(str(i).encode()).digest() * (8 + i % 64)


async def _make(client: httpx.AsyncClient, auth: dict[str, str], i: int) -> None:
    """File number ``i``, by one of the three ways of making one."""
    name, data = f"f-{i:04d}.bin", _content(i)
    if i % 3 == 0:
        made = await client.post("/api/v1/files", params={"name": name}, content=data, headers=auth)
        assert made.status_code == 201, made.text
    elif i % 3 == 1:
        made = await client.post(
            "/api/v1/files",
            files=[("file", (name, data, "application/octet-stream"))],
            headers=auth,
        )
        assert made.status_code == 201, made.text
    else:
        metadata = "filename " + base64.b64encode(name.encode()).decode()
        created = await client.post(
            "/api/v1/uploads",
            headers={**auth, **TUS, "Upload-Length": str(len(data)), "Upload-Metadata": metadata},
        )
        assert created.status_code == 201, created.text
        patched = await client.patch(
            httpx.URL(created.headers["location"]).path,
            content=data,
            headers={
                **auth,
                **TUS,
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert patched.status_code == 204, patched.text


@pytest.mark.parametrize("kind", DATABASES)
async def test_a_thousand_files_through_two_instances_are_each_told_once_and_downloadable(
    kind: Kind, tmp_path: Path, receiver: Receiver
) -> None:
    # SEAU_TEST_EVENTS_ALL_1000=1 makes it 1,000 on every database (about 2-3 min each).
    full = kind == "postgresql" or os.environ.get("SEAU_TEST_EVENTS_ALL_1000") == "1"
    count = 1000 if full else 200
    expected = {f"f-{i:04d}.bin": hashlib.sha256(_content(i)).hexdigest() for i in range(count)}
    async with cluster(kind, tmp_path, receiver) as seau:
        clients = [
            httpx.AsyncClient(base_url=s.url, timeout=30, limits=LIMITS) for s in seau.servers
        ]
        downloaded: dict[str, str] = {}
        wrong: list[str] = []

        async def download(body: dict[str, Any]) -> None:
            data = body["data"]
            if body["type"] != "file.ready" or data["name"] in downloaded:
                return
            # From whichever instance the upload did not go through, half the time.
            other = clients[int(data["name"][2:6]) % 2 ^ 1]
            got = await other.get(f"/api/v1/files/{data['id']}/content", headers=seau.auth)
            digest = hashlib.sha256(got.content).hexdigest()
            if got.status_code != 200 or digest != data["sha256"]:
                wrong.append(f"{data['name']}: {got.status_code}")
            downloaded[data["name"]] = digest

        receiver.on_arrival = download
        try:
            slots = asyncio.Semaphore(16)

            async def one(i: int) -> None:
                async with slots:
                    await _make(clients[i % 2], seau.auth, i)

            await asyncio.gather(*(one(i) for i in range(count)))
            await receiver.wait_for(
                lambda r: len(set(r.delivered())) >= count, seconds=max(60.0, count * 0.1)
            )
        finally:
            for client in clients:
                await client.aclose()
    ready = [r for r in receiver.got if r.type == "file.ready"]
    assert len({r.id for r in ready}) == count
    # At least once: a retry repeats its id, and no file is told under two ids.
    names_by_id = {r.id: r.body["data"]["name"] for r in ready}
    assert sorted(names_by_id.values()) == sorted(expected)
    assert wrong == []
    assert downloaded == expected
    assert {r.path for r in receiver.got} == {"/hook/a", "/hook/b"}
    assert receiver.refused == []


@pytest.mark.parametrize("kind", DATABASES)
async def test_an_instance_killed_while_delivering_loses_nothing(
    kind: Kind, tmp_path: Path, receiver: Receiver
) -> None:
    count = 30
    # Deliveries take 2 s to be answered, so that an instance is killed with some in
    # flight; short delivery and database timeouts make the claims' lease 3 x 3 + 2 s
    # (3 x 10 + 10 s by default).
    receiver.delay = 2.0
    timeouts = {"SEAU_WEBHOOK_TIMEOUT_SECONDS": "3", "SEAU_DATABASE_TIMEOUT_SECONDS": "2"}
    async with cluster(kind, tmp_path, receiver, extra=timeouts) as seau:
        a, b = seau.servers
        async with httpx.AsyncClient(base_url=a.url, timeout=30, limits=LIMITS) as client:
            await asyncio.gather(*(_make(client, seau.auth, i * 3) for i in range(count)))
        # A is sending: kill it while the receiver holds its requests.
        await receiver.wait_for(lambda r: any(path == "/hook/a" for path, _ in r.started))
        a.stop(signal.SIGKILL)
        killed = time.monotonic()
        # A's answered deliveries; those it was waiting on die with it (the receiver
        # still answers them, to nobody).
        answered = {r.id for r in receiver.got if r.path == "/hook/a" and r.status == 200}
        in_flight = {i for path, i in receiver.started if path == "/hook/a"} - answered

        def by_b(r: Receiver) -> set[str]:
            return {g.id for g in r.got if g.path == "/hook/b" and g.status == 200}

        assert in_flight, "the kill came after every delivery of A was answered"
        await receiver.wait_for(lambda r: len(answered | by_b(r)) >= count, seconds=120)
        # Within the short lease and B's sending; with 10 s deliveries the lease is 32 s.
        assert time.monotonic() - killed < 30
        assert b.process.poll() is None
    # Every event arrived exactly under its own id, and what A had in flight when it
    # died, B sent, with the same ids.
    assert len(answered | by_b(receiver)) == count
    assert in_flight <= by_b(receiver)
    assert len({r.body["data"]["name"] for r in receiver.got}) == count
    assert receiver.refused == []
