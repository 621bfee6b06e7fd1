"""Webhook administration: registered endpoints, failed deliveries and their
replay. The same operations behind `seau webhook …` and /api/v1/admin/webhooks."""

from __future__ import annotations

import builtins
import uuid
from contextlib import AbstractAsyncContextManager
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seau.db.base import utcnow
from seau.db.models import WebhookEndpoint
from seau.db.unit import DEFAULT_TIMEOUT_SECONDS, unit_of_work
from seau.errors import DeliveryNotFound, ValidationFailed, WebhookNotFound
from seau.events import repository
from seau.events.repository import Failure
from seau.events.types import (
    EventType,
    check_secret,
    format_event_types,
    new_secret,
    parse_failure_ref,
)

__all__ = ["Failure", "WebhookService"]


class WebhookService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        db_timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self._sessions = sessions
        self._db_timeout = db_timeout

    async def add(
        self, *, url: str, types: frozenset[EventType], secret: str | None = None
    ) -> WebhookEndpoint:
        """Register a receiver; without ``secret``, a new one is made (the answer
        is the only place it is shown). Raises `ValidationFailed`."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 2048:
            raise ValidationFailed("the URL must be an absolute http(s) URL")
        try:
            secret = new_secret() if secret is None else check_secret(secret)
        except ValueError as exc:
            raise ValidationFailed(str(exc)) from None
        endpoint = WebhookEndpoint(
            id=uuid.uuid4(),
            url=url,
            secret=secret,
            events=format_event_types(types),
            created_at=utcnow(),
        )
        async with self._unit() as session:
            await repository.add_endpoint(session, endpoint)
        return endpoint

    async def list(self) -> list[WebhookEndpoint]:
        async with self._unit() as session:
            return await repository.endpoints(session)

    async def remove(self, endpoint_id: uuid.UUID) -> None:
        """Remove a receiver and its pending and failed deliveries."""
        async with self._unit() as session:
            if not await repository.remove_endpoint(session, endpoint_id):
                raise WebhookNotFound()

    async def failures(self, *, limit: int = 100) -> builtins.list[Failure]:
        """Deliveries given up on, oldest event first."""
        async with self._unit() as session:
            return await repository.failures(session, limit=limit)

    async def replay(self, failure: str | uuid.UUID) -> int:
        """Send failed deliveries again (same `webhook-id`), with a fresh retry bound:
        each of the event's given its id as receivers see it (``msg_…``), or given a
        UUID the delivery of that id (or the deliveries of the event of that id).
        Returns how many; raises `DeliveryNotFound` when there is none."""
        if isinstance(failure, uuid.UUID):
            target, event_only = failure, False
        else:
            try:
                target, event_only = parse_failure_ref(failure)
            except ValueError:
                raise DeliveryNotFound() from None
        async with self._unit() as session:
            count = await repository.replay(session, target, event_only=event_only, now=utcnow())
        if not count:
            raise DeliveryNotFound()
        return count

    def _unit(self) -> AbstractAsyncContextManager[AsyncSession]:
        return unit_of_work(self._sessions, timeout_seconds=self._db_timeout)
