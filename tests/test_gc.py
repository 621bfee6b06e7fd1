"""The reconciler removes debris and never a ready file or anything in flight."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import select

from seau.app import create_app
from seau.db.base import utcnow
from seau.db.models import FileState, UserFile
from seau.files.keys import key_for
from seau.gc import collect
from seau.settings import Settings
from tests.api.helpers import stored_keys, upload_raw
from tests.conftest import Running
from tests.support.server import SEAU, seau_server, server_env

GRACE = timedelta(hours=1)


async def _bytes(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _pending_row(running: Running, owner_id: uuid.UUID, *, with_object: bool) -> UserFile:
    state = running.app.state.seau
    file_id = uuid.uuid4()
    row = UserFile(
        id=file_id,
        owner_id=owner_id,
        object_key=key_for(file_id),
        name="p",
        content_type="application/octet-stream",
        declared_type="application/octet-stream",
        size=0,
        state=FileState.PENDING,
    )
    async with state.sessions() as session:
        session.add(row)
        await session.commit()
    if with_object:
        await state.store.put(row.object_key, _bytes(b"half an upload"))
    return row


async def _row_ids(running: Running) -> set[uuid.UUID]:
    async with running.app.state.seau.sessions() as session:
        return set(await session.scalars(select(UserFile.id)))


async def test_gc_removes_orphans_and_stale_pending_but_never_ready_files(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    state = running.app.state.seau
    me = (await client.get("/api/v1/users/me", headers=auth)).json()
    ready = await upload_raw(client, auth, "keep.txt", b"precious")
    pending = await _pending_row(running, uuid.UUID(me["id"]), with_object=True)
    orphan_key = key_for(uuid.uuid4())
    await state.store.put(orphan_key, _bytes(b"nobody's"))

    # Everything is younger than the grace period: nothing goes.
    young = await collect(sessions=state.sessions, store=state.store, grace=GRACE)
    assert young.orphan_objects == []
    assert pending.object_key not in young.stale_pending
    assert pending.id in await _row_ids(running)

    later = utcnow() + GRACE * 2
    dry = await collect(
        sessions=state.sessions, store=state.store, grace=GRACE, now=later, dry_run=True
    )
    assert orphan_key in dry.orphan_objects
    assert pending.object_key in dry.stale_pending
    assert dry.removed == 0
    assert orphan_key in await stored_keys(running)

    # Two instances reconciling at once agree and neither fails.
    reports = await asyncio.gather(
        *(
            collect(sessions=state.sessions, store=state.store, grace=GRACE, now=later)
            for _ in range(2)
        )
    )
    assert all(not r.errors for r in reports)
    keys = await stored_keys(running)
    assert orphan_key not in keys
    assert pending.object_key not in keys
    assert pending.id not in await _row_ids(running)
    content = await client.get(f"/api/v1/files/{ready['id']}/content", headers=auth)
    assert content.content == b"precious"


def _slow_body(total: int, started: threading.Event) -> Iterator[bytes]:
    block = os.urandom(256 * 1024)
    sent = 0
    while sent < total:
        yield block
        sent += len(block)
        if sent > 4 * 1024 * 1024:
            started.set()
            time.sleep(0.05)


def test_seau_killed_mid_upload_then_gc_leaves_no_debris(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {"SEAU_DATA_DIR": str(data_dir)}
    with seau_server(env, cwd=tmp_path) as server:
        email, password = "gc@example.com", "gc password 1"
        httpx.post(f"{server.url}/api/v1/users", json={"email": email, "password": password})
        token = httpx.post(
            f"{server.url}/api/v1/auth/token", data={"username": email, "password": password}
        ).json()["access_token"]
        started = threading.Event()
        failure: list[BaseException] = []

        def send() -> None:
            try:
                httpx.post(
                    f"{server.url}/api/v1/files",
                    params={"name": "big.bin"},
                    headers={"Authorization": f"Bearer {token}"},
                    content=_slow_body(200 * 1024 * 1024, started),
                    timeout=60,
                )
            except httpx.HTTPError as exc:
                failure.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        assert started.wait(30)
        time.sleep(0.3)
        server.stop(signal.SIGKILL)
        sender.join(30)
        assert failure, "the upload must not have succeeded"

    temp_files = list((data_dir / "objects").rglob("*"))
    assert any(p.is_file() for p in temp_files), "the killed upload left nothing to collect"
    import sqlite3

    def file_rows() -> tuple[int]:
        database = sqlite3.connect(data_dir / "seau.db")
        try:
            count: tuple[int] = database.execute("SELECT count(*) FROM user_file").fetchone()
        finally:
            database.close()
        return count

    # The row is written only once the bytes are whole: a killed upload has none.
    assert file_rows() == (0,)
    time.sleep(1.5)
    result = subprocess.run(
        [SEAU, "gc"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=server_env({**env, "SEAU_GC_GRACE_SECONDS": "1"}),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "temporary data: 1 removed" in result.stdout
    assert [p for p in (data_dir / "objects").rglob("*") if p.is_file()] == []
    assert file_rows() == (0,)


async def test_the_server_collects_by_itself_within_its_first_interval(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, secret_key="k" * 40, gc_interval_seconds=1, gc_grace_seconds=1
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        state = app.state.seau
        key = key_for(uuid.uuid4())
        await state.store.put(key, _bytes(b"an object no row names"))
        # Older than the grace period by its modification time, as a crash would leave it.
        os.utime(tmp_path / "objects" / key, (time.time() - 60, time.time() - 60))
        # The orphan goes part way through a run; the run counts once every step is done.
        for _ in range(100):
            gone = not [info async for info in state.store.list(key)]
            if gone and state.metrics.gc_runs.labels("ok")._value.get() >= 1:
                break
            await asyncio.sleep(0.1)
        assert [info async for info in state.store.list(key)] == []
        runs = state.metrics.gc_runs.labels("ok")._value.get()
        assert runs >= 1
