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
from seau.db.engine import WRITE_HERE
from seau.db.models import User, WebhookEndpoint, WebhookEvent
from seau.events.types import EventType

_EVENTS = WebhookEvent.metadata.tables[WebhookEvent.__tablename__]
_ENDPOINTS = WebhookEndpoint.metadata.tables[WebhookEndpoint.__tablename__]

KEEP_EVERY_EVENT = "seau.events.keep_every_event"
"""The `Session.info` key that says a receiver is configured outside the database
(``SEAU_WEBHOOK_URL``): every event is then kept. Without it, an event is kept only
while some endpoint is registered (`seau webhook add`), in the statement that writes
it: the dispatcher would drop an event nobody wants at once anyway, and a server
without receivers then writes no event row, fans nothing out and wakes nothing."""

# Built once, with the owner's subject read in the same statement: assembling it per
# event cost about 3 % of a small upload's event-loop time in a profile.
_SUBJECT = (
    select(User.subject)
    .where(User.id == bindparam("p_owner_id", type_=User.id.type))
    .scalar_subquery()
)
_VALUES = {
    "id": bindparam("p_id", type_=_EVENTS.c.id.type),
    "type": bindparam("p_type", type_=_EVENTS.c.type.type),
    "resource_id": bindparam("p_resource_id", type_=_EVENTS.c.resource_id.type),
    "subject": _SUBJECT,
    "data": bindparam("p_data", type_=_EVENTS.c.data.type),
    "created_at": bindparam("p_created_at", type_=_EVENTS.c.created_at.type),
    "fanned_out": false(),
}
# Written after the change it tells of, in the same transaction: on SQLite without a
# trip to the driver's thread (`WRITE_HERE`).
_RECORD = insert(_EVENTS).values(**_VALUES).execution_options(**{WRITE_HERE: True})
# One row when at least one endpoint is registered, none otherwise: a SELECT with a
# FROM (and LIMIT 1) is valid on the three databases, where one with a WHERE but no
# FROM is not.
_RECORD_IF_WANTED = (
    insert(_EVENTS)
    .from_select(
        list(_VALUES),
        select(*(value.label(name) for name, value in _VALUES.items()))
        .select_from(_ENDPOINTS)
        .limit(1),
    )
    .execution_options(**{WRITE_HERE: True})
)


async def record(
    session: AsyncSession,
    *,
    type: EventType,
    resource_id: uuid.UUID,
    owner_id: uuid.UUID,
    data: Mapping[str, object],
) -> bool:
    """Add an event to the session's transaction, if a receiver may want it
    (`KEEP_EVERY_EVENT`); returns whether it did. ``data`` is what the receiver
    gets but the owner's subject, which is read in the same statement."""
    result = await session.execute(
        _RECORD if session.info.get(KEEP_EVERY_EVENT, False) else _RECORD_IF_WANTED,
        {
            "p_id": uuid.uuid4(),
            "p_type": type.value,
            "p_resource_id": resource_id,
            "p_owner_id": owner_id,
            "p_data": json.dumps(data, ensure_ascii=False, separators=(",", ":")),
            "p_created_at": utcnow(),
        },
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


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
