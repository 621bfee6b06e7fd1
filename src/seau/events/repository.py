"""The SQL of webhooks: plain functions of a session. A function that writes
commits what it wrote, so each is a whole unit of work for its caller."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, exists, false, func, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from seau.db.models import DeliveryState, WebhookDelivery, WebhookEndpoint, WebhookEvent
from seau.events.types import EventType, parse_event_types


@dataclass(frozen=True, slots=True, kw_only=True)
class Claimed:
    """A delivery this instance claimed, with what sending it needs."""

    id: uuid.UUID
    attempts: int
    started_at: datetime
    """When this delivery began (or was replayed): the retry bound counts from it."""
    endpoint_id: uuid.UUID | None
    url: str | None
    """The registered endpoint's; None for SEAU_WEBHOOK_URL."""
    secret: str | None
    event_id: uuid.UUID
    type: str
    subject: str | None
    data: str
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    id: uuid.UUID
    event_id: uuid.UUID
    type: str
    endpoint_id: uuid.UUID | None
    url: str | None
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: datetime


async def fan_out(
    session: AsyncSession,
    *,
    default_types: frozenset[EventType] | None,
    now: datetime,
    limit: int,
) -> int:
    """Turn up to ``limit`` new events into one pending delivery per receiver that
    wants their type (``default_types``: SEAU_WEBHOOK_URL's, None without it).
    An event nobody wants goes at once. Returns how many events were handled.

    Two instances never fan out one event twice: the rows are taken with
    `FOR UPDATE SKIP LOCKED` (PostgreSQL, MariaDB) and each is marked by a
    conditional update that, on SQLite, only the first writer's finds unmarked.
    """
    found = (
        await session.execute(
            select(WebhookEvent.id, WebhookEvent.type)
            .where(WebhookEvent.fanned_out == false())
            .order_by(WebhookEvent.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not found:
        await session.rollback()
        return 0
    mine: list[tuple[uuid.UUID, str]] = []
    if session.get_bind().dialect.name == "sqlite":
        for event_id, type_ in found:
            marked = await session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id == event_id, WebhookEvent.fanned_out == false())
                .values(fanned_out=True)
            )
            if marked.rowcount:  # type: ignore[attr-defined]
                mine.append((event_id, type_))
    else:
        await session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id.in_([event_id for event_id, _ in found]))
            .values(fanned_out=True)
        )
        mine = [(event_id, type_) for event_id, type_ in found]
    endpoints: list[tuple[uuid.UUID | None, frozenset[EventType]]] = [
        (endpoint_id, parse_event_types(events))
        for endpoint_id, events in (
            await session.execute(select(WebhookEndpoint.id, WebhookEndpoint.events))
        ).all()
    ]
    if default_types is not None:
        endpoints.append((None, default_types))
    deliveries: list[WebhookDelivery] = []
    unwanted: list[uuid.UUID] = []
    for event_id, type_ in mine:
        wanted = [e for e, types in endpoints if type_ in types]
        if not wanted:
            unwanted.append(event_id)
        deliveries += [
            WebhookDelivery(
                id=uuid.uuid4(),
                event_id=event_id,
                endpoint_id=endpoint_id,
                state=DeliveryState.PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
            for endpoint_id in wanted
        ]
    session.add_all(deliveries)
    if unwanted:
        await session.execute(delete(WebhookEvent).where(WebhookEvent.id.in_(unwanted)))
    await session.commit()
    return len(mine)


async def claim(
    session: AsyncSession,
    *,
    token: str,
    now: datetime,
    until: datetime,
    limit: int,
    with_default: bool,
) -> list[Claimed]:
    """Claim up to ``limit`` due deliveries for ``token`` until ``until``.

    The claim is a lease: it moves the attempt time to ``until``, so no other
    instance finds the delivery due while this one sends it; should this one
    die, it is due again then. PostgreSQL and MariaDB skip the rows another
    claim holds (`FOR UPDATE SKIP LOCKED`); on SQLite, whose writers take turns,
    the update's own condition leaves the rows another claim took first.
    ``with_default``: also the deliveries to SEAU_WEBHOOK_URL (only an instance
    that knows that URL sends them).
    """
    due = select(WebhookDelivery.id).where(
        WebhookDelivery.state == DeliveryState.PENDING, WebhookDelivery.next_attempt_at <= now
    )
    if not with_default:
        due = due.where(WebhookDelivery.endpoint_id.is_not(None))
    ids = list(
        await session.scalars(
            due.order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not ids:
        await session.rollback()
        return []
    await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id.in_(ids),
            WebhookDelivery.state == DeliveryState.PENDING,
            WebhookDelivery.next_attempt_at <= now,
        )
        .values(claim_token=token, next_attempt_at=until)
    )
    rows = (
        await session.execute(
            select(
                WebhookDelivery.id,
                WebhookDelivery.attempts,
                WebhookDelivery.created_at.label("started_at"),
                WebhookDelivery.endpoint_id,
                WebhookEndpoint.url,
                WebhookEndpoint.secret,
                WebhookEvent.id.label("event_id"),
                WebhookEvent.type,
                WebhookEvent.subject,
                WebhookEvent.data,
                WebhookEvent.created_at,
            )
            .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
            .outerjoin(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.claim_token == token)
        )
    ).all()
    await session.commit()
    return [Claimed(**row._asdict()) for row in rows]


async def delivered(
    session: AsyncSession, delivery_ids: Sequence[uuid.UUID], *, token: str
) -> None:
    """The deliveries a step's receivers accepted, in one statement and commit (on
    SQLite each commit is an fsync, and uploads wait for the one writer)."""
    await session.execute(
        delete(WebhookDelivery).where(
            WebhookDelivery.id.in_(delivery_ids), WebhookDelivery.claim_token == token
        )
    )
    await session.commit()


async def attempt_failed(
    session: AsyncSession,
    delivery_id: uuid.UUID,
    *,
    token: str,
    attempts: int,
    retry_at: datetime | None,
    status: int | None,
    error: str | None,
) -> None:
    """Record a failed attempt: due again at ``retry_at``, or failed for good (None)."""
    values: dict[str, object] = {
        "attempts": attempts,
        "claim_token": None,
        "last_status": status,
        "last_error": None if error is None else error[:255],
    }
    if retry_at is None:
        values["state"] = DeliveryState.FAILED
    else:
        values["next_attempt_at"] = retry_at
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.claim_token == token)
        .values(**values)
    )
    await session.commit()


