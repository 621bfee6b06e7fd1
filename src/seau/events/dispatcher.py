"""Delivering the outbox as Standard Webhooks, from any number of instances.

A loop in every `seau serve` process: fan new events out into deliveries,
claim the due ones (`seau.events.repository.claim`), POST each, signed, and
record the answer. A 2xx deletes the delivery; anything else (another status,
a timeout, a refused connection) makes it due again after an exponential
backoff, with the same `webhook-id`, until `RetryPolicy.give_up_after` has
passed since its first attempt; it is then kept as failed (`seau webhook
failures`, `seau webhook replay`). Redirects are not followed. Delivery runs
beside the requests, never in them: a request only writes its event row.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook

from seau import __version__
from seau.db.base import utcnow
from seau.db.unit import unit_of_work
from seau.events import repository
from seau.events.outbox import Wakeup
from seau.events.repository import Claimed
from seau.events.types import EventType, message_id

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("seau.webhooks")

# What a delivery attempt ended as, for the metrics.
DELIVERED = "delivered"
RETRYING = "retrying"
FAILED = "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Receiver:
    """The receiver of SEAU_WEBHOOK_URL."""

    url: str
    secret: str
    types: frozenset[EventType]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    first_delay: float = 1.0
    """Seconds before the first retry; each next one waits twice as long."""
    max_delay: float = 60.0
    """The cap: a receiver back after any outage has every event within about a
    minute (plus jitter) of its next answer."""
    give_up_after: timedelta = timedelta(hours=24)

    def delay(self, attempts: int) -> float:
        """Seconds before the next attempt after ``attempts`` failed ones, with
        ±20 % jitter so that instances and deliveries spread out."""
        base: float = min(self.max_delay, self.first_delay * 2.0 ** min(attempts - 1, 32))
        return base * random.uniform(0.8, 1.2)  # noqa: S311  (spreading load, not a secret)


class Dispatcher:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        db_timeout: float,
        default: Receiver | None,
        wakeup: Wakeup,
        retry: RetryPolicy | None = None,
        poll_seconds: float = 1.0,
        batch: int = 64,
        request_timeout: float = 10.0,
        on_attempt: Callable[[str], None] | None = None,
    ) -> None:
        """``on_attempt`` is told each attempt's outcome (`DELIVERED`, `RETRYING`,
        `FAILED`). Builds its HTTP client, which connects on first use."""
        self._sessions = sessions
        self._db_timeout = db_timeout
        self._default = default
        self._wakeup = wakeup
        self._retry = retry or RetryPolicy()
        self._poll = poll_seconds
        self._batch = batch
        self._on_attempt = on_attempt or (lambda _outcome: None)
        # Long enough for every attempt of a batch (they run at once) to end.
        self._lease = timedelta(seconds=request_timeout * 3 + db_timeout)
        self._request_timeout = request_timeout
        self._client: httpx.AsyncClient | None = None
        self._last_forget = 0.0
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Make `run` return after the step in flight, whose answers are recorded
        (cancelling it mid-statement would leave a connection to the pool's
        garbage collector)."""
        self._stopping.set()
        self._wakeup()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def report_to(self, on_attempt: Callable[[str], None]) -> None:
        """Tell ``on_attempt`` each attempt's outcome from now on (the metrics)."""
        self._on_attempt = on_attempt

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def _http(self) -> httpx.AsyncClient:
        """The HTTP client, built for the first delivery: httpx (and the command-line
        libraries it imports, about 0.3 s and several MiB) stays out of a server that
        never sends a webhook."""
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(
                timeout=self._request_timeout,
                follow_redirects=False,
                headers={"user-agent": f"seau/{__version__}"},
                limits=httpx.Limits(max_connections=self._batch),
            )
        return self._client

    async def run(self) -> None:
        """Deliver until cancelled. A step that fails (the database is down) is
        logged and tried again after the poll interval."""
        while not self._stopping.is_set():
            try:
                worked = await self.step()
            except Exception:
                log.warning("webhook dispatch failed; trying again", exc_info=True)
                worked = 0
            if not worked and not self._stopping.is_set():
                await self._wakeup.wait(self._poll)

    async def step(self) -> int:
        """Fan out new events, then send the deliveries due now; returns how many
        events and deliveries were handled (0: nothing to do)."""
        now = utcnow()
        async with self._unit() as session:
            fanned = await repository.fan_out(
                session,
                default_types=None if self._default is None else self._default.types,
                now=now,
                limit=self._batch,
            )
        token = secrets.token_hex(16)
        async with self._unit() as session:
            claimed = await repository.claim(
                session,
                token=token,
                now=now,
                until=now + self._lease,
                limit=self._batch,
                with_default=self._default is not None,
            )
        if claimed:
            accepted: list[uuid.UUID] = []
            try:
                async with asyncio.TaskGroup() as group:
                    for delivery in claimed:
                        group.create_task(self._attempt(delivery, token, accepted))
            finally:
                # Recorded even if the step is cancelled now: a delivery answered
                # 2xx and left pending would be sent again when its lease ends.
                # One commit for the batch, not one per delivery.
                if accepted:
                    await asyncio.shield(self._record_delivered(accepted, token))
        loop_time = asyncio.get_running_loop().time()
        if loop_time - self._last_forget > 60:
            self._last_forget = loop_time
            async with self._unit() as session:
                await repository.forget_delivered(session)
        return fanned + len(claimed)

    async def backlog(self) -> tuple[int, float]:
        """Events not delivered yet, and the age in seconds of the oldest."""
        async with self._unit() as session:
            count, oldest = await repository.backlog(session)
        age = 0.0 if oldest is None else max(0.0, (utcnow() - oldest).total_seconds())
        return count, age

    async def _attempt(self, delivery: Claimed, token: str, accepted: list[uuid.UUID]) -> None:
        """POST ``delivery``; a 2xx joins ``accepted`` (recorded with the batch),
        a failure is recorded at once (its retry time or its failure)."""
        import httpx  # loaded by `_http` below

        url, secret = delivery.url, delivery.secret
        if delivery.endpoint_id is None:
            assert self._default is not None  # claimed only with a default receiver
            url, secret = self._default.url, self._default.secret
        assert url is not None
        assert secret is not None
        status: int | None = None
        error: str | None = None
        started = asyncio.get_running_loop().time()
        try:
            body = body_of(delivery)
            response = await self._http().post(
                url, content=body, headers=signed_headers(delivery.event_id, body, secret)
            )
            status = response.status_code
            if not 200 <= status < 300:
                error = f"answered {status}"
        except httpx.TimeoutException:
            error = "timed out"
        except httpx.HTTPError as exc:
            error = f"{exc.__class__.__name__}: {exc}"
        attempts = delivery.attempts + 1
        if error is None:
            outcome = DELIVERED
        elif utcnow() - delivery.started_at >= self._retry.give_up_after:
            outcome = FAILED
        else:
            outcome = RETRYING
        log.info(
            "webhook %s %s to %s: %s",
            delivery.type,
            message_id(delivery.event_id),
            url,
            outcome,
            extra={
                "event_id": message_id(delivery.event_id),
                "event_type": delivery.type,
                "delivery_id": str(delivery.id),
                "url": url,
                "attempt": attempts,
                "status": status if status is not None else "",
                "error": error or "",
                "outcome": outcome,
                "duration_seconds": round(asyncio.get_running_loop().time() - started, 4),
            },
        )
        self._on_attempt(outcome)
        if outcome == DELIVERED:
            accepted.append(delivery.id)
            return
        await asyncio.shield(
            self._record_failure(delivery, token, outcome, attempts, status, error)
        )

    async def _record_delivered(self, delivery_ids: list[uuid.UUID], token: str) -> None:
        try:
            async with self._unit() as session:
                await repository.delivered(session, delivery_ids, token=token)
        except Exception:
            # The claims' lease ends and the deliveries are attempted again.
            log.warning("could not record %d webhook deliveries", len(delivery_ids), exc_info=True)

    async def _record_failure(
        self,
        delivery: Claimed,
        token: str,
        outcome: str,
        attempts: int,
        status: int | None,
        error: str | None,
    ) -> None:
        try:
            async with self._unit() as session:
                retry_at = None
                if outcome == RETRYING:
                    retry_at = utcnow() + timedelta(seconds=self._retry.delay(attempts))
                await repository.attempt_failed(
                    session,
                    delivery.id,
                    token=token,
                    attempts=attempts,
                    retry_at=retry_at,
                    status=status,
                    error=error,
                )
        except Exception:
            # The claim's lease ends and the delivery is attempted again.
            log.warning("could not record webhook attempt %s", delivery.id, exc_info=True)

    def _unit(self) -> contextlib.AbstractAsyncContextManager[AsyncSession]:
        return unit_of_work(self._sessions, timeout_seconds=self._db_timeout)


def body_of(delivery: Claimed) -> bytes:
    """The request body, the same bytes on every attempt: ``type``, ``timestamp``
    (when the change committed) and ``data`` with the owner's subject."""
    data = json.loads(delivery.data)
    data["subject"] = delivery.subject
    payload = {
        "type": delivery.type,
        "timestamp": delivery.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": data,
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def signed_headers(event_id: uuid.UUID, body: bytes, secret: str) -> dict[str, str]:
    """Standard Webhooks headers; the id is the event's, on every attempt and
    to every receiver."""
    msg_id = message_id(event_id)
    now = datetime.now(UTC).replace(microsecond=0)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body),
    }
