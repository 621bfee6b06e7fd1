"""The `Store` contract, run against every backend (memory, local disk, S3 over HTTP)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from seau.storage import ByteStream, InvalidKey, ObjectNotFound, Store
from tests.storage.conftest import Backend
from tests.storage.helpers import MiB, chunks, pattern, read_all


class SourceFailed(Exception):
    """What a caller's byte source raises mid-upload (a client disconnecting, say)."""


async def failing_source(error: BaseException, *, before: int) -> AsyncIterator[bytes]:
    for _ in range(before):
        yield b"x" * 64 * 1024
    raise error


async def test_every_backend_satisfies_the_protocol(store: Store) -> None:
    assert isinstance(store, Store)
    await store.put("k", chunks(b"x"))
    assert isinstance(await store.get("k"), ByteStream)
    assert isinstance(await store.get("k", start=1), ByteStream)


async def test_put_from_many_small_chunks_reads_back_whole(store: Store) -> None:
    data = pattern(3 * MiB + 12_345)
    parts = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    info = await store.put("files/ab/small-chunks", chunks(*parts))
    assert info.key == "files/ab/small-chunks"
    assert info.size == len(data) == (await store.head("files/ab/small-chunks")).size
    assert await read_all(await store.get("files/ab/small-chunks")) == data


async def test_put_from_a_few_big_chunks_reads_back_whole(store: Store) -> None:
    # 20 MiB: several multipart parts on S3, several write buffers on disk.
    data = pattern(20 * MiB + 3)
    parts = [data[: 7 * MiB], data[7 * MiB : 16 * MiB], data[16 * MiB :]]
    info = await store.put("big", chunks(*parts))
    # What put answers is what the store holds: uploads check it instead of a HEAD.
    assert info.size == len(data) == (await store.head("big")).size
    assert await read_all(await store.get("big")) == data


@pytest.mark.parametrize("size", [3, 20 * MiB], ids=["one-put", "multipart"])
async def test_put_reports_the_entity_tag_the_object_has(store: Store, size: int) -> None:
    # AWS answers a multipart upload's completion with the object's ETag; Ceph's RGW
    # 16.2 deviates (an empty ETag), and the store must not pass that on.
    info = await store.put("tagged", chunks(pattern(size)))
    assert info.etag == (await store.head("tagged")).etag
    assert info.etag != ""


async def test_put_ignores_empty_chunks(store: Store) -> None:
    await store.put("k", chunks(b"", b"ab", b"", b"c", b""))
    assert await read_all(await store.get("k")) == b"abc"


async def test_put_accepts_a_content_type(store: Store) -> None:
    await store.put("typed", chunks(b"{}"), content_type="application/json")
    assert (await store.head("typed")).size == 2


async def test_zero_byte_object(store: Store) -> None:
    info = await store.put("empty", chunks())
    assert info.size == 0
    assert (await store.head("empty")).size == 0
    assert await read_all(await store.get("empty")) == b""
    assert await read_all(await store.get("empty", start=0, end=10)) == b""
    assert await read_all(await store.get("empty", start=5)) == b""


SIZE = 1000


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, None, slice(0, SIZE)),
        (10, None, slice(10, SIZE)),
        (10, 20, slice(10, 20)),
        (0, 1, slice(0, 1)),
        (SIZE - 1, None, slice(SIZE - 1, SIZE)),
        (SIZE - 1, SIZE, slice(SIZE - 1, SIZE)),
        (0, SIZE, slice(0, SIZE)),
        (5, 5, slice(0, 0)),
        (990, 5000, slice(990, SIZE)),
        (SIZE, None, slice(0, 0)),
        (SIZE, SIZE, slice(0, 0)),
        (SIZE, SIZE + 10, slice(0, 0)),
        (1500, 2000, slice(0, 0)),
        (1500, None, slice(0, 0)),
    ],
    ids=lambda value: repr(value),
)
async def test_get_range_is_clamped_like_a_bytes_slice(
    store: Store, start: int, end: int | None, expected: slice
) -> None:
    data = pattern(SIZE)
    await store.put("ranged", chunks(data))
    stream = await store.get("ranged", start=start, end=end)
    assert await read_all(stream) == data[expected]


@pytest.mark.parametrize(("start", "end"), [(-1, None), (10, 5), (-5, -1)])
async def test_get_rejects_a_backwards_or_negative_range(
    store: Store, start: int, end: int | None
) -> None:
    await store.put("ranged", chunks(b"0123456789"))
    with pytest.raises(ValueError, match="range"):
        await store.get("ranged", start=start, end=end)


