from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx

from tests.conftest import Running

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert body["code"] == code, body
    assert body["type"] == f"urn:seau:problem:{code}"
    return body


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def upload_raw(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    name: str,
    data: bytes,
    content_type: str = "application/octet-stream",
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/files",
        params={"name": name},
        content=data,
        headers={**auth, "Content-Type": content_type},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def chunks(total: int, *, size: int = 64 * 1024, seed: bytes = b"") -> AsyncIterator[bytes]:
    """A body of ``total`` bytes sent as a stream (chunked, no Content-Length)."""
    sent = 0
    block = (seed or os.urandom(size))[:size].ljust(size, b"x")
    while sent < total:
        piece = block[: min(size, total - sent)]
        sent += len(piece)
        yield piece


async def stored_keys(running: Running) -> set[str]:
    store = running.app.state.seau.store
    return {info.key async for info in store.list("files/")}
