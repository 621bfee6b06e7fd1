"""Delivery to a real receiver on 127.0.0.1 that verifies every request with the
`standardwebhooks` package and with an HMAC of its own, on every database."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import URL, make_url

from seau.db.base import utcnow
from seau.db.engine import create_engine, create_sessionmaker
from seau.db.models import WebhookDelivery
from seau.errors import DeliveryNotFound
from seau.events import repository
from seau.events.dispatcher import RetryPolicy
from seau.events.types import EventType, message_id
from seau.wiring import Parts
from tests.events.conftest import (
    deliveries_left,
    dispatcher,
    make_owner,
    open_test_parts,
    outbox_rows,
    running,
)
from tests.support.faultproxy import FaultProxy
from tests.support.webhook_receiver import Receiver, webhook_receiver


async def _chunks(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def _uploads(parts: Parts, owner: uuid.UUID, count: int) -> list[uuid.UUID]:
    ids = []
    for n in range(count):
        row = await parts.files.upload(
            owner_id=owner,
            name=f"f{n}.txt",
            content_type=None,
            data=_chunks(b"x" * n),
            max_bytes=10_000,
        )
        ids.append(row.id)
    return ids


async def test_events_arrive_signed_in_the_standard_webhooks_format(
    parts: Parts, receiver: Receiver
) -> None:
    owner = await make_owner(parts, subject="auth0|Alice")
    [file_id] = await _uploads(parts, owner, 1)
    await parts.files.rename(owner_id=owner, file_id=str(file_id), name="renamed.txt")
    await parts.files.delete(owner_id=owner, file_id=str(file_id))
    async with running(dispatcher(parts, receiver)):
        await receiver.wait_for(lambda r: len(r.delivered()) == 3)
        # Delivered rows go once the answers are recorded.
        await _until(lambda: _none_left(parts))
    assert receiver.refused == []
    by_type = {r.type: r.body for r in receiver.got}
    assert sorted(by_type) == ["file.deleted", "file.ready", "file.renamed"]
    assert len(set(receiver.ids())) == 3
    assert all(i.startswith("msg_") for i in receiver.ids())
    ready = by_type["file.ready"]
    assert set(ready) == {"type", "timestamp", "data"}
    assert ready["data"]["id"] == str(file_id)
    assert ready["data"]["subject"] == "auth0|Alice"
    assert ready["data"]["size"] == 0
    assert by_type["file.renamed"]["data"]["name"] == "renamed.txt"


async def test_a_receiver_down_then_up_gets_every_event_with_its_first_id(
    parts: Parts, receiver: Receiver
) -> None:
    owner = await make_owner(parts)
    await _uploads(parts, owner, 20)
    up_at = time.monotonic() + 1.5
    receiver.answer = lambda _id: 200 if time.monotonic() >= up_at else 503
    async with running(dispatcher(parts, receiver)):
        await receiver.wait_for(lambda r: len(set(r.delivered())) == 20)
    first_ids = {r.id for r in receiver.got if r.status == 503}
    assert first_ids == set(receiver.delivered())
    assert receiver.refused == []


async def test_a_receiver_down_for_a_minute_has_every_event_within_a_minute_of_coming_back(
    tmp_path: Path, receiver: Receiver
) -> None:
    """The issue's outage at the real retry policy (not the tests' fast one): 503 for
    60 s, then 200. Each event's retries back off from a second to the 60 s cap, so
    the last refused attempt schedules the next at most 72 s (the cap plus its 20 %
    jitter) ahead; every event arrives within that of the receiver coming back, with
    the id of its first attempt. The database is not what is tested: SQLite only."""
    async with open_test_parts("sqlite", tmp_path, receiver=True) as parts:
        owner = await make_owner(parts)
        await _uploads(parts, owner, 5)
        up_at = time.monotonic() + 60
        accepted_at: dict[str, float] = {}

        def answer(event_id: str) -> int:
            now = time.monotonic()
            if now < up_at:
                return 503
            accepted_at.setdefault(event_id, now)
            return 200

        receiver.answer = answer
        async with running(dispatcher(parts, receiver, retry=RetryPolicy())):
            await receiver.wait_for(lambda r: len(set(r.delivered())) == 5, seconds=60 + 90)
        assert await deliveries_left(parts) == 0
    refused = [r for r in receiver.got if r.status == 503]
    first_ids = {r.id for r in refused}
    assert first_ids == set(receiver.delivered()) == set(accepted_at)
    assert len(refused) >= 5 * 5, "each event was retried through the minute"
    late = max(accepted_at.values()) - up_at
    assert late <= 60 * 1.2 + 3, f"the last event came {late:.1f} s after the receiver did"
    assert receiver.refused == []


async def test_timeouts_and_redirects_are_retried_and_redirects_not_followed(
    parts: Parts, receiver: Receiver
) -> None:
    owner = await make_owner(parts)
    await _uploads(parts, owner, 1)
    answers = iter([307, 200])
    receiver.answer = lambda _id: next(answers)
    async with running(dispatcher(parts, receiver)):
        await receiver.wait_for(lambda r: len(r.delivered()) == 1)
    assert [r.status for r in receiver.got] == [307, 200]

    await _uploads(parts, owner, 1)
    receiver.got.clear()
    receiver.delay = 0.5
    receiver.answer = lambda _id: 200
    slow = dispatcher(parts, receiver, request_timeout=0.2)
    async with running(slow):
        # Every attempt times out: the receiver sees it again and again.
        await receiver.wait_for(lambda r: len(r.got) >= 2)
    assert len(set(receiver.ids())) == 1


async def test_past_the_bound_a_delivery_is_failed_listed_and_replayable(
    parts: Parts, receiver: Receiver
) -> None:
    """An event fails for good at two receivers (SEAU_WEBHOOK_URL's and a registered
    one): two failures under the one id they both saw. A replay by a delivery's id
    sends that one again; by the event's `msg_…` id, each of its failed deliveries."""
    owner = await make_owner(parts)
    extra = await parts.webhooks.add(
        url=receiver.url + "/extra", types=frozenset(EventType), secret=receiver.secret
    )
    await _uploads(parts, owner, 1)
    receiver.answer = lambda _id: 500
    short = RetryPolicy(first_delay=0.05, max_delay=0.1, give_up_after=timedelta(seconds=0.5))
    async with running(dispatcher(parts, receiver, retry=short)):
        await receiver.wait_for(lambda r: len(r.got) >= 4)
        await _until(lambda: _failed(parts, 2))
    failures = await parts.webhooks.failures()
    assert {f.endpoint_id for f in failures} == {None, extra.id}
    [event_id] = {f.event_id for f in failures}
    assert set(receiver.ids()) == {message_id(event_id)}
    for failure in failures:
        assert failure.type == "file.ready"
        assert failure.last_status == 500
        assert failure.attempts >= 2
    [default] = [f for f in failures if f.endpoint_id is None]
    assert default.url is None  # the SEAU_WEBHOOK_URL receiver
    tries = len(receiver.got)
    await asyncio.sleep(0.3)
    assert len(receiver.got) == tries  # given up: no more attempts

    receiver.answer = lambda _id: 200
    assert await parts.webhooks.replay(str(default.id)) == 1
    async with running(dispatcher(parts, receiver, retry=short)):
        await receiver.wait_for(lambda r: len(r.delivered()) == 1)
    assert [(r.path, r.id) for r in receiver.got if r.status == 200] == [
        ("/hook", message_id(event_id))
    ]
    assert await parts.webhooks.replay(message_id(event_id)) == 1  # the other receiver's
    with pytest.raises(DeliveryNotFound):
        await parts.webhooks.replay(message_id(event_id))  # none failed now
    async with running(dispatcher(parts, receiver, retry=short)):
        await receiver.wait_for(lambda r: len(r.delivered()) == 2)
    assert receiver.delivered() == [message_id(event_id)] * 2
    assert await parts.webhooks.failures() == []


