"""A download's relay: one message for a body in one chunk, a stream otherwise; the
store's stream is closed either way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from seau.files.routes import _Relay


class _Stream:
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks
        self.closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._read()

    async def _read(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk

    async def aclose(self) -> None:
        self.closed = True


async def _relayed(chunks: list[bytes]) -> tuple[list[dict[str, Any]], bool]:
    stream = _Stream(chunks)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the client stays
        raise AssertionError

    async def send(message: Any) -> None:
        sent.append(message)

    response = _Relay(
        stream,
        status_code=200,
        headers={"Content-Length": str(sum(map(len, chunks)))},
        media_type="application/octet-stream",
    )
    scope = {"type": "http", "asgi": {"spec_version": "2.3"}}
    await response(scope, receive, send)
    return sent, stream.closed


@pytest.mark.parametrize("chunks", [[b"small"], []])
async def test_a_body_in_one_chunk_goes_out_as_one_message(chunks: list[bytes]) -> None:
    sent, closed = await _relayed(chunks)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 200
    assert (b"content-length", str(sum(map(len, chunks))).encode()) in sent[0]["headers"]
    assert sent[1] == {"type": "http.response.body", "body": b"".join(chunks), "more_body": False}
    assert closed


async def test_a_longer_body_streams_every_chunk_in_order() -> None:
    sent, closed = await _relayed([b"a", b"b", b"c"])
    bodies = [m for m in sent if m["type"] == "http.response.body"]
    assert b"".join(m["body"] for m in bodies) == b"abc"
    assert [m["more_body"] for m in bodies][-1] is False
    assert all(m["more_body"] for m in bodies[:-1])
    assert closed
