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

from sqlalchemy import bindparam, delete, false, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from seau.db.base import utcnow
from seau.db.models import User, WebhookEvent
from seau.events.types import EventType

_EVENTS = WebhookEvent.metadata.tables[WebhookEvent.__tablename__]
# Built once (the owner's subject read in the same statement): assembling it per
# event cost about 3 % of a small upload's event-loop time in a profile.
_RECORD = insert(_EVENTS).values(
    id=bindparam("p_id", type_=_EVENTS.c.id.type),
    type=bindparam("p_type", type_=_EVENTS.c.type.type),
    resource_id=bindparam("p_resource_id", type_=_EVENTS.c.resource_id.type),
    subject=select(User.subject)
    .where(User.id == bindparam("p_owner_id", type_=User.id.type))
    .scalar_subquery(),
    data=bindparam("p_data", type_=_EVENTS.c.data.type),
    created_at=bindparam("p_created_at", type_=_EVENTS.c.created_at.type),
    fanned_out=false(),
)


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
    await session.execute(
        _RECORD,
        {
            "p_id": uuid.uuid4(),
            "p_type": type.value,
            "p_resource_id": resource_id,
            "p_owner_id": owner_id,
            "p_data": json.dumps(data, ensure_ascii=False, separators=(",", ":")),
            "p_created_at": utcnow(),
        },
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
