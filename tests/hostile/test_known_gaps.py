"""Hostile requests aimed outside the files routes: cursors, request heads, JSON bodies.

They run on a server of their own: were one of them to regress, what it proves wrong
(memory kept, tracebacks logged) would spoil the other modules' baseline checks.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from tests.hostile.conftest import RSS_MARGIN, MiB, Target
from tests.hostile.rawhttp import build

FILES = "/api/v1/files"


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


BROKEN_CURSORS: dict[str, str] = {
    # RecursionError out of json.loads, which _decode_cursor does not catch.
    "nested-1500-deep": "cursor=" + base64.urlsafe_b64encode(b"[" * 1500).decode(),
    # The driver cannot encode a lone surrogate.
    "a-lone-surrogate": "sort=name&cursor=" + _cursor({"s": "name", "v": "\ud800", "i": "0" * 32}),
    # Beyond BIGINT: SQLite's driver and asyncpg refuse to bind it.
    "a-size-beyond-64-bits": "sort=size&cursor="
    + _cursor({"s": "size", "v": 2**63, "i": "0" * 32}),
    # Converting to UTC for the bind overflows the datetime range.
    "a-date-at-the-edge-of-time": "cursor="
    + _cursor({"s": "-created", "v": "0001-01-01T00:00:00+14:00", "i": "0" * 32}),
}


@pytest.mark.parametrize("query", BROKEN_CURSORS.values(), ids=BROKEN_CURSORS.keys())
def test_cursors_the_database_cannot_bind_are_400(target: Target, query: str) -> None:
    before = target.snapshot()
    response = target.send(build("GET", f"{FILES}?{query}", headers=[target.victim.auth]))
    target.refused(response, 400, "invalid_cursor", before=before)


def _oversized_head(size: int) -> Iterator[bytes]:
    yield b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Junk: "
    for _ in range(size // MiB):
        yield b"j" * MiB
    yield b"\r\n\r\n"


def test_an_oversized_request_head_is_refused_without_buffering_it(target: Target) -> None:
    before_rss = target.rss()
    response = target.send(list(_oversized_head(64 * MiB)))
    assert response.status in (400, 431)
    assert target.rss() < before_rss + RSS_MARGIN


def _oversized_json(size: int) -> Iterator[bytes]:
    yield (
        b"POST /api/v1/users HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (size + 11)
    )
    yield b'{"email": "'
    for _ in range(size // MiB):
        yield b"e" * MiB


def test_an_oversized_json_body_is_refused_without_buffering_it(target: Target) -> None:
    before = target.snapshot()
    before_rss = target.rss()
    response = target.send(list(_oversized_json(64 * MiB)))
    target.refused(response, 413, before=before)
    assert target.rss() < before_rss + RSS_MARGIN
