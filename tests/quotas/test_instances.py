"""Quotas across real `seau serve` processes sharing one database and one store.

- 32 concurrent 10 MiB uploads through two instances under a 100 MiB quota leave
  exactly 10 ready files and 22 answers 413, and each 413 comes before the body was
  read: every client sends `Expect: 100-continue` and holds its body until the
  server asks for it, which uvicorn does only when the app reads the body.
- Uploads SIGKILLed mid-body (a raw one and a tus one) hold their room until it is
  released: the invariant holds after the kill (the raw upload's reservation
  waiting for gc) and after `seau gc` (nothing held, the room back).

The first sets the owner's quota with `seau quota set`, the second uses the server's
default (`SEAU_DEFAULT_QUOTA_BYTES`); `seau gc` releases what the kill left.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_SECRET
from tests.quotas.invariant import check_invariant
from tests.support.databases import Kind, scratch_database
from tests.support.server import SEAU, Server, seau_server, server_env

MiB = 1024 * 1024
EXPIRY = 2
PASSWORD = "correct horse battery"
TUS = {"Tus-Resumable": "1.0.0"}

DATABASES = [
    pytest.param("postgresql", marks=pytest.mark.postgresql),
    pytest.param("mysql", marks=pytest.mark.mysql),
]


@dataclass
class Cluster:
    servers: list[Server]
    env: dict[str, str]
    database: str
    tmp: Path
    token: str = ""
    subject: str = ""

    async def sign_up(self, name: str) -> Cluster:
        """The cluster as a new user called ``name`` sees it."""
        async with httpx.AsyncClient(base_url=self.servers[0].url, timeout=30) as client:
            email = f"{name}@example.com"
            made = await client.post("/api/v1/users", json={"email": email, "password": PASSWORD})
            assert made.status_code == 201, made.text
            token = await client.post(
                "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
            )
            assert token.status_code == 200, token.text
            access = token.json()["access_token"]
            me = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {access}"})
        return replace(self, token=access, subject=me.json()["subject"])

    def seau(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [SEAU, *args],
            env=server_env(self.env),
            cwd=self.tmp,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    async def usage(self, server: Server) -> dict[str, int]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            answer = await client.get(
                "/api/v1/usage", headers={"Authorization": f"Bearer {self.token}"}
            )
        assert answer.status_code == 200, answer.text
        usage: dict[str, int] = answer.json()
        return usage


@pytest.fixture(scope="module", params=DATABASES)
async def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Cluster]:
    """Two instances on one database and store, for the whole module (the kill test,
    last, kills the first)."""
    kind: Kind = request.param
    tmp = tmp_path_factory.mktemp(f"quotas-{kind}")
    with scratch_database(kind, tmp) as database, ExitStack() as stack:
        env = {
            "SEAU_DATA_DIR": str(tmp / "data"),
            "SEAU_DATABASE_URL": database,
            "SEAU_STORAGE_URL": (tmp / "objects").as_uri(),
            "SEAU_SECRET_KEY": TEST_SECRET,
            "SEAU_LOG_LEVEL": "warning",
            "SEAU_GC_INTERVAL_SECONDS": "0",
            "SEAU_UPLOAD_EXPIRY_SECONDS": str(EXPIRY),
            "SEAU_UPLOAD_LEASE_SECONDS": "1",
            "SEAU_GC_GRACE_SECONDS": "1",
            # The server's default; the first test sets its owner's own.
            "SEAU_DEFAULT_QUOTA_BYTES": str(30 * MiB),
        }
        servers = []
        for _ in range(2):
            # The first instance migrates; the second starts on the migrated schema.
            servers.append(await asyncio.to_thread(stack.enter_context, seau_server(env, cwd=tmp)))
        yield Cluster(servers, env, database, tmp)


@dataclass
class Answer:
    status: int
    body_sent: bool
    problem: dict[str, object]


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    status = int((await reader.readline()).split()[1])
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


async def post_raw(
    server: Server,
    token: str,
    name: str,
    size: int,
    *,
    send: int | None = None,
    sent: asyncio.Event | None = None,
) -> Answer:
    """A raw upload of ``size`` declared bytes, with `Expect: 100-continue`: the body
    goes only if the server asks for it. ``send``: stop after that many bytes and
    wait (for a kill), setting ``sent``."""
    url = httpx.URL(server.url)
    assert url.port is not None
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(
            (
                f"POST /api/v1/files?name={name} HTTP/1.1\r\n"
                f"Host: {url.host}:{url.port}\r\n"
                f"Authorization: Bearer {token}\r\n"
                "Content-Type: application/octet-stream\r\n"
                f"Content-Length: {size}\r\n"
                "Expect: 100-continue\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        status, headers = await _read_head(reader)
        body_sent = False
        if status == 100:
            body_sent = True
            chunk = b"q" * MiB
            left = size if send is None else send
            while left:
                writer.write(chunk[: min(left, MiB)])
                left -= min(left, MiB)
                await writer.drain()
            if send is not None:
                assert sent is not None
                sent.set()
                await reader.read()  # until the server dies
                return Answer(0, True, {})
            status, headers = await _read_head(reader)
        length = int(headers.get("content-length", "0"))
        raw = await reader.readexactly(length) if length else b""
        return Answer(status, body_sent, json.loads(raw) if status >= 400 else {})
    finally:
        writer.close()


async def test_32_uploads_through_two_instances_leave_exactly_what_fits(cluster: Cluster) -> None:
    running = await cluster.sign_up("many")
    running.seau("quota", "set", "--subject", running.subject, "--bytes", "100MiB")
    started = time.monotonic()
    answers = await asyncio.gather(
        *(
            post_raw(running.servers[i % 2], running.token, f"f{i:02d}.bin", 10 * MiB)
            for i in range(32)
        )
    )
    elapsed = time.monotonic() - started
    statuses = sorted(a.status for a in answers)
    assert statuses == [201] * 10 + [413] * 22, statuses
    for answer in answers:
        # Refused before a byte of the body was asked for; accepted ones sent it all.
        assert answer.body_sent == (answer.status == 201)
        if answer.status == 413:
            assert answer.problem["code"] == "quota_exceeded"
            assert answer.problem["limit"] == 100 * MiB
    async with httpx.AsyncClient(base_url=running.servers[1].url, timeout=30) as client:
        listed = await client.get(
            "/api/v1/files", headers={"Authorization": f"Bearer {running.token}"}
        )
        assert len(listed.json()["items"]) == 10
        assert {f["size"] for f in listed.json()["items"]} == {10 * MiB}
        usage = (
            await client.get("/api/v1/usage", headers={"Authorization": f"Bearer {running.token}"})
        ).json()
    assert usage["used_bytes"] == usage["quota_bytes"] == 100 * MiB
    assert (usage["used_files"], usage["reserved_bytes"]) == (10, 0)
    await check_invariant(running.database)
    assert elapsed < 60


async def test_killed_uploads_hold_their_room_until_it_is_released(cluster: Cluster) -> None:
    running = await cluster.sign_up("killed")
    doomed, survivor = running.servers
    auth = {"Authorization": f"Bearer {running.token}"}
    # A tus upload of 10 MiB, half sent before the kill.
    async with httpx.AsyncClient(base_url=doomed.url, timeout=30) as client:
        metadata = "filename " + base64.b64encode(b"tus.bin").decode()
        created = await client.post(
            "/api/v1/uploads",
            headers={
                **auth,
                **TUS,
                "Upload-Length": str(10 * MiB),
                "Upload-Metadata": metadata,
            },
        )
        assert created.status_code == 201, created.text
    expires = time.monotonic() + EXPIRY
    location = httpx.URL(created.headers["location"]).path
    tus_sent = asyncio.Event()
    raw_sent = asyncio.Event()

    async def tus_patch() -> None:
        url = httpx.URL(doomed.url)
        assert url.port is not None
        reader, writer = await asyncio.open_connection(url.host, url.port)
        writer.write(
            (
                f"PATCH {location} HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {running.token}\r\nTus-Resumable: 1.0.0\r\n"
                "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
                f"Content-Length: {10 * MiB}\r\n\r\n"
            ).encode()
            + b"t" * (5 * MiB)
        )
        await writer.drain()
        tus_sent.set()
        await reader.read()
        writer.close()

    tasks = [
        asyncio.create_task(tus_patch()),
        asyncio.create_task(
            post_raw(doomed, running.token, "raw.bin", 10 * MiB, send=5 * MiB, sent=raw_sent)
        ),
    ]
    await asyncio.wait_for(asyncio.gather(tus_sent.wait(), raw_sent.wait()), timeout=30)
    await asyncio.sleep(0.3)  # the server is mid-body, its reservations made
    os.kill(doomed.pid, signal.SIGKILL)
    await asyncio.gather(*tasks, return_exceptions=True)
    doomed.process.wait()

    usage = await running.usage(survivor)
    assert (usage["used_bytes"], usage["reserved_bytes"]) == (0, 20 * MiB)
    # The raw upload's reservation waits for gc: its process is gone.
    held = await check_invariant(running.database, live_uploads_only=False)
    assert held["reservations"] == 2
    async with httpx.AsyncClient(base_url=survivor.url, timeout=30) as client:
        refused = await client.post(
            "/api/v1/files", params={"name": "x"}, content=b"x" * (10 * MiB + 1), headers=auth
        )
        assert refused.status_code == 413, refused.text
        assert refused.json()["reserved"] == 20 * MiB

        # The tus upload expires; both reservations are past the grace period.
        await asyncio.sleep(max(0.0, expires - time.monotonic()) + 0.5)
        gc = running.seau("gc")
        assert "stale_reservations: 1 removed" in gc.stdout, gc.stdout
        assert "expired_uploads: 1 removed" in gc.stdout, gc.stdout
        held = await check_invariant(running.database)
        assert held["reservations"] == 0
        usage = await running.usage(survivor)
        assert (usage["used_bytes"], usage["reserved_bytes"]) == (0, 0)
        # The room is back, to the last byte.
        fits = await client.post(
            "/api/v1/files", params={"name": "y"}, content=b"y" * (30 * MiB), headers=auth
        )
        assert fits.status_code == 201, fits.text
    await check_invariant(running.database)
