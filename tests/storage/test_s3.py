"""What only the S3 store has: a network that fails, a bucket, a prefix, credentials."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace

import psutil
import pytest

from seau.storage import (
    ObjectNotFound,
    StorageError,
    StorageUnavailable,
    Store,
)
from seau.storage.s3 import ObstoreS3Store, S3Options, _s3_config
from tests.storage.conftest import s3_options
from tests.storage.helpers import MiB, chunks, pattern, read_all
from tests.support.ceph import CephCluster, CephGateway
from tests.support.moto import (
    ACCESS_KEY_ID,
    REGION,
    MotoServer,
    bucket_keys,
    content_type,
    make_bucket,
    pending_multipart_uploads,
    running_moto_server,
)

pytestmark = pytest.mark.s3


@pytest.fixture(params=["moto", pytest.param("ceph", marks=pytest.mark.ceph)])
def endpoint(request: pytest.FixtureRequest) -> str:
    """An S3 endpoint: moto's server, or Ceph's RADOS Gateway."""
    server: MotoServer | CephCluster = request.getfixturevalue(
        "s3_server" if request.param == "moto" else "ceph_server"
    )
    return server.endpoint_url


SECRET = "sekrit-key-do-not-print-0123456789"
TOKEN = "session-token-do-not-print-9876543210"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def store_at(port: int, *, timeout_seconds: float = 2) -> ObstoreS3Store:
    return ObstoreS3Store(
        S3Options(
            bucket="nowhere",
            endpoint_url=f"http://127.0.0.1:{port}",
            region=REGION,
            access_key_id=ACCESS_KEY_ID,
            secret_access_key=SECRET,
            session_token=TOKEN,
            path_style=True,
            timeout_seconds=timeout_seconds,
            connect_timeout_seconds=1,
        )
    )


def every_verb(store: Store) -> list[tuple[str, Callable[[], Awaitable[object]]]]:
    async def listing() -> object:
        return [info async for info in store.list("x/")]

    return [
        ("put", lambda: store.put("x/k", chunks(b"data"))),
        ("get", lambda: store.get("x/k")),
        ("ranged get", lambda: store.get("x/k", start=3, end=9)),
        ("head", lambda: store.head("x/k")),
        ("delete", lambda: store.delete("x/k")),
        ("list", listing),
    ]


async def test_a_dead_server_is_a_prompt_storage_unavailable() -> None:
    store = store_at(closed_port())
    for verb, call in every_verb(store):
        started = time.monotonic()
        with pytest.raises(StorageUnavailable) as raised:
            await call()
        assert time.monotonic() - started < 15, verb
        assert SECRET not in str(raised.value)
        assert TOKEN not in str(raised.value)


async def test_a_server_that_never_answers_is_a_prompt_storage_unavailable(
    black_hole: int,
) -> None:
    store = store_at(black_hole, timeout_seconds=1)
    # Each verb waits out its retries (~5 s), so two stand for all of them.
    for verb, call in [every_verb(store)[i] for i in (0, 3)]:
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            await call()
        assert time.monotonic() - started < 15, verb


def test_options_never_show_secrets() -> None:
    options = store_at(1).options
    assert SECRET not in repr(options)
    assert TOKEN not in repr(options)
    assert "nowhere" in repr(options)


async def test_a_missing_bucket_is_unavailable_not_a_missing_object(endpoint: str) -> None:
    store = ObstoreS3Store(s3_options(endpoint, bucket="no-such-bucket-here"))
    with pytest.raises(StorageUnavailable, match="NoSuchBucket"):
        await store.put("k", chunks(b"x"))
    with pytest.raises(StorageUnavailable, match="NoSuchBucket"):
        await store.get("k")
    with pytest.raises(StorageUnavailable):
        await anext(aiter(store.list()))
    with pytest.raises(StorageUnavailable):
        await store.delete("k")
    # A HEAD response has no body to tell the two apart: probe readiness with `list`.
    with pytest.raises(ObjectNotFound):
        await store.head("k")


async def test_the_prefix_namespaces_keys_within_the_bucket(endpoint: str) -> None:
    bucket = make_bucket(endpoint)
    alpha = ObstoreS3Store(s3_options(endpoint, bucket=bucket, prefix="alpha"))
    beta = ObstoreS3Store(s3_options(endpoint, bucket=bucket, prefix="/beta/nested/"))
    whole = ObstoreS3Store(s3_options(endpoint, bucket=bucket))
    await alpha.put("files/k", chunks(b"a"))
    await beta.put("files/k", chunks(b"b"))
    assert bucket_keys(endpoint, bucket) == ["alpha/files/k", "beta/nested/files/k"]
    assert await read_all(await alpha.get("files/k")) == b"a"
    assert await read_all(await beta.get("files/k")) == b"b"
    assert [info.key async for info in alpha.list()] == ["files/k"]
    assert sorted([info.key async for info in whole.list()]) == [
        "alpha/files/k",
        "beta/nested/files/k",
    ]
    await alpha.delete("files/k")
    with pytest.raises(ObjectNotFound):
        await alpha.head("files/k")
    assert await read_all(await beta.get("files/k")) == b"b"


async def test_the_content_type_reaches_the_object(endpoint: str) -> None:
    bucket = make_bucket(endpoint)
    store = ObstoreS3Store(s3_options(endpoint, bucket=bucket))
    await store.put("page", chunks(b"<p>hi</p>"), content_type="text/html; charset=utf-8")
    assert content_type(endpoint, bucket, "page") == "text/html; charset=utf-8"


@pytest.fixture(params=["moto", pytest.param("ceph", marks=pytest.mark.ceph)])
def private_server(request: pytest.FixtureRequest) -> Iterator[MotoServer | CephGateway]:
    """A server of this test's own, since the test stops it: moto's, or a gateway of
    its own over the shared Ceph cluster (stopped by SIGKILL, as a crash would)."""
    if request.param == "moto":
        with running_moto_server() as server:
            yield server
        return
    cluster: CephCluster = request.getfixturevalue("ceph_server")
    gateway = cluster.gateway()
    try:
        yield gateway
    finally:
        gateway.terminate()


async def test_a_server_dying_mid_download_fails_the_iteration(
    private_server: MotoServer | CephGateway,
) -> None:
    endpoint = private_server.endpoint_url
    store = ObstoreS3Store(s3_options(endpoint, bucket=make_bucket(endpoint)))
    await store.put("big", chunks(pattern(64 * MiB)))
    stream = await store.get("big")
    iterator = aiter(stream)
    received = len(await anext(iterator))
    private_server.stop()

    async def drain() -> None:
        nonlocal received
        async for chunk in iterator:
            received += len(chunk)

    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        await drain()
    assert received < 64 * MiB
    assert time.monotonic() - started < 15


async def test_the_store_works_again_after_the_server_comes_back(
    private_server: MotoServer | CephGateway,
) -> None:
    endpoint = private_server.endpoint_url
    bucket = make_bucket(endpoint)
    store = ObstoreS3Store(s3_options(endpoint, bucket=bucket))
    await store.put("k", chunks(b"before"))
    private_server.stop()
    with pytest.raises(StorageUnavailable):
        await store.head("k")
    private_server.start()
    if isinstance(private_server, CephGateway):
        # A real S3 server keeps what it stored.
        assert await read_all(await store.get("k")) == b"before"
        await store.put("k", chunks(b"after"))
        assert await read_all(await store.get("k")) == b"after"
        return
    # moto forgets everything on restart.
    with pytest.raises(StorageError):
        await store.put("k", chunks(b"after"))
    recreated = ObstoreS3Store(s3_options(endpoint, bucket=make_bucket(endpoint)))
    await recreated.put("k", chunks(b"after"))
    assert await read_all(await recreated.get("k")) == b"after"


@pytest.mark.slow
async def test_a_large_upload_holds_only_a_few_parts_in_memory(s3_server: MotoServer) -> None:
    endpoint = s3_server.endpoint_url
    store = ObstoreS3Store(s3_options(endpoint, bucket=make_bucket(endpoint)))
    process = psutil.Process()
    baseline = peak = process.memory_info().rss
    sampling = True

    async def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.005)

    async def source() -> AsyncIterator[bytes]:
        for i in range(256 * 4):
            # A fresh object per chunk, as a request body would give.
            yield bytes([i % 251]) * (256 * 1024)

    sampler = asyncio.create_task(sample())
    try:
        info = await store.put("large", source())
    finally:
        sampling = False
        await sampler
    assert info.size == 256 * MiB
    # Two 8 MiB parts in flight plus one filling, and some slack for the allocator.
    assert peak - baseline < 80 * MiB


PART = 5 * MiB  # S3's smallest part


def in_pieces(data: bytes, size: int = 64 * 1024) -> list[bytes]:
    """``data`` as a request body arrives: in chunks of ``size`` bytes."""
    return [data[i : i + size] for i in range(0, len(data), size)]


def stored_etag(store_etag: str | None) -> str:
    assert store_etag is not None
    return store_etag.strip('"')


@pytest.mark.parametrize("size", [0, 4096, PART], ids=["empty", "4KiB", "one-whole-part"])
async def test_an_object_within_one_part_is_stored_by_a_single_put(
    endpoint: str, size: int
) -> None:
    bucket = make_bucket(endpoint)
    store = ObstoreS3Store(replace(s3_options(endpoint, bucket=bucket), part_size=PART))
    data = pattern(size)
    info = await store.put("small", chunks(*in_pieces(data)))
    assert info.size == size
    # S3 gives an object stored by one PUT the MD5 of its body as ETag, and one
    # assembled from a multipart upload "<MD5 of the parts' MD5s>-<part count>".
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert stored_etag((await store.head("small")).etag) == md5
    assert await read_all(await store.get("small")) == data
    assert pending_multipart_uploads(endpoint, bucket) == []


async def test_an_object_past_one_part_is_stored_by_a_multipart_upload(endpoint: str) -> None:
    bucket = make_bucket(endpoint)
    store = ObstoreS3Store(replace(s3_options(endpoint, bucket=bucket), part_size=PART))
    data = pattern(2 * PART + 3)
    # Pieces that straddle part boundaries.
    info = await store.put("large", chunks(*in_pieces(data, 1_000_003)))
    assert info.size == len(data)
    assert stored_etag((await store.head("large")).etag).endswith("-3")
    assert await read_all(await store.get("large")) == data
    assert pending_multipart_uploads(endpoint, bucket) == []


@pytest.mark.parametrize(
    ("endpoint", "unsigned"),
    [(None, True), ("https://s3.example.test", True), ("http://127.0.0.1:9000", False)],
)
def test_the_body_goes_unsigned_only_over_tls(endpoint: str | None, unsigned: bool) -> None:
    config = _s3_config(S3Options(bucket="b", endpoint_url=endpoint))
    assert config["unsigned_payload"] is unsigned
