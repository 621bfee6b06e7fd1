"""Small helpers shared by the storage tests."""

from __future__ import annotations

import random
from collections.abc import AsyncIterable, AsyncIterator

MiB = 1024 * 1024


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read_all(stream: AsyncIterable[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


def pattern(size: int) -> bytes:
    """Reproducible random bytes: every offset differs, so an off-by-one shows."""
    return random.Random(size).randbytes(size)