async def _failed(parts: Parts, count: int) -> bool:
    return len(await parts.webhooks.failures()) == count


async def test_a_change_that_rolls_back_sends_nothing(parts: Parts, receiver: Receiver) -> None:
    owner = await make_owner(parts)

    async def failing() -> AsyncIterator[bytes]:
        yield b"some bytes"
        raise ConnectionResetError("the client went away")

    with contextlib.suppress(ConnectionResetError):
        await parts.files.upload(
            owner_id=owner, name="cut", content_type=None, data=failing(), max_bytes=100
        )
    [kept] = await _uploads(parts, owner, 1)
    async with running(dispatcher(parts, receiver)):
        await receiver.wait_for(lambda r: len(r.delivered()) == 1)
        await asyncio.sleep(0.3)
    assert [r.body["data"]["id"] for r in receiver.got] == [str(kept)]


async def test_the_event_filter_and_registered_endpoints_each_get_their_own(
    parts: Parts, receiver: Receiver
) -> None:
    owner = await make_owner(parts)
    extra = await parts.webhooks.add(
        url=receiver.url + "/extra", types=frozenset({EventType.FILE_READY}), secret=receiver.secret
    )
    [file_id] = await _uploads(parts, owner, 1)
    await parts.files.delete(owner_id=owner, file_id=str(file_id))
    only_deleted = dispatcher(parts, receiver, types=frozenset({EventType.FILE_DELETED}))
    async with running(only_deleted):
        await receiver.wait_for(lambda r: len(r.delivered()) == 2)
        await asyncio.sleep(0.3)
    assert sorted(r.type for r in receiver.got) == ["file.deleted", "file.ready"]
    assert extra.id in {e.id for e in await parts.webhooks.list()}
    await parts.webhooks.remove(extra.id)
    assert await parts.webhooks.list() == []


