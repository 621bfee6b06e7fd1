"""Delivery never slows the request that caused the event.

Two real `seau serve` processes side by side, each on its own SQLite database: one
with no receiver (no event is even written), one whose receiver takes every delivery
and never answers while the test runs (its dispatcher waits its 10 s timeout, then
tries again). Uploads (raw bodies, multipart requests and tus uploads) alternate
between the two, so that both see the same load on the machine; those of the server
with the stuck receiver answer about as fast as the other's. An upload that waited for
its delivery would take the dispatcher's 10 s timeout.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import TEST_SECRET, sign_up
from tests.events.test_instances import LIMITS, _make, stop_servers
from tests.support.databases import scratch_database
from tests.support.server import Server, seau_server
from tests.support.webhook_receiver import Receiver, webhook_receiver

ROUNDS = 30
"""Uploads to each server, measured (a third of each kind)."""
WARM_UP = 3


async def test_uploads_answer_as_fast_while_the_receiver_holds_every_delivery(
    tmp_path: Path,
) -> None:
    released = asyncio.Event()

    async def never_answer(_body: dict[str, Any]) -> None:
        await released.wait()

    async with webhook_receiver() as receiver:
        receiver.on_arrival = never_answer
        with ExitStack() as stack:
            started = []
            for name, hooked in (("plain", False), ("held", True)):
                root = tmp_path / name
                root.mkdir()
                database = stack.enter_context(scratch_database("sqlite", root))
                env = {
                    "SEAU_DATA_DIR": str(root / "data"),
                    "SEAU_DATABASE_URL": database,
                    "SEAU_STORAGE_URL": (root / "objects").as_uri(),
                    "SEAU_SECRET_KEY": TEST_SECRET,
                    "SEAU_LOG_LEVEL": "warning",
                }
                if hooked:
                    env["SEAU_WEBHOOK_URL"] = receiver.url
                    env["SEAU_WEBHOOK_SECRET"] = receiver.secret
                started.append(asyncio.to_thread(stack.enter_context, seau_server(env, cwd=root)))
            # Started together; every start has ended (each server is on the stack to
            # be stopped) before a failed one's error is raised.
            outcomes = await asyncio.gather(*started, return_exceptions=True)
            servers = [s for s in outcomes if isinstance(s, Server)]
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
            try:
                seconds = await _measure([s.url for s in servers], receiver)
            finally:
                released.set()
                await stop_servers(servers)
    plain, held = seconds
    baseline, median = statistics.median(plain), statistics.median(held)
    baseline_p90, p90 = _p90(plain), _p90(held)
    summary = (
        f"held median {median:.3f} s p90 {p90:.3f} s, plain {baseline:.3f} / {baseline_p90:.3f}"
    )
    assert median <= 2 * baseline + 0.1, summary
    assert p90 <= 3 * baseline_p90 + 0.5, summary


async def _measure(urls: list[str], receiver: Receiver) -> tuple[list[float], list[float]]:
    """Each server's upload times, ``ROUNDS`` each, alternating which goes first."""
    clients = [httpx.AsyncClient(base_url=url, timeout=60, limits=LIMITS) for url in urls]
    try:
        auths = [await sign_up(client) for client in clients]
        for i in range(WARM_UP):
            for client, auth in zip(clients, auths, strict=True):
                await _make(client, auth, i)
        # The held server's first delivery is at the receiver, unanswered.
        await receiver.wait_for(lambda r: len(r.started) >= 1)
        times: tuple[list[float], list[float]] = ([], [])
        for i in range(WARM_UP, WARM_UP + ROUNDS):
            order = (0, 1) if i % 2 else (1, 0)
            for which in order:
                began = time.perf_counter()
                await _make(clients[which], auths[which], i)
                times[which].append(time.perf_counter() - began)
        # Nothing was answered meanwhile: every delivery was held.
        assert receiver.got == []
        return times
    finally:
        for client in clients:
            await client.aclose()


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]
