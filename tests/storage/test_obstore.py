"""How the obstore-backed stores use obstore: uploads coalesced, downloads read ahead."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from seau.storage import StorageUnavailable
from seau.storage._obstore import _coalesce, _ObstoreByteStream
from tests.storage.helpers import chunks, pattern


@pytest.mark.parametrize(
    ("size", "piece"),
    [
        (0, 4),
        (7, 100),  # one short piece
        (10, 10),  # exactly one piece
        (25, 3),  # chunks straddle boundaries
        (25, 10),  # chunks end on boundaries
        (40, 35),  # a chunk larger than a piece
        (33, 1),
    ],
)
async def test_coalesce_are_exactly_the_part_size_but_the_last(size: int, piece: int) -> None:
    data = pattern(size)
    pieces = [data[i : i + piece] for i in range(0, size, piece)]
    head, rest = pieces[:2], pieces[2:]
    pieces = [bytes(p) async for p in _coalesce(head, chunks(*rest), size=10)]
    assert b"".join(pieces) == data
    assert all(len(p) == 10 for p in pieces[:-1])
    assert pieces == [] or 0 < len(pieces[-1]) <= 10


class FakeBytesStream:
    """obstore's `BytesStream` as seen from Python: `__anext__` returns a running future.

    Each item is a chunk, an error, or None for a chunk that never arrives.
    """

    def __init__(self, items: list[bytes | BaseException | None]) -> None:
        self._items: Iterator[bytes | BaseException | None] = iter(items)
        self.requested: list[asyncio.Future[bytes]] = []

    def __anext__(self) -> asyncio.Future[bytes]:
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        item = next(self._items, StopAsyncIteration())
        if item is None:
            pass
        elif isinstance(item, BaseException):
            future.set_exception(item)
        else:
            future.set_result(item)
        self.requested.append(future)
        return future


def wrap(fake: FakeBytesStream) -> _ObstoreByteStream:
    return _ObstoreByteStream(fake, key="k", describe=str)  # type: ignore[arg-type]


async def test_a_download_asks_for_the_next_chunk_while_the_caller_has_this_one() -> None:
    fake = FakeBytesStream([b"one", b"two"])
    stream = wrap(fake)
    assert await anext(stream) == b"one"
    assert len(fake.requested) == 2
    assert await anext(stream) == b"two"
    assert [chunk async for chunk in stream] == []


async def test_a_failure_read_ahead_surfaces_only_at_the_next_chunk() -> None:
    fake = FakeBytesStream([b"one", OSError("connection reset")])
    stream = wrap(fake)
    assert await anext(stream) == b"one"
    with pytest.raises(StorageUnavailable, match="connection reset"):
        await anext(stream)
    assert [chunk async for chunk in stream] == []


async def test_closing_a_download_cancels_its_read_ahead() -> None:
    fake = FakeBytesStream([b"one", None])
    stream = wrap(fake)
    assert await anext(stream) == b"one"
    read_ahead = fake.requested[-1]
    await stream.aclose()
    assert read_ahead.cancelled()
    assert [chunk async for chunk in stream] == []


async def test_an_abandoned_read_ahead_failure_is_not_reported_as_unretrieved() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        fake = FakeBytesStream([b"one", OSError("gone")])
        stream = wrap(fake)
        assert await anext(stream) == b"one"
        await asyncio.sleep(0)
        del stream, fake
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert reported == []
