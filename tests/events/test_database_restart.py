"""The database server really restarts while real `seau serve` instances deliver.

A PostgreSQL, then a MariaDB, of the test's own (`tests.support.private_database`):
two instances share it; files are made through them; while the receiver holds the
deliveries it has begun (claimed and in flight), the server is stopped the way a
crash stops it (`pg_ctl stop -m immediate`, SIGKILL to mariadbd), and started again
on the same port and data a couple of seconds later. Meanwhile an upload is refused
(503, and no event for it). Then the held deliveries are answered (their instances
record them on the restarted server), more files are made, and every file made is
told, under one webhook-id (for the files made before, the id their event had in the
outbox just before the crash), and nothing else is.

The answers are held until the server is back so that each instance records what it
sent: an answer that found the database gone would leave its delivery claimed until
the claim's lease ends (30 s + the database timeout at `seau serve`'s settings) and
be sent again then, the path of an instance that dies
(`tests/events/test_instances.py`) and of a network partition
(`tests/events/test_dispatcher.py`, with a short lease).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from seau.db.models import WebhookEvent
from seau.events.types import message_id
from tests.events.test_instances import LIMITS, _make, instances
from tests.support.private_database import private_database
from tests.support.webhook_receiver import Receiver, webhook_receiver

BEFORE = 40
"""Files made before the restart."""
AFTER = 10
"""Files made once the server is back."""
DOWN_SECONDS = 2.0


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("postgresql", marks=pytest.mark.postgresql),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ],
)
async def test_a_database_server_restarting_mid_delivery_loses_no_event(
    kind: Literal["mysql", "postgresql"], tmp_path: Path
) -> None:
    opened = asyncio.Event()

    async def hold(_body: dict[str, Any]) -> None:
        await opened.wait()

    with private_database(kind) as database:
        async with (
            webhook_receiver() as receiver,
            instances(
                database.url, tmp_path, receiver, extra={"SEAU_DATABASE_TIMEOUT_SECONDS": "2"}
            ) as seau,
        ):
            receiver.on_arrival = hold
            clients = [
                httpx.AsyncClient(base_url=s.url, timeout=30, limits=LIMITS) for s in seau.servers
            ]
            try:
                await asyncio.gather(*(_make(clients[i % 2], seau.auth, i) for i in range(BEFORE)))
                await receiver.wait_for(lambda r: len(r.started) >= 1)
                # The outbox as the server is about to lose it: each file's event id.
                committed = await _event_ids(database.url)
                assert len(committed) == BEFORE

                started = time.monotonic()
                await asyncio.to_thread(database.stop, "immediate")
                in_flight = {i for _path, i in receiver.started}
                assert not database.running
                refused = await clients[0].post(
                    "/api/v1/files",
                    params={"name": "during-the-outage.bin"},
                    content=b"never stored",
                    headers=seau.auth,
                )
                assert refused.status_code == 503, refused.text
                assert refused.json()["code"] == "database_unavailable"
                await asyncio.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - started)))
                await asyncio.to_thread(database.start)
                assert receiver.got == [], "an answer came while the server was down"

                opened.set()
                await asyncio.gather(
                    *(_make(clients[i % 2], seau.auth, i) for i in range(BEFORE, BEFORE + AFTER))
                )
                try:
                    await receiver.wait_for(
                        lambda r: len(_names(r)) >= BEFORE + AFTER and _all_answered(r),
                        seconds=60,
                    )
                except TimeoutError:
                    logs = "\n".join(s.log.read_text()[-3000:] for s in seau.servers)
                    pytest.fail(
                        f"{len(_names(receiver))} files told of {BEFORE + AFTER}, "
                        f"{len(receiver.started)} requests begun, {len(receiver.got)} answered; "
                        f"the instances' logs:\n{logs}"
                    )
            finally:
                opened.set()
                for client in clients:
                    await client.aclose()
    assert in_flight, "nothing was in flight when the server stopped"
    assert in_flight <= set(receiver.delivered())
    names = _names(receiver)
    assert sorted(names) == [f"f-{i:04d}.bin" for i in range(BEFORE + AFTER)]
    # One id per file, the same on any retry; each file its own. Those of the files
    # made before the restart are the ids their events had in the outbox then.
    assert all(len(ids) == 1 for ids in names.values()), names
    assert len({i for ids in names.values() for i in ids}) == BEFORE + AFTER
    ids_by_file = {r.body["data"]["id"]: r.id for r in receiver.got}
    assert {f: ids_by_file[f] for f in committed} == committed
    assert {r.type for r in receiver.got} == {"file.ready"}
    assert receiver.refused == []


def _names(receiver: Receiver) -> dict[str, set[str]]:
    """The webhook-ids each file's `file.ready` was delivered under."""
    found: dict[str, set[str]] = {}
    for r in receiver.got:
        if r.status == 200:
            found.setdefault(r.body["data"]["name"], set()).add(r.id)
    return found


def _all_answered(receiver: Receiver) -> bool:
    return len(receiver.got) >= len(receiver.started)


async def _event_ids(url: str) -> dict[str, str]:
    """The `file.ready` events in the outbox: the file's id → the event's webhook-id."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(WebhookEvent.resource_id, WebhookEvent.id).where(
                    WebhookEvent.type == "file.ready"
                )
            )
            return {str(resource): message_id(event) for resource, event in rows}
    finally:
        await engine.dispose()
