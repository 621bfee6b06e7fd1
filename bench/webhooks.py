"""What webhooks cost: delivery latency under a steady upload rate, and the outbox
write per upload.

1. Latency. A real `seau serve` (fresh SQLite database, or ``--database URL``; local
   store) with ``SEAU_WEBHOOK_URL`` pointing at the tests' receiver on 127.0.0.1,
   which verifies every request. Raw 4 KiB uploads arrive open-loop at ``--rate``
   per second for ``--seconds``; for each `file.ready` the receiver notes the time
   from the event's `timestamp` (written in the upload's transaction, just before
   its commit) to its arrival. Prints p50/p99/max of that, and of the uploads.
2. The outbox write. `FileService.upload` in-process on a SQLite file and a local
   store, ``--rounds`` 4 KiB uploads one after the other, with the event row
   written (a receiver is set), with no receiver (the conditional insert, which
   writes nothing) and with no event statement at all (alternating repeats): the
   differences are what the outbox costs one upload.

    .venv/bin/python bench/webhooks.py [--rate 200] [--seconds 15] [--database URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from tests.support.server import seau_server
from tests.support.webhook_receiver import webhook_receiver

import seau.files.service as file_service
from seau.db.models import User
from seau.events.outbox import KEEP_EVERY_EVENT
from seau.settings import Settings
from seau.wiring import open_parts

SECRET_KEY = "bench-webhooks-" + "k" * 48
PASSWORD = "correct horse battery"  # noqa: S105  (a scratch account)
BODY = os.urandom(4096)
REPEATS = 5


def quantiles(samples: list[float]) -> str:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return f"p50 {at(0.5):.1f} ms, p99 {at(0.99):.1f} ms, max {ordered[-1] * 1000:.1f} ms"


async def latency(rate: float, seconds: float, database: str | None) -> None:
    count = int(rate * seconds)
    lags: dict[str, float] = {}

    async def note(body: dict[str, Any]) -> None:
        if body["type"] == "file.ready":
            committed = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
            lags.setdefault(body["data"]["id"], time.time() - committed.timestamp())

    with tempfile.TemporaryDirectory() as tmp:
        async with webhook_receiver() as receiver:
            receiver.on_arrival = note
            env = {
                "SEAU_DATA_DIR": tmp,
                "SEAU_SECRET_KEY": SECRET_KEY,
                "SEAU_WEBHOOK_URL": receiver.url,
                "SEAU_WEBHOOK_SECRET": receiver.secret,
                "SEAU_LOG_LEVEL": "warning",
                **({"SEAU_DATABASE_URL": database} if database else {}),
            }
            with seau_server(env, cwd=Path(tmp)) as server:
                async with httpx.AsyncClient(
                    base_url=server.url, timeout=30, limits=httpx.Limits(max_connections=64)
                ) as client:
                    auth = await _account(client)
                    took: list[float] = []

                    async def upload(i: int, at: float) -> None:
                        await asyncio.sleep(max(0.0, at - time.perf_counter()))
                        started = time.perf_counter()
                        made = await client.post(
                            "/api/v1/files", params={"name": f"f{i}"}, content=BODY, headers=auth
                        )
                        took.append(time.perf_counter() - started)
                        assert made.status_code == 201, made.text

                    begin = time.perf_counter() + 0.5
                    await asyncio.gather(*(upload(i, begin + i / rate) for i in range(count)))
                    elapsed = time.perf_counter() - begin
                    await receiver.wait_for(lambda _r: len(lags) >= count, seconds=120)
    print(f"{count} uploads of 4 KiB at {rate:.0f}/s offered, {count / elapsed:.0f}/s achieved")
    print(f"  upload requests:               {quantiles(took)}")
    print(f"  commit -> receiver (file.ready): {quantiles(list(lags.values()))}")


async def _account(client: httpx.AsyncClient) -> dict[str, str]:
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    made = await client.post("/api/v1/users", json={"email": email, "password": PASSWORD})
    assert made.status_code == 201, made.text
    token = await client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


async def _one_chunk() -> AsyncIterator[bytes]:
    yield BODY


async def outbox_cost(rounds: int) -> None:
    async def nothing(*_args: object, **_kwargs: object) -> bool:
        return False

    shipped = file_service._record
    cases = {
        # SEAU_WEBHOOK_URL set: every event row is written.
        "kept (a receiver is set)": (True, shipped),
        # No receiver at all: the conditional insert, which writes nothing.
        "no receiver (none kept)": (False, shipped),
        # No event statement at all: the floor.
        "no event statement": (False, nothing),
    }
    samples: dict[str, list[float]] = {label: [] for label in cases}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), secret_key=SECRET_KEY)
        async with open_parts(settings, migrate=True) as parts:
            owner = User(id=uuid.uuid4(), subject="bench")
            async with parts.sessions() as session:
                session.add(owner)
                await session.commit()
            for _ in range(REPEATS):
                for label, (keep, record) in cases.items():
                    parts.sessions.configure(info={KEEP_EVERY_EVENT: keep})
                    file_service._record = record
                    started = time.perf_counter()
                    for _ in range(rounds):
                        await parts.files.upload(
                            owner_id=owner.id,
                            name="f",
                            content_type=None,
                            data=_one_chunk(),
                            max_bytes=len(BODY),
                        )
                    samples[label].append((time.perf_counter() - started) / rounds * 1e6)
            file_service._record = shipped
    floor = statistics.median(samples["no event statement"])
    print(f"{rounds} in-process 4 KiB uploads (SQLite file, local store), median of {REPEATS}:")
    for label, taken in samples.items():
        median = statistics.median(taken)
        print(f"  {label}: {median:.0f} us per upload ({median / floor - 1:+.1%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--database", default=None, help="SEAU_DATABASE_URL (SQLite if unset)")
    parser.add_argument("--rounds", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(latency(args.rate, args.seconds, args.database))
    asyncio.run(outbox_cost(args.rounds))


if __name__ == "__main__":
    main()
