"""Safe retries across real `seau serve` processes sharing one database and store:
the same request sent to two instances at once, and again after, with one
`Idempotency-Key`, makes one file, and every answer is that file (201, the first
answer replayed) or 409 while it runs; a retry through the other instance answers
the same file. An instance killed right after the commit of what a request made
leaves the answer with it: the retry through the other instance, once the dead
claim would have lapsed, replays it and makes nothing more."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import InstrumentedAttribute

from seau.db.base import utcnow
from seau.db.models import DirectUpload, IdempotencyRecord, Share, Upload, UserFile
from seau.idempotency.service import ABANDONED
from tests.conftest import TEST_SECRET
from tests.support.databases import Kind, scratch_database
from tests.support.server import kill_after_commit, seau_server

PASSWORD = "correct horse battery"
KEYS = 12

DATABASES = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgresql),
    pytest.param("mysql", marks=pytest.mark.mysql),
]


def _env(database: str, tmp_path: Path) -> dict[str, str]:
    return {
        "SEAU_DATA_DIR": str(tmp_path / "data"),
        "SEAU_DATABASE_URL": database,
        "SEAU_STORAGE_URL": (tmp_path / "objects").as_uri(),
        "SEAU_SECRET_KEY": TEST_SECRET,
        "SEAU_LOG_LEVEL": "warning",
        "SEAU_GC_INTERVAL_SECONDS": "0",
        # Under a loaded CI machine a unit of work may take past the default 10 s: a
        # 503 then, with nothing committed, and no kill to see.
        "SEAU_DATABASE_TIMEOUT_SECONDS": "30",
    }


def _sign_up(url: str) -> dict[str, str]:
    with httpx.Client(base_url=url, timeout=30) as client:
        email = f"retry-{uuid.uuid4().hex[:8]}@example.com"
        made = client.post("/api/v1/users", json={"email": email, "password": PASSWORD})
        assert made.status_code == 201, made.text
        signed_in = client.post(
            "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
        )
        return {"Authorization": f"Bearer {signed_in.json()['access_token']}"}


@pytest.mark.parametrize("kind", DATABASES)
async def test_one_key_sent_to_two_instances_at_once_makes_one_file(
    kind: Kind, tmp_path: Path
) -> None:
    with scratch_database(kind, tmp_path) as database, ExitStack() as stack:
        env = _env(database, tmp_path)
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


@dataclass(frozen=True)
class Creation:
    """A request that makes something: where its rows go, how many it makes, and the
    ids of what its answer names."""

    made: InstrumentedAttribute[uuid.UUID]
    count: int
    send: Callable[[httpx.AsyncClient, dict[str, str], str], Awaitable[httpx.Response]]
    answered: Callable[[httpx.Response], set[uuid.UUID]]


TUS = {"Tus-Resumable": "1.0.0", "Upload-Length": "5", "Upload-Metadata": "filename YS50eHQ="}
TWO_FILES = [("file", ("a.bin", b"a" * 100)), ("file", ("b.bin", b"b" * 200))]


def _id(answer: httpx.Response) -> set[uuid.UUID]:
    return {uuid.UUID(answer.json()["id"])}


CREATIONS = {
    "raw upload": Creation(
        UserFile.id,
        1,
        lambda client, headers, _: client.post(
            "/api/v1/files", params={"name": "raw.bin"}, content=b"raw" * 100, headers=headers
        ),
        _id,
    ),
    "multipart upload": Creation(
        UserFile.id,
        2,
        lambda client, headers, _: client.post("/api/v1/files", files=TWO_FILES, headers=headers),
        lambda answer: {uuid.UUID(made["id"]) for made in answer.json()["files"]},
    ),
    "tus creation": Creation(
        Upload.id,
        1,
        lambda client, headers, _: client.post("/api/v1/uploads", headers=headers | TUS),
        lambda answer: {uuid.UUID(answer.headers["location"].rsplit("/", 1)[1])},
    ),
    "share creation": Creation(
        Share.id,
        1,
        lambda client, headers, file_id: client.post(
            f"/api/v1/files/{file_id}/shares", json={"max_downloads": 2}, headers=headers
        ),
        _id,
    ),
    "direct-upload creation": Creation(
        DirectUpload.id,
        1,
        lambda client, headers, _: client.post(
            "/api/v1/direct-uploads",
            json={"name": "direct.bin", "size": 10, "content_type": "application/octet-stream"},
            headers=headers,
        ),
        _id,
    ),
}


@pytest.mark.parametrize("kind", DATABASES)
@pytest.mark.parametrize("what", list(CREATIONS))
async def test_an_instance_killed_after_its_commit_leaves_the_answer_for_the_retry(
    kind: Kind, what: str, tmp_path: Path
) -> None:
    """The request's process dies right after the commit of what it made, before
    anything else it would do (`tests/support/killpoint`). Once its claim is as old
    as a dead process's that a retry takes over, the retry through another instance
    replays the answer that committed with the work, and nothing is made twice."""
    creation = CREATIONS[what]
    with scratch_database(kind, tmp_path) as database, ExitStack() as stack:
        env = _env(database, tmp_path)
        other = await asyncio.to_thread(stack.enter_context, seau_server(env, cwd=tmp_path))
        killed = await asyncio.to_thread(
            stack.enter_context,
            seau_server(env | kill_after_commit(creation.made.class_.__tablename__), cwd=tmp_path),
        )
        auth = await asyncio.to_thread(_sign_up, other.url)
        headers = auth | {"Idempotency-Key": str(uuid.uuid4())}
        engine = create_async_engine(database)
        try:
            async with httpx.AsyncClient(base_url=other.url, timeout=30) as client:
                kept = await client.post(
                    "/api/v1/files", params={"name": "kept.txt"}, content=b"k", headers=auth
                )
                assert kept.status_code == 201, kept.text
                file_id = kept.json()["id"]

                async def made() -> set[uuid.UUID]:
                    async with engine.connect() as connection:
                        found = set(await connection.scalars(select(creation.made)))
                    return found - {uuid.UUID(file_id)}

                async with httpx.AsyncClient(base_url=killed.url, timeout=30) as doomed:
                    try:
                        answered = await creation.send(doomed, headers, file_id)
                    except httpx.TransportError:
                        pass
                    else:  # e.g. a 503 with nothing committed: say which
                        pytest.fail(f"answered {answered.status_code}: {answered.text}")
                assert await asyncio.to_thread(killed.process.wait, 30) == -signal.SIGKILL
                # Killed after the commit: what the request made is there, all of it.
                first = await made()
                assert len(first) == creation.count, first

                # As if the dead process's claim had gone unrenewed for `ABANDONED`.
                async with engine.begin() as connection:
                    await connection.execute(
                        update(IdempotencyRecord).values(
                            claimed_at=utcnow() - ABANDONED - timedelta(seconds=10)
                        )
                    )
                again = await creation.send(client, headers, file_id)
                assert again.status_code == 201, again.text
                assert await made() == first, "the retry made it again"
                assert creation.answered(again) == first
                assert again.headers.get("idempotent-replayed") == "true"
        finally:
            await engine.dispose()
