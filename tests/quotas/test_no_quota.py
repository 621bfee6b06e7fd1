"""Without any quota (the default), an upload holds no reservation while it
streams (a read instead of a write before its first byte), and is counted when it
is ready all the same; with an owner's own quota, it holds one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
from sqlalchemy import func, select

from seau.db.models import QuotaReservation
from seau.deps import AppState
from tests.conftest import Running


async def _held(running: Running) -> int:
    state: AppState = running.app.state.seau
    async with state.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(QuotaReservation)) or 0)


async def _upload_while_counting(
    client: httpx.AsyncClient, running: Running, auth: dict[str, str], name: str
) -> int:
    """Reservations held while an upload of known size is half sent."""
    started, release = asyncio.Event(), asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield b"x" * 500
        started.set()
        await release.wait()
        yield b"y" * 500

    sending = asyncio.create_task(
        client.post(
            "/api/v1/files",
            params={"name": name},
            content=body(),
            headers=auth | {"Content-Length": "1000"},
        )
    )
    await asyncio.wait_for(started.wait(), 10)
    await asyncio.sleep(0.2)
    during = await _held(running)
    release.set()
    done = await sending
    assert done.status_code == 201, done.text
    return during


async def test_without_a_quota_nothing_is_held_and_the_file_still_counts(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    assert running.settings.default_quota_bytes == running.settings.default_quota_files == 0
    before = await _held(running)
    # Counted in `used` first, so the owner's usage row exists (its first upload makes it).
    first = await client.post(
        "/api/v1/files", params={"name": "first.bin"}, content=b"1", headers=auth
    )
    assert first.status_code == 201
    assert await _upload_while_counting(client, running, auth, "free.bin") == before
    usage = (await client.get("/api/v1/usage", headers=auth)).json()
    assert (usage["used_bytes"], usage["used_files"], usage["reserved_bytes"]) == (1001, 2, 0)