async def test_a_registered_endpoint_signs_with_its_own_secret_not_the_default_one(
    parts: Parts, receiver: Receiver
) -> None:
    """The default receiver verifies with SEAU_WEBHOOK_SECRET; the endpoint's with
    its own. The same endpoint's requests sent to a receiver holding the default
    secret fail its verification."""
    own_secret = "whsec_" + base64.b64encode(b"a registered endpoint's own key!").decode()
    assert own_secret != receiver.secret
    owner = await make_owner(parts)
    async with webhook_receiver(own_secret) as theirs:
        await parts.webhooks.add(
            url=theirs.url, types=frozenset({EventType.FILE_READY}), secret=own_secret
        )
        # The same secret, at the default receiver's address (its path told apart).
        await parts.webhooks.add(
            url=receiver.url + "/misdirected",
            types=frozenset({EventType.FILE_READY}),
            secret=own_secret,
        )
        [file_id] = await _uploads(parts, owner, 1)
        async with running(dispatcher(parts, receiver)):
            await theirs.wait_for(lambda r: len(r.delivered()) == 1)
            await receiver.wait_for(lambda r: len(r.delivered()) == 1 and len(r.refused) >= 1)
    assert theirs.refused == []
    assert theirs.got[0].body["data"]["id"] == str(file_id)
    # The default receiver got its own delivery, verified; the misdirected one never verified.
    assert [(r.path, r.id) for r in receiver.got] == [("/hook", theirs.got[0].id)]
    assert all(reason.startswith("standardwebhooks") for reason in receiver.refused)


async def test_a_receiver_refusing_connections_gets_the_event_once_it_listens(
    parts: Parts, receiver: Receiver
) -> None:
    """Nothing listens on the receiver's port (connections refused): the delivery is
    retried, and arrives with its event's id once something does."""
    owner = await make_owner(parts)
    [file_id] = await _uploads(parts, owner, 1)
    [event] = await outbox_rows(parts)
    with FaultProxy("127.0.0.1", int(receiver.url.rsplit(":", 1)[1].split("/")[0])) as proxy:
        proxy.refuse()
        # Sent to the proxy's port, where nothing listens until it passes through.
        closed = replace(receiver, url=f"http://{proxy.address}/hook")
        async with running(dispatcher(parts, closed)):
            await _until(lambda: _attempts_failed(parts, at_least=2))
            assert receiver.got == []
            [(_, error)] = await _attempt_records(parts)
            assert error is not None
            assert "ConnectError" in error, error
            proxy.passthrough()
            await receiver.wait_for(lambda r: len(r.delivered()) == 1)
            await _until(lambda: _none_left(parts))
    assert receiver.delivered() == [f"msg_{event.id.hex}"]
    assert receiver.got[0].body["data"]["id"] == str(file_id)
    assert len(receiver.got) == 1
    assert proxy.connections_accepted >= 1


async def test_two_instances_deliver_each_event_once(parts: Parts, receiver: Receiver) -> None:
    owner = await make_owner(parts)
    ids = await _uploads(parts, owner, 150)
    # Two dispatchers with their own connections, as two instances would have.
    async with (
        _instance(parts) as other,
        running(dispatcher(parts, receiver), dispatcher(other, receiver)),
    ):
        await receiver.wait_for(lambda r: len(r.got) >= len(ids), seconds=60)
        await asyncio.sleep(0.5)
    assert len(receiver.got) == len(ids)
    assert len(set(receiver.ids())) == len(ids)
    assert {r.body["data"]["id"] for r in receiver.got} == {str(i) for i in ids}