async def forget_delivered(session: AsyncSession) -> None:
    """Delete the events whose every delivery is done."""
    await session.execute(
        delete(WebhookEvent).where(
            WebhookEvent.fanned_out == true(),
            ~exists().where(WebhookDelivery.event_id == WebhookEvent.id),
        )
    )
    await session.commit()


async def backlog(session: AsyncSession) -> tuple[int, datetime | None]:
    """Deliveries still pending plus events not fanned out yet, and the oldest
    event among them."""
    pending = await session.scalar(
        select(func.count())
        .select_from(WebhookDelivery)
        .where(WebhookDelivery.state == DeliveryState.PENDING)
    )
    new = await session.scalar(
        select(func.count()).select_from(WebhookEvent).where(WebhookEvent.fanned_out == false())
    )
    oldest_new = await session.scalar(
        select(func.min(WebhookEvent.created_at)).where(WebhookEvent.fanned_out == false())
    )
    oldest_pending = await session.scalar(
        select(func.min(WebhookEvent.created_at))
        .join(WebhookDelivery, WebhookDelivery.event_id == WebhookEvent.id)
        .where(WebhookDelivery.state == DeliveryState.PENDING)
    )
    moments = [m for m in (oldest_new, oldest_pending) if m is not None]
    return int(pending or 0) + int(new or 0), min(moments) if moments else None


async def failures(session: AsyncSession, *, limit: int) -> list[Failure]:
    rows = (
        await session.execute(
            select(
                WebhookDelivery.id,
                WebhookDelivery.event_id,
                WebhookEvent.type,
                WebhookDelivery.endpoint_id,
                WebhookEndpoint.url,
                WebhookDelivery.attempts,
                WebhookDelivery.last_status,
                WebhookDelivery.last_error,
                WebhookEvent.created_at,
            )
            .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
            .outerjoin(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.state == DeliveryState.FAILED)
            .order_by(WebhookEvent.created_at, WebhookDelivery.id)
            .limit(limit)
        )
    ).all()
    return [Failure(**row._asdict()) for row in rows]


async def replay(
    session: AsyncSession, target: uuid.UUID, *, event_only: bool, now: datetime
) -> int:
    """Make failed deliveries pending again, with a fresh retry bound: those of the
    event ``target`` (one per receiver it failed for), and with ``event_only`` false
    also the delivery whose id is ``target``. Returns how many."""
    which = (
        WebhookDelivery.event_id == target
        if event_only
        else or_(WebhookDelivery.id == target, WebhookDelivery.event_id == target)
    )
    result = await session.execute(
        update(WebhookDelivery)
        .where(which, WebhookDelivery.state == DeliveryState.FAILED)
        .values(
            state=DeliveryState.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            claim_token=None,
        )
    )
    await session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


async def add_endpoint(session: AsyncSession, endpoint: WebhookEndpoint) -> None:
    session.add(endpoint)
    await session.commit()


async def endpoints(session: AsyncSession) -> list[WebhookEndpoint]:
    return list(
        await session.scalars(
            select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
        )
    )


async def remove_endpoint(session: AsyncSession, endpoint_id: uuid.UUID) -> bool:
    """Remove an endpoint and its deliveries (their rows cascade)."""
    await session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id))
    result = await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))
    await session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]