async def test_get_streams_large_chunks(store: Store) -> None:
    await store.put("four", chunks(pattern(4 * MiB)))
    sizes = [len(chunk) async for chunk in await store.get("four")]
    assert sum(sizes) == 4 * MiB
    assert min(sizes[:-1], default=MiB) >= 512 * 1024


async def test_get_of_a_missing_key_raises_before_iteration(store: Store) -> None:
    with pytest.raises(ObjectNotFound) as raised:
        await store.get("nope/missing")
    assert raised.value.key == "nope/missing"


@pytest.mark.parametrize(("start", "end"), [(0, 0), (3, 3), (10, None), (0, 10)])
async def test_get_of_a_missing_key_with_any_range_raises_not_found(
    store: Store, start: int, end: int | None
) -> None:
    with pytest.raises(ObjectNotFound):
        await store.get("missing", start=start, end=end)


async def test_head_of_a_missing_key_raises_not_found(store: Store) -> None:
    with pytest.raises(ObjectNotFound):
        await store.head("nope/missing")


async def test_head_reports_size_and_modification_time(store: Store) -> None:
    before = datetime.now(UTC) - timedelta(seconds=2)
    await store.put("dir/sub/file", chunks(b"hello", b" world"))
    info = await store.head("dir/sub/file")
    assert info.key == "dir/sub/file"
    assert info.size == 11
    assert info.last_modified is not None
    assert before <= info.last_modified <= datetime.now(UTC) + timedelta(seconds=2)


async def test_delete_is_idempotent_and_the_object_is_gone(store: Store) -> None:
    await store.put("doomed", chunks(b"x"))
    await store.delete("doomed")
    await store.delete("doomed")
    await store.delete("never/existed")
    with pytest.raises(ObjectNotFound):
        await store.get("doomed")
    with pytest.raises(ObjectNotFound):
        await store.head("doomed")


async def test_overwriting_a_key_replaces_its_content(store: Store) -> None:
    await store.put("same", chunks(b"first version, longer"))
    await store.put("same", chunks(b"second"))
    assert await read_all(await store.get("same")) == b"second"
    assert (await store.head("same")).size == 6


async def test_nested_keys_are_independent(store: Store) -> None:
    await store.put("a/b/c/d", chunks(b"deep"))
    await store.put("a/b/e", chunks(b"shallow"))
    await store.put("a/bc", chunks(b"sibling"))
    assert await read_all(await store.get("a/b/c/d")) == b"deep"
    assert await read_all(await store.get("a/b/e")) == b"shallow"
    assert await read_all(await store.get("a/bc")) == b"sibling"
    with pytest.raises(ObjectNotFound):
        await store.head("a/b")


async def list_keys(store: Store, prefix: str = "") -> list[str]:
    return sorted([info.key async for info in store.list(prefix)])


async def test_list_matches_keys_by_string_prefix(store: Store) -> None:
    for key in ["files/ab/one", "files/ab/two", "files/abc/three", "files/b/four", "other"]:
        await store.put(key, chunks(key.encode()))
    everything = ["files/ab/one", "files/ab/two", "files/abc/three", "files/b/four", "other"]
    assert await list_keys(store) == everything
    assert await list_keys(store, "files/") == everything[:4]
    assert await list_keys(store, "files/ab/") == ["files/ab/one", "files/ab/two"]
    assert await list_keys(store, "files/ab") == everything[:3]
    assert await list_keys(store, "files/ab/t") == ["files/ab/two"]
    assert await list_keys(store, "fi") == everything[:4]
    assert await list_keys(store, "nothing/") == []
    assert await list_keys(store, "files/zz/") == []


async def test_list_reports_sizes(store: Store) -> None:
    await store.put("sized/a", chunks(b"12345"))
    await store.put("sized/b", chunks())
    listed = {info.key: info.size async for info in store.list("sized/")}
    assert listed == {"sized/a": 5, "sized/b": 0}


async def test_a_source_that_fails_midway_leaves_nothing_and_its_error_propagates(
    backend: Backend,
) -> None:
    store = backend.store
    error = SourceFailed("client went away")
    with pytest.raises(SourceFailed) as raised:
        await store.put("files/broken", failing_source(error, before=200))
    assert raised.value is error
    with pytest.raises(ObjectNotFound):
        await store.head("files/broken")
    assert await list_keys(store) == []
    assert backend.leftovers() == []


