"""Webhooks as an operator sees them from a real `seau serve`: `/metrics` counts the
attempts by result and shows the outbox backlog and its oldest event's age, and each
attempt is one JSON log line on `seau.webhooks`."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TEST_SECRET
from tests.support.server import Server, seau_server
from tests.support.webhook_receiver import Receiver, webhook_receiver

PASSWORD = "correct horse battery"
# Fields docs/events.md promises on each attempt's line.
LOG_FIELDS = {
    "event_id",
    "event_type",
    "delivery_id",
    "url",
    "attempt",
    "status",
    "error",
    "outcome",
    "duration_seconds",
}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with webhook_receiver() as running:
        yield running


def _metrics(server: Server) -> dict[tuple[str, str], float]:
    """Each sample of /metrics by name and its `result` label ('' when none)."""
    scraped = httpx.get(f"{server.url}/metrics", timeout=10)
    assert scraped.status_code == 200, scraped.text
    return {
        (s.name, s.labels.get("result", "")): s.value
        for family in text_string_to_metric_families(scraped.text)
        for s in family.samples
    }


async def _until_metrics(
    server: Server, done: Callable[[dict[tuple[str, str], float]], bool], *, seconds: float = 10
) -> dict[tuple[str, str], float]:
    """Scrape until ``done`` holds: the backlog gauges are read every 5 s."""
    deadline = time.monotonic() + seconds
    while True:
        values = await asyncio.to_thread(_metrics, server)
        if done(values):
            return values
        assert time.monotonic() < deadline, f"metrics never got there: {values}"
        await asyncio.sleep(0.2)


def _webhook_lines(log: Path) -> list[dict[str, Any]]:
    lines = []
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("logger") == "seau.webhooks":
            lines.append(entry)
    return lines


async def test_metrics_count_attempts_by_result_show_the_backlog_and_each_attempt_is_logged(
    tmp_path: Path, receiver: Receiver
) -> None:
    """One event refused once, then accepted (retrying, delivered); a second refused
    every time (retrying, and in the backlog with its age)."""
    tries: Counter[str] = Counter()
    refusing = False

    def answer(event_id: str) -> int:
        tries[event_id] += 1
        return 200 if tries[event_id] > 1 and not refusing else 503

    receiver.answer = answer
    env = {
        "SEAU_DATA_DIR": str(tmp_path / "data"),
        "SEAU_STORAGE_URL": (tmp_path / "objects").as_uri(),
        "SEAU_SECRET_KEY": TEST_SECRET,
        "SEAU_WEBHOOK_URL": receiver.url,
        "SEAU_WEBHOOK_SECRET": receiver.secret,
        "SEAU_LOG_LEVEL": "info",
    }
    with ExitStack() as stack:
        server = await asyncio.to_thread(stack.enter_context, seau_server(env, cwd=tmp_path))
        # Read at start-up: nothing is waiting.
        before = await asyncio.to_thread(_metrics, server)
        assert before[("seau_webhook_backlog", "")] == 0
        assert before[("seau_webhook_oldest_seconds", "")] == 0
        assert before.get(("seau_webhook_deliveries_total", "delivered"), 0) == 0

        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            email = "ops@example.com"
            made = await client.post("/api/v1/users", json={"email": email, "password": PASSWORD})
            assert made.status_code == 201, made.text
            token = await client.post(
                "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
            )
            assert token.status_code == 200, token.text
            auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
            first = await client.post(
                "/api/v1/files", params={"name": "a.txt"}, content=b"a", headers=auth
            )
            assert first.status_code == 201, first.text
            # Refused once, then accepted about a second later (the first retry).
            await receiver.wait_for(lambda r: len(r.delivered()) == 1)
            refusing = True
            second = await client.post(
                "/api/v1/files", params={"name": "b.txt"}, content=b"b", headers=auth
            )
            assert second.status_code == 201, second.text
            await receiver.wait_for(lambda r: len(r.got) >= 3)

        values = await _until_metrics(server, lambda v: v[("seau_webhook_backlog", "")] == 1)
        assert values[("seau_webhook_deliveries_total", "delivered")] == 1
        assert values[("seau_webhook_deliveries_total", "retrying")] >= 2
        assert values.get(("seau_webhook_deliveries_total", "failed"), 0) == 0
        # The second event waits since its upload, a few seconds ago.
        assert 0 < values[("seau_webhook_oldest_seconds", "")] < 30
        # Stopped, the server has logged every attempt it made.
        server.stop()

    assert receiver.refused == []
    lines = _webhook_lines(server.log)
    assert len(lines) == len(receiver.got), lines
    for line in lines:
        assert set(line) >= LOG_FIELDS, line
        assert line["level"] == "info"
        assert line["url"] == receiver.url
        assert line["event_type"] == "file.ready"
        uuid.UUID(line["delivery_id"])
        assert isinstance(line["duration_seconds"], float)
        assert line["duration_seconds"] >= 0
        assert line["event_id"] in line["message"]
        if line["status"] == 200:
            assert (line["outcome"], line["error"]) == ("delivered", "")
        else:
            assert (line["status"], line["outcome"]) == (503, "retrying")
            assert line["error"] == "answered 503"
    # One line per attempt, numbered per event, with the id the receiver got.
    assert sorted((line["event_id"], line["status"]) for line in lines) == sorted(
        (r.id, r.status) for r in receiver.got
    )
    for event_id in tries:
        numbers = [line["attempt"] for line in lines if line["event_id"] == event_id]
        assert numbers == list(range(1, tries[event_id] + 1))
        assert len({line["delivery_id"] for line in lines if line["event_id"] == event_id}) == 1
