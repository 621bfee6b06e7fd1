"""Parts on each database, a receiver, and dispatchers with short retry delays."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from seau.db.models import User, WebhookDelivery, WebhookEvent
from seau.events.dispatcher import Dispatcher, Receiver, RetryPolicy
from seau.events.outbox import Wakeup
from seau.events.types import EventType
from seau.settings import Settings
from seau.wiring import Parts, open_parts
from tests.conftest import TEST_SECRET
from tests.support.databases import Kind, scratch_database
from tests.support.webhook_receiver import Receiver as TestReceiver
from tests.support.webhook_receiver import webhook_receiver

KINDS: list[Kind] = ["sqlite", "mysql", "postgresql"]
FAST = RetryPolicy(first_delay=0.05, max_delay=0.3, give_up_after=timedelta(minutes=5))


RECEIVER_SECRET = "whsec_" + base64.b64encode(b"events tests' receiver secret,32").decode()


@pytest.fixture(params=KINDS)
async def parts(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Parts]:
    """Parts of a server with SEAU_WEBHOOK_URL set (to a receiver that never runs):
    every event is kept in the outbox, for the tests to read."""
    async with open_test_parts(request.param, tmp_path, receiver=True) as built:
        yield built


@contextlib.asynccontextmanager
async def open_test_parts(kind: Kind, tmp_path: Path, *, receiver: bool) -> AsyncIterator[Parts]:
    with scratch_database(kind, tmp_path) as url:
        settings = Settings(
            data_dir=tmp_path,
            database_url=url,
            storage_url=(tmp_path / "objects").as_uri(),
            secret_key=TEST_SECRET,
            upload_expiry_seconds=3600,
            webhook_url="http://127.0.0.1:9/hook" if receiver else None,
            webhook_secret=RECEIVER_SECRET if receiver else None,
        )
        async with open_parts(settings, migrate=True) as built:
            yield built


@pytest.fixture
async def receiver() -> AsyncIterator[TestReceiver]:
    async with webhook_receiver() as running:
        yield running


async def make_owner(parts: Parts, subject: str | None = None) -> uuid.UUID:
    owner = User(id=uuid.uuid4(), subject=subject or f"auth0|{uuid.uuid4().hex[:8]}")
    async with parts.sessions() as session:
        session.add(owner)
        await session.commit()
    return owner.id


def dispatcher(
    parts: Parts,
    receiver: TestReceiver,
    *,
    types: frozenset[EventType] = frozenset(EventType),
    retry: RetryPolicy = FAST,
    request_timeout: float = 5.0,
    db_timeout: float = 10,
) -> Dispatcher:
    """A dispatcher as `seau serve` builds one; its claims' lease is
    ``3 * request_timeout + db_timeout`` seconds."""
    return Dispatcher(
        sessions=parts.sessions,
        db_timeout=db_timeout,
        default=Receiver(url=receiver.url, secret=receiver.secret, types=types),
        wakeup=Wakeup(),
        retry=retry,
        poll_seconds=0.05,
        request_timeout=request_timeout,
    )


@contextlib.asynccontextmanager
async def running(*dispatchers: Dispatcher) -> AsyncIterator[None]:
    """The dispatchers' loops, as `seau serve` runs them, for the block's time."""
    tasks = [asyncio.create_task(d.run()) for d in dispatchers]
    try:
        yield
    finally:
        for d in dispatchers:
            d.stop()
        await asyncio.wait(tasks, timeout=15)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for d in dispatchers:
            await d.aclose()


async def outbox_rows(parts: Parts) -> list[WebhookEvent]:
    async with parts.sessions() as session:
        return list(await session.scalars(select(WebhookEvent).order_by(WebhookEvent.created_at)))


async def deliveries_left(parts: Parts) -> int:
    async with parts.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(WebhookDelivery)) or 0)