async def test_a_delivery_claimed_by_an_instance_that_died_is_sent_by_another(
    parts: Parts, receiver: Receiver
) -> None:
    owner = await make_owner(parts)
    await _uploads(parts, owner, 1)
    now = utcnow()
    async with parts.sessions() as session:
        await repository.fan_out(session, default_types=frozenset(EventType), now=now, limit=10)
    async with parts.sessions() as session:
        # Claimed, then the instance is gone before it could send or record anything.
        claimed = await repository.claim(
            session,
            token="dead",
            now=now,
            until=now + timedelta(seconds=1),
            limit=10,
            with_default=True,
        )
    assert len(claimed) == 1
    async with running(dispatcher(parts, receiver)):
        await asyncio.sleep(0.5)
        assert receiver.got == []  # the claim holds while its lease does
        await receiver.wait_for(lambda r: len(r.delivered()) == 1)
    assert receiver.delivered() == [f"msg_{claimed[0].event_id.hex}"]


async def test_a_network_partition_from_the_database_mid_delivery_loses_nothing(
    parts: Parts, receiver: Receiver
) -> None:
    """Not a restart (tests/events/test_database_restart.py restarts real servers): the
    server keeps running while the dispatcher's connections to it are cut (reset, new
    ones refused) with a batch at the receiver. The receiver answers during the cut, so
    the dispatcher cannot record the answers: the deliveries stay claimed until their
    lease ends (5 s here) and are sent again then, under the same ids, and recorded."""
    url = make_url(parts.settings.effective_database_url)
    if url.get_backend_name() == "sqlite":
        pytest.skip("SQLite is a file: there is no connection to cut")
    owner = await make_owner(parts)
    ids = await _uploads(parts, owner, 30)
    receiver.delay = 0.5  # the batch is in flight when the connections go
    assert url.host is not None
    assert url.port is not None
    with FaultProxy(url.host, url.port) as proxy:
        host, port = proxy.address.rsplit(":", 1)
        async with (
            _instance(parts, url.set(host=host, port=int(port))) as through_proxy,
            running(dispatcher(through_proxy, receiver, request_timeout=1, db_timeout=2)),
        ):
            await receiver.wait_for(lambda r: len(r.started) >= 1)
            proxy.refuse()  # open connections reset, new ones refused
            await receiver.wait_for(lambda r: len(r.got) >= 1)
            await asyncio.sleep(1.5)
            answered_in_the_cut = set(receiver.delivered())
            proxy.passthrough()
            await _until(lambda: _none_left(parts), seconds=30)
    assert answered_in_the_cut
    ids_by_file: dict[str, set[str]] = {}
    for r in receiver.got:
        ids_by_file.setdefault(r.body["data"]["id"], set()).add(r.id)
    assert set(ids_by_file) == {str(i) for i in ids}
    assert all(len(told) == 1 for told in ids_by_file.values())
    # What was answered during the cut was not recorded: it came again, once the lease ended.
    again = [r.id for r in receiver.got if r.id in answered_in_the_cut]
    assert len(again) >= 2 * len(answered_in_the_cut)
    assert receiver.refused == []


@contextlib.asynccontextmanager
async def _instance(parts: Parts, url: URL | None = None) -> AsyncIterator[Parts]:
    """Another instance on the same database: its own engine and connections."""
    engine = create_engine(
        (url or make_url(parts.settings.effective_database_url)).render_as_string(
            hide_password=False
        )
    )
    try:
        yield replace(parts, engine=engine, sessions=create_sessionmaker(engine))
    finally:
        await engine.dispose()


async def _until(check: Callable[[], Awaitable[object]], *, seconds: float = 10) -> None:
    """Poll the database until ``check`` finds something (no event tells us)."""
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110  (the database has no event to wait on)
            await asyncio.sleep(0.05)


async def _none_left(parts: Parts) -> bool:
    return await deliveries_left(parts) == 0


async def _attempt_records(parts: Parts) -> list[tuple[int, str | None]]:
    async with parts.sessions() as session:
        rows = await session.execute(select(WebhookDelivery.attempts, WebhookDelivery.last_error))
        return [(attempts, error) for attempts, error in rows]


async def _attempts_failed(parts: Parts, *, at_least: int) -> bool:
    return any(attempts >= at_least for attempts, _ in await _attempt_records(parts))
