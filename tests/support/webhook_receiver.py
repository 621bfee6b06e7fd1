"""A webhook receiver on 127.0.0.1 for the tests: a real HTTP server that checks
every request with the `standardwebhooks` package from PyPI and, independently,
with HMAC-SHA256 by the specification, and records what it got."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook

SECRET = "whsec_" + base64.b64encode(b"seau test receiver secret 32 by").decode()


@dataclass(frozen=True, slots=True)
class Received:
    id: str
    type: str
    body: dict[str, Any]
    status: int
    """What the receiver answered."""
    path: str = "/hook"
    """The URL path it was sent to (instances can be given different ones)."""


def independent_signature(secret: str, *, msg_id: str, timestamp: str, body: bytes) -> str:
    """What the specification says, without the package: `v1,` and the base64
    HMAC-SHA256 of `id.timestamp.body` under the base64-decoded secret."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


@dataclass
class Receiver:
    url: str
    secret: str
    answer: Callable[[str], int] = lambda _id: 200
    """The status to answer each verified request with, given its webhook-id."""
    on_arrival: Callable[[dict[str, Any]], Awaitable[None]] | None = None
    """Run on each verified body before answering (to download the file, say)."""
    delay: float = 0.0
    """Seconds to wait before answering (past seau's timeout: a timeout)."""
    got: list[Received] = field(default_factory=list)
    """Every verified request, in arrival order (retries included)."""
    refused: list[str] = field(default_factory=list)
    """Why requests that failed verification did."""
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    started: list[tuple[str, str]] = field(default_factory=list)
    """(path, webhook-id) of every verified request as it arrived, before any delay."""

    def delivered(self) -> list[str]:
        """The ids of the requests answered 2xx."""
        return [r.id for r in self.got if 200 <= r.status < 300]

    def ids(self, type_: str | None = None) -> list[str]:
        return [r.id for r in self.got if type_ is None or r.type == type_]

    async def wait_for(self, done: Callable[[Receiver], bool], *, seconds: float = 20) -> None:
        async with asyncio.timeout(seconds):
            while not done(self):
                self.arrived.clear()
                await self.arrived.wait()


@asynccontextmanager
async def webhook_receiver(secret: str = SECRET) -> AsyncIterator[Receiver]:
    receiver = Receiver(url="", secret=secret)
    verifier = Webhook(secret)

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            verifier.verify(body, headers)
        except Exception as exc:
            receiver.refused.append(f"standardwebhooks: {exc}")
            return web.Response(status=400)
        expected = independent_signature(
            secret,
            msg_id=headers["webhook-id"],
            timestamp=headers["webhook-timestamp"],
            body=body,
        )
        if expected not in headers["webhook-signature"].split(" "):
            receiver.refused.append("independent HMAC differs")
            return web.Response(status=400)
        if abs(int(headers["webhook-timestamp"]) - time.time()) > 60:
            receiver.refused.append("timestamp far from now")
            return web.Response(status=400)
        receiver.started.append((request.path, headers["webhook-id"]))
        receiver.arrived.set()
        if receiver.delay:
            await asyncio.sleep(receiver.delay)
        payload = json.loads(body)
        if receiver.on_arrival is not None:
            await receiver.on_arrival(payload)
        status = receiver.answer(headers["webhook-id"])
        receiver.got.append(
            Received(
                id=headers["webhook-id"],
                type=payload["type"],
                body=payload,
                status=status,
                path=request.path,
            )
        )
        receiver.arrived.set()
        if status in (301, 302, 307, 308):
            return web.Response(status=status, headers={"Location": "/redirected"})
        return web.Response(status=status)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    receiver.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield receiver
    finally:
        await runner.cleanup()