async def test_a_source_failing_at_once_leaves_nothing(backend: Backend) -> None:
    with pytest.raises(SourceFailed):
        await backend.store.put("k", failing_source(SourceFailed(), before=0))
    assert await list_keys(backend.store) == []
    assert backend.leftovers() == []


async def test_a_source_raising_oserror_is_not_disguised_as_a_storage_error(
    store: Store,
) -> None:
    error = ConnectionResetError("peer reset")
    with pytest.raises(ConnectionResetError) as raised:
        await store.put("k", failing_source(error, before=3))
    assert raised.value is error


async def test_a_failed_overwrite_keeps_the_previous_object(backend: Backend) -> None:
    store = backend.store
    await store.put("kept", chunks(b"original"))
    with pytest.raises(SourceFailed):
        await store.put("kept", failing_source(SourceFailed(), before=100))
    assert await read_all(await store.get("kept")) == b"original"
    assert backend.leftovers() == []


@pytest.mark.parametrize("source_waiting", [True, False], ids=["source-waiting", "source-flowing"])
# S3: cancelled while the first part is still being read (no upload started yet),
# and once a multipart upload is under way (parts are 5-8 MiB).
@pytest.mark.parametrize("sent_mib", [3, 12], ids=["within-a-part", "past-a-part"])
async def test_a_cancelled_put_leaves_nothing(
    backend: Backend, source_waiting: bool, sent_mib: int
) -> None:
    store = backend.store
    started = asyncio.Event()
    finalized = asyncio.Event()

    async def source() -> AsyncIterator[bytes]:
        try:
            for i in range(sent_mib if source_waiting else 40):
                yield b"y" * MiB
                if i == sent_mib - 1:
                    started.set()
                if not source_waiting:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(60)
            yield b"never"
        finally:
            finalized.set()

    upload = asyncio.create_task(store.put("files/cancelled", source()))
    await asyncio.wait_for(started.wait(), timeout=10)
    await asyncio.sleep(0.1)
    upload.cancel()
    with pytest.raises(asyncio.CancelledError):
        await upload
    with pytest.raises(ObjectNotFound):
        await store.head("files/cancelled")
    assert backend.leftovers() == []
    # The source is not left suspended in a task nobody awaits.
    await asyncio.wait_for(finalized.wait(), timeout=5)


async def test_closing_a_stream_early_releases_it(store: Store) -> None:
    await store.put("long", chunks(pattern(3 * MiB)))
    stream: ByteStream = await store.get("long")
    iterator = aiter(stream)
    first = await anext(iterator)
    assert first
    await stream.aclose()
    await stream.aclose()
    assert [chunk async for chunk in stream] == []
    assert (
        await read_all(await store.get("long", start=MiB, end=MiB + 3))
        == pattern(3 * MiB)[MiB : MiB + 3]
    )


async def test_concurrent_puts_of_different_keys(store: Store) -> None:
    payloads = {f"c/{i}": pattern(100_000 + i) for i in range(8)}
    await asyncio.gather(*(store.put(k, chunks(v)) for k, v in payloads.items()))
    for key, value in payloads.items():
        assert await read_all(await store.get(key)) == value


BAD_KEYS = [
    "",
    "/abs",
    "/",
    "../x",
    "a/../b",
    "a/..",
    "..",
    ".",
    "./a",
    "a//b",
    "a/",
    "a\\b",
    "a\x00b",
]


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
async def test_invalid_keys_are_rejected_by_every_verb(store: Store, key: str) -> None:
    with pytest.raises(InvalidKey):
        await store.put(key, chunks(b"x"))
    with pytest.raises(InvalidKey):
        await store.get(key)
    with pytest.raises(InvalidKey):
        await store.head(key)
    with pytest.raises(InvalidKey):
        await store.delete(key)


@pytest.mark.parametrize("prefix", ["/abs", "../", "a/../", "a\x00"], ids=repr)
async def test_invalid_list_prefixes_are_rejected(store: Store, prefix: str) -> None:
    with pytest.raises(InvalidKey):
        await list_keys(store, prefix)


async def test_a_rejected_key_consumes_nothing(store: Store) -> None:
    consumed = False

    async def source() -> AsyncIterator[bytes]:
        nonlocal consumed
        consumed = True
        yield b"x"

    with pytest.raises(InvalidKey):
        await store.put("../escape", source())
    assert not consumed
