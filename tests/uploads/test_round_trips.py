"""A tus request costs the database round trips it needs, and no more.

Counted on the real app's engine: connection checkouts (one per unit of
database work) and the UPDATEs of the `upload` row. Every authenticated
request also makes one checkout of its own: the token's user.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
from sqlalchemy import event
from sqlalchemy.engine import Connection

from tests.conftest import Running
from tests.uploads.helpers import TUS, MiB, create, patch

# One checkout per request for the token's user (`CurrentUser`).
AUTH = 1


@dataclass
class Trips:
    checkouts: int = 0
    statements: list[str] = field(default_factory=list)

    @property
    def upload_updates(self) -> list[str]:
        return [s for s in self.statements if s.startswith("UPDATE upload ")]


# The server's own tasks share the engine: the webhook dispatcher polls the outbox
# every second, its backlog is read every few, gc runs on a timer.
BACKGROUND = ("Dispatcher.run", "watch_backlog", "_periodic_gc")


def _in_background() -> bool:
    task = asyncio.current_task()
    name = "" if task is None else getattr(task.get_coro(), "__qualname__", "")
    return any(part in name for part in BACKGROUND)


@contextmanager
def counting(running: Running) -> Iterator[Trips]:
    engine = running.app.state.seau.engine.sync_engine
    trips = Trips()

    def checkout(*_: object) -> None:
        if not _in_background():
            trips.checkouts += 1

    def execute(_conn: Connection, _cursor: object, statement: str, *_: object) -> None:
        if not _in_background():
            trips.statements.append(" ".join(statement.split()))

    event.listen(engine.pool, "checkout", checkout)
    event.listen(engine, "before_cursor_execute", execute)
    try:
        yield trips
    finally:
        event.remove(engine, "before_cursor_execute", execute)
        event.remove(engine.pool, "checkout", checkout)


async def test_a_patch_takes_two_units_of_database_work_and_releases_once(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    location = await create(client, auth, length=8 * MiB)
    chunk = os.urandom(MiB)

    # The first PATCH also opens the staging area: its handle is recorded with
    # the bytes, in the same commit.
    with counting(running) as first:
        assert (await patch(client, auth, location, offset=0, data=chunk)).status_code == 204
    with counting(running) as steady:
        assert (await patch(client, auth, location, offset=MiB, data=chunk)).status_code == 204

    for trips in (first, steady):
        # Lease + row + parts in one unit; the bytes recorded and the lease
        # released in one commit. Before: four sessions (take the lease, read
        # the parts, record, release again).
        assert trips.checkouts == AUTH + 2, trips.statements
        # The take and the record: no UPDATE releases the lease on its own.
        updates = trips.upload_updates
        assert len(updates) == 2, updates
        assert not [s for s in updates if _is_release(s)], updates


async def test_the_last_patch_completes_in_one_more_unit(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    data = os.urandom(MiB + 10)
    location = await create(client, auth, length=len(data))
    assert (await patch(client, auth, location, offset=0, data=data[:MiB])).status_code == 204

    with counting(running) as last:
        response = await patch(client, auth, location, offset=MiB, data=data[MiB:])
    assert response.status_code == 204, response.text
    # Lease + row + parts; record (the lease kept for the completion); the file
    # made, the upload done and the lease released in one transaction.
    assert last.checkouts == AUTH + 3, last.statements
    updates = last.upload_updates
    assert len(updates) == 3, updates
    assert not [s for s in updates if _is_release(s)], updates


async def test_a_creation_without_bytes_is_one_unit(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    with counting(running) as trips:
        await create(client, auth, length=MiB)
    assert trips.checkouts == AUTH + 1, trips.statements
    assert trips.upload_updates == []


async def test_a_refused_patch_releases_the_lease_it_took(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    location = await create(client, auth, length=MiB)
    with counting(running) as trips:
        response = await patch(client, auth, location, offset=5, data=b"x")
    assert response.status_code == 409
    # Nothing was recorded, so the lease goes in a release of its own, once.
    updates = trips.upload_updates
    assert len([s for s in updates if _is_release(s)]) == 1, updates
    assert trips.checkouts == AUTH + 2
    head = await client.head(location, headers={**auth, **TUS})
    assert head.headers["upload-offset"] == "0"


def _is_release(statement: str) -> bool:
    """An UPDATE that sets the lease columns and nothing else of the upload
    (`updated_at` comes along by itself), matching the token: not a take,
    which matches a free lease (`lease_token IS NULL OR ...`)."""
    head, _, where = statement.partition(" WHERE ")
    assigned = {
        part.split("=")[0].strip() for part in head.removeprefix("UPDATE upload SET ").split(",")
    }
    return assigned - {"updated_at"} == {"lease_token", "lease_until"} and "IS NULL" not in where
