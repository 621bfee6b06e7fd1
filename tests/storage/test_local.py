"""What only the local store promises: durability, big reads, no escape from the root."""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from seau.storage import InvalidKey, ObjectNotFound, StorageUnavailable
from seau.storage._disk import TEMP_DIR_NAME
from seau.storage.local import LocalFileStore
from tests.storage.helpers import MiB, chunks, pattern, read_all
from tests.support.threads import ThreadCalls


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "objects"


@pytest.fixture
def store(root: Path) -> LocalFileStore:
    return LocalFileStore(root)


def fd_target(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


def names_in(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


class Recorder:
    """Wraps an `os` function and records (target path, argument, thread) per call."""

    def __init__(self, real: Callable[..., object]) -> None:
        self.real = real
        self.calls: list[tuple[str, int, threading.Thread]] = []

    def fsync(self, fd: int) -> None:
        self.calls.append((fd_target(fd), 0, threading.current_thread()))
        self.real(fd)

    def write(self, fd: int, data: bytes) -> object:
        self.calls.append((fd_target(fd), len(data), threading.current_thread()))
        return self.real(fd, data)

    def pread(self, fd: int, size: int, offset: int) -> object:
        self.calls.append((fd_target(fd), size, threading.current_thread()))
        return self.real(fd, size, offset)


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder(os.fsync)
    monkeypatch.setattr(os, "fsync", recorder.fsync)
    return recorder


@pytest.fixture
def preads(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder(os.pread)
    monkeypatch.setattr(os, "pread", recorder.pread)
    return recorder


async def test_put_fsyncs_the_file_then_its_directory(
    store: LocalFileStore, root: Path, fsyncs: Recorder
) -> None:
    await store.put("files/ab/object", chunks(b"durable"))
    targets = [target for target, _, _ in fsyncs.calls]
    temp_dir = str(root / TEMP_DIR_NAME)
    file_syncs = [i for i, t in enumerate(targets) if t.startswith(f"{temp_dir}/")]
    directory_syncs = [i for i, t in enumerate(targets) if t == str(root / "files" / "ab")]
    assert len(file_syncs) == 1
    assert len(directory_syncs) == 1
    assert file_syncs[0] < directory_syncs[0], "the data must be synced before the rename is"
    assert (root / "files" / "ab" / "object").read_bytes() == b"durable"


async def test_put_into_new_directories_fsyncs_their_parents(
    store: LocalFileStore, root: Path, fsyncs: Recorder
) -> None:
    await store.put("first/object", chunks(b"x"))
    fsyncs.calls.clear()
    await store.put("first/new/deeper/object", chunks(b"y"))
    synced = {target for target, _, _ in fsyncs.calls}
    for directory in ["first", "first/new", "first/new/deeper"]:
        assert str(root / directory) in synced


async def test_blocking_calls_run_off_the_event_loop_thread(
    store: LocalFileStore, monkeypatch: pytest.MonkeyPatch, fsyncs: Recorder
) -> None:
    writes, reads = Recorder(os.write), Recorder(os.pread)
    monkeypatch.setattr(os, "write", writes.write)
    monkeypatch.setattr(os, "pread", reads.pread)
    await store.put("k", chunks(pattern(3 * MiB)))
    await read_all(await store.get("k"))
    loop_thread = threading.current_thread()
    calls = fsyncs.calls + writes.calls + reads.calls
    ours = [thread for target, _, thread in calls if "objects" in target]
    assert ours
    assert loop_thread not in ours


async def test_small_incoming_chunks_are_written_in_big_buffers(
    store: LocalFileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = Recorder(os.write)
    monkeypatch.setattr(os, "write", writes.write)
    data = pattern(4 * MiB + 100)
    await store.put("k", chunks(*(data[i : i + 1000] for i in range(0, len(data), 1000))))
    sizes = [size for target, size, _ in writes.calls if TEMP_DIR_NAME in target]
    assert sum(sizes) == len(data)
    assert len(sizes) <= 5
    assert min(sizes[:-1]) >= MiB


async def test_reads_are_large_preads(store: LocalFileStore, preads: Recorder) -> None:
    await store.put("big", chunks(pattern(4 * MiB)))
    sizes = [len(chunk) async for chunk in await store.get("big")]
    assert sizes == [MiB] * 4
    assert [size for _, size, _ in preads.calls] == [MiB] * 4


async def test_read_chunk_size_is_configurable(root: Path) -> None:
    store = LocalFileStore(root, read_chunk_size=256 * 1024)
    await store.put("k", chunks(pattern(MiB + 1)))
    sizes = [len(chunk) async for chunk in await store.get("k")]
    assert sizes == [256 * 1024] * 4 + [1]


async def test_a_ranged_read_touches_only_its_range(
    store: LocalFileStore, preads: Recorder
) -> None:
    data = pattern(4 * MiB)
    await store.put("big", chunks(data))
    start, end = 3 * MiB + 17, 3 * MiB + 1000
    assert await read_all(await store.get("big", start=start, end=end)) == data[start:end]
    assert [size for _, size, _ in preads.calls] == [end - start]


async def test_objects_are_plain_files_at_their_key(store: LocalFileStore, root: Path) -> None:
    await store.put("files/ab/abcdef", chunks(b"plain"))
    assert (root / "files/ab/abcdef").read_bytes() == b"plain"
    assert names_in(root / TEMP_DIR_NAME) == []


async def test_write_failure_is_unavailable_and_removes_the_temp_file(
    store: LocalFileStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(StorageUnavailable, match="No space left"):
        await store.put("k", chunks(b"data"))
    monkeypatch.undo()
    assert names_in(root / TEMP_DIR_NAME) == []
    with pytest.raises(ObjectNotFound):
        await store.head("k")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "secret").write_bytes(b"not yours")
    return directory


@pytest.mark.parametrize("key", ["../outside/secret", "files/../../outside/secret", "/etc/passwd"])
async def test_traversal_keys_cannot_reach_outside_the_root(
    store: LocalFileStore, outside: Path, key: str
) -> None:
    with pytest.raises(InvalidKey):
        await store.get(key)
    with pytest.raises(InvalidKey):
        await store.put(key, chunks(b"overwritten"))
    with pytest.raises(InvalidKey):
        await store.delete(key)
    assert (outside / "secret").read_bytes() == b"not yours"


async def test_a_symlink_inside_the_root_cannot_lead_outside(
    store: LocalFileStore, root: Path, outside: Path
) -> None:
    await store.put("files/real", chunks(b"x"))
    (root / "files" / "escape").symlink_to(outside, target_is_directory=True)
    (root / "files" / "link").symlink_to(outside / "secret")
    for key in ["files/escape/secret", "files/link", "files/escape/new"]:
        with pytest.raises(InvalidKey):
            await store.head(key)
        with pytest.raises(InvalidKey):
            await store.get(key)
        with pytest.raises(InvalidKey):
            await store.put(key, chunks(b"overwritten"))
        with pytest.raises(InvalidKey):
            await store.delete(key)
    assert (outside / "secret").read_bytes() == b"not yours"
    assert names_in(outside) == ["secret"]
    assert [info.key async for info in store.list()] == ["files/real"]


async def test_the_temp_directory_is_neither_listed_nor_addressable(
    store: LocalFileStore, root: Path
) -> None:
    await store.put("a", chunks(b"x"))
    (root / TEMP_DIR_NAME / "stray.part").write_bytes(b"half an upload")
    assert [info.key async for info in store.list()] == ["a"]
    with pytest.raises(InvalidKey):
        await store.get(f"{TEMP_DIR_NAME}/stray.part")
    with pytest.raises(InvalidKey):
        await store.put(f"{TEMP_DIR_NAME}/x", chunks(b"x"))


async def test_a_key_that_collides_with_a_directory(store: LocalFileStore) -> None:
    await store.put("a/b", chunks(b"x"))
    with pytest.raises(InvalidKey):
        await store.put("a", chunks(b"y"))
    with pytest.raises(ObjectNotFound):
        await store.get("a")
    with pytest.raises(ObjectNotFound):
        await store.head("a")
    await store.delete("a")
    with pytest.raises(InvalidKey):
        await store.put("a/b/c", chunks(b"z"))
    with pytest.raises(ObjectNotFound):
        await store.get("a/b/c")
    assert await read_all(await store.get("a/b")) == b"x"


async def test_a_store_whose_root_does_not_exist_yet(root: Path) -> None:
    store = LocalFileStore(root)
    assert root.name not in names_in(root.parent)
    with pytest.raises(ObjectNotFound):
        await store.head("k")
    assert [info async for info in store.list()] == []
    await store.delete("k")
    await store.put("k", chunks(b"made"))
    assert (root / "k").read_bytes() == b"made"


async def test_reads_release_their_file_descriptor(store: LocalFileStore) -> None:
    await store.put("k", chunks(pattern(3 * MiB)))
    # Earlier tests' garbage (an S3 client's pooled socket) must not close mid-count.
    gc.collect()
    before = open_fds()
    await read_all(await store.get("k"))
    assert open_fds() == before
    stream = await store.get("k")
    await anext(aiter(stream))
    await stream.aclose()
    assert open_fds() == before
    with pytest.raises(ObjectNotFound):
        await store.get("missing")
    assert open_fds() == before
    abandoned = await store.get("k", start=5)
    del abandoned
    gc.collect()
    assert open_fds() == before


async def test_sweep_removes_only_old_temp_files(store: LocalFileStore, root: Path) -> None:
    await store.put("k", chunks(b"x"))
    temp_dir = root / TEMP_DIR_NAME
    old, fresh = temp_dir / "old.part", temp_dir / "fresh.part"
    old.write_bytes(b"crashed upload")
    fresh.write_bytes(b"upload in progress")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert await store.sweep_temp_files(older_than=timedelta(minutes=10)) == 1
    assert names_in(temp_dir) == ["fresh.part"]
    assert await read_all(await store.get("k")) == b"x"


async def test_an_object_that_fits_one_buffer_is_written_in_one_thread_call(
    store: LocalFileStore, root: Path, monkeypatch: pytest.MonkeyPatch, fsyncs: Recorder
) -> None:
    await store.put("files/ab/first", chunks(b"makes the directories"))
    fsyncs.calls.clear()
    calls = ThreadCalls(monkeypatch)
    await store.put("files/ab/small", chunks(b"a" * 1000, b"b" * 3000))
    assert calls.count == 1
    assert (root / "files" / "ab" / "small").read_bytes() == b"a" * 1000 + b"b" * 3000
    assert len(fsyncs.calls) == 2, "still the file and its directory"


async def test_a_cancelled_small_put_leaves_nothing(
    store: LocalFileStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inside, release = threading.Event(), threading.Event()
    real = os.fsync

    def slow_fsync(fd: int) -> None:
        inside.set()
        release.wait(10)
        real(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    put = asyncio.ensure_future(store.put("files/ab/small", chunks(b"data")))
    assert await asyncio.to_thread(inside.wait, 10)
    put.cancel()
    await asyncio.sleep(0.01)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await put
    assert not (root / "files" / "ab" / "small").exists()
    assert names_in(root / TEMP_DIR_NAME) == []


@pytest.mark.parametrize(("on_loop", "trips"), [(64 * 1024, 0), (6, 0), (5, 1), (0, 1)])
async def test_a_small_read_is_made_on_the_loop_or_in_one_thread_call_and_holds_no_descriptor(
    root: Path, monkeypatch: pytest.MonkeyPatch, on_loop: int, trips: int
) -> None:
    store = LocalFileStore(root, read_on_loop_bytes=on_loop)
    await store.put("k", chunks(b"small object"))
    before = open_fds()
    calls = ThreadCalls(monkeypatch)
    stream = await store.get("k", start=6)
    if trips == 0:
        assert open_fds() == before, "a range read whole at open is closed at once"
    assert await read_all(stream) == b"object"
    assert calls.count == trips
    assert open_fds() == before


async def test_a_range_longer_than_the_loop_reads_is_read_in_threads_from_its_first_byte(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalFileStore(root, read_on_loop_bytes=1000, read_chunk_size=4096)
    data = pattern(10_000)
    await store.put("k", chunks(data))
    before = open_fds()
    calls = ThreadCalls(monkeypatch)
    stream = await store.get("k", start=1)
    assert calls.count == 0, "opened on the loop, nothing read yet"
    pieces = [piece async for piece in stream]
    assert b"".join(pieces) == data[1:]
    assert [len(piece) for piece in pieces] == [4096, 4096, 1807]
    assert calls.count == 3
    assert open_fds() == before


async def test_the_next_chunk_is_read_while_the_caller_holds_this_one(
    store: LocalFileStore, preads: Recorder
) -> None:
    data = pattern(3 * MiB)
    await store.put("big", chunks(data))
    stream = await store.get("big")
    first = await anext(aiter(stream))
    for _ in range(500):
        if len(preads.calls) == 2:
            break
        await asyncio.sleep(0.01)
    assert len(preads.calls) == 2, "the second chunk is read before it is asked for"
    assert first + await read_all(stream) == data
    assert len(preads.calls) == 3
