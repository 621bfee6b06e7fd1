"""Writing events: plain functions of the session of the change they report.

The caller records the event before its commit, in the same transaction, so the
event exists if and only if the change does; it never commits here. Delivery is
the dispatcher's (`seau.events.dispatcher`), which any instance runs.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping

from sqlalchemy import delete, false, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from seau.db.base import utcnow
from seau.db.models import User, WebhookEvent
from seau.events.types import EventType

_EVENTS = WebhookEvent.metadata.tables[WebhookEvent.__tablename__]


async def record(
    session: AsyncSession,
    *,
    type: EventType,
    resource_id: uuid.UUID,
    owner_id: uuid.UUID,
    data: Mapping[str, object],
) -> None:
    """Add an event to the session's transaction. ``data`` is what the receiver
    gets but the owner's subject, which is read in the same statement."""
    subject = select(User.subject).where(User.id == owner_id).scalar_subquery()
    await session.execute(
        insert(_EVENTS).values(
            id=uuid.uuid4(),
            type=type.value,
            resource_id=resource_id,
            subject=subject,
            data=json.dumps(data, ensure_ascii=False, separators=(",", ":")),
            created_at=utcnow(),
            fanned_out=False,
        )
    )


async def withdraw(session: AsyncSession, *, resource_id: uuid.UUID) -> bool:
    """Take back the `file.ready` of a file being undone (a multipart request
    that failed after it), if no receiver has been given it yet. False when it
    has: the undo must then be told as a `file.deleted`.

    Racing the dispatcher is safe: fanning out marks the row in a transaction,
    so this delete either removes the unmarked row or, having waited for that
    transaction, finds it marked and removes nothing.
    """
    result = await session.execute(
        delete(WebhookEvent).where(
            WebhookEvent.resource_id == resource_id,
            WebhookEvent.type == EventType.FILE_READY.value,
            WebhookEvent.fanned_out == false(),
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


class Wakeup:
    """Tells this process's dispatcher that an event was committed, so that it
    need not wait for its next poll. Other instances' events wait for the poll."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def __call__(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> None:
        """Until woken or ``seconds`` have passed, whichever comes first."""
        try:
            async with asyncio.timeout(seconds):
                await self._event.wait()
        except TimeoutError:
            pass
        self._event.clear()
