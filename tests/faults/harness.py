"""A real deployment to break: `seau serve`, S3 (moto or Ceph's RGW), SQL, fault proxies.

`Deployment` knows the direct addresses (for inspection and `seau gc`) and the
ones seau is given (through a `FaultProxy` when the test wants to break that
link). `assert_invariants` checks what every fault scenario must leave true:

- every upload answered 2xx downloads byte-identical (and so does every listed file);
- no `ready` row lacks its object;
- the quota invariant (`tests/quotas/invariant.py`): each owner's usage row counts
  their ready files and their reservations; after `seau gc`, no reservation outlives
  its upload. Every deployment has a default quota no scenario reaches, so that every
  upload holds a reservation for the faults to strand;
- after `seau gc`: no pending row, no orphan object, no unfinished multipart upload.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import boto3
import httpx
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from seau.db.models import FileState, UserFile
from seau.files.keys import FILES_PREFIX
from tests.quotas.invariant import check_invariant
from tests.support.ceph import CephGateway
from tests.support.faultproxy import FaultProxy
from tests.support.moto import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, MotoServer
from tests.support.server import SEAU, Server, seau_server, server_env

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

T = TypeVar("T")

MiB = 1024 * 1024
STORAGE_TIMEOUT = 3.0
# "Prompt": a failed upload may wait out the storage timeout three times (the
# failing request, the multipart abort, the compensating delete); plus a margin.
PROMPT = 4 * STORAGE_TIMEOUT + 3
PROBLEM = "application/problem+json"
# A quota every owner has and no scenario reaches: an upload holds a reservation
# only under a quota (none by default), and the faults must be able to strand one.
QUOTA_BYTES = 1 << 40


@dataclass(frozen=True)
class FileRow:
    id: str
    object_key: str
    state: str
    size: int
    sha256: str | None


@dataclass
class Deployment:
    tmp: Path
    s3: MotoServer | CephGateway
    bucket: str
    database_url: str
    """Direct, for inspection and `seau gc`."""
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(40))
    s3_proxy: FaultProxy | None = None
    db_proxy: FaultProxy | None = None

    # -- configuration ------------------------------------------------------

    def _env(self, *, database_url: str, s3_endpoint: str) -> dict[str, str]:
        return {
            "SEAU_DATA_DIR": str(self.tmp / "data"),
            "SEAU_DATABASE_URL": database_url,
            "SEAU_STORAGE_URL": f"s3://{self.bucket}",
            "SEAU_SECRET_KEY": self.secret_key,
            "SEAU_S3_PATH_STYLE": "true",
            "SEAU_STORAGE_TIMEOUT_SECONDS": str(STORAGE_TIMEOUT),
            "SEAU_DATABASE_TIMEOUT_SECONDS": str(STORAGE_TIMEOUT),
            "SEAU_DEFAULT_QUOTA_BYTES": str(QUOTA_BYTES),
            "AWS_ENDPOINT_URL": s3_endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_REGION": REGION,
        }

    @property
    def serve_env(self) -> dict[str, str]:
        """What `seau serve` gets: the proxies' addresses where there are proxies."""
        database_url = self.database_url
        if self.db_proxy is not None:
            database_url = (
                make_url(database_url)
                .set(host=self.db_proxy.host, port=self.db_proxy.port)
                .render_as_string(hide_password=False)
            )
        s3_endpoint = self.s3.endpoint_url
        if self.s3_proxy is not None:
            s3_endpoint = f"http://{self.s3_proxy.address}"
        return self._env(database_url=database_url, s3_endpoint=s3_endpoint)

    @property
    def direct_env(self) -> dict[str, str]:
        return self._env(database_url=self.database_url, s3_endpoint=self.s3.endpoint_url)

    def serve(self, name: str = "seau") -> AbstractContextManager[Server]:
        cwd = self.tmp / name
        cwd.mkdir(exist_ok=True)
        return seau_server(self.serve_env, cwd=cwd)

    # -- the tools an operator has ------------------------------------------

    def gc(self) -> subprocess.CompletedProcess[str]:
        """`seau gc` with a one-second grace, straight to the database and S3."""
        return subprocess.run(
            [SEAU, "gc"],
            cwd=self.tmp,
            capture_output=True,
            text=True,
            env=server_env({**self.direct_env, "SEAU_GC_GRACE_SECONDS": "1"}),
            timeout=60,
            check=False,
        )

    def snapshot_s3(self) -> dict[str, bytes]:
        """The bucket's objects. moto keeps nothing across a restart, a real S3
        server keeps everything: give this to `start_s3` to play the latter."""
        client = s3_client(self.s3.endpoint_url)
        return {
            key: client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            for key in self.objects()
        }

    def start_s3(self, objects: dict[str, bytes] | None = None) -> None:
        """Start S3 (again, on the same port) with the bucket; on moto, with ``objects``."""
        self.s3.start()
        client = s3_client(self.s3.endpoint_url)
        if isinstance(self.s3, CephGateway):
            # Ceph kept the bucket and every object through the restart.
            names = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
            if self.bucket not in names:
                client.create_bucket(Bucket=self.bucket)
            return
        client.create_bucket(Bucket=self.bucket)
        for key, data in (objects or {}).items():
            client.put_object(Bucket=self.bucket, Key=key, Body=data)

    # -- inspection ---------------------------------------------------------

    def rows(self) -> list[FileRow]:
        async def read() -> list[FileRow]:
            engine = create_async_engine(self.database_url)
            try:
                async with engine.connect() as connection:
                    result = await connection.execute(
                        select(
                            UserFile.id,
                            UserFile.object_key,
                            UserFile.state,
                            UserFile.size,
                            UserFile.sha256,
                        )
                    )
                    return [
                        FileRow(
                            id=str(r.id),
                            object_key=r.object_key,
                            state=str(r.state),
                            size=r.size,
                            sha256=r.sha256,
                        )
                        for r in result
                    ]
            finally:
                await engine.dispose()

        return _run_async(read)

    def objects(self) -> dict[str, int]:
        """Every object under ``files/`` and its size, as S3 itself reports it."""
        client = s3_client(self.s3.endpoint_url)
        found: dict[str, int] = {}
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=FILES_PREFIX
        ):
            for item in page.get("Contents", []):
                found[item["Key"]] = item["Size"]
        return found

    def multipart_uploads(self) -> list[str]:
        """Keys of multipart uploads started and neither completed nor aborted."""
        listed = s3_client(self.s3.endpoint_url).list_multipart_uploads(Bucket=self.bucket)
        return sorted(upload["Key"] for upload in listed.get("Uploads", []))


@functools.cache
def s3_client(endpoint_url: str) -> S3Client:
    """boto3, for setup and inspection only, never for the code under test."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        region_name=REGION,
    )


def _run_async(work: Callable[[], Coroutine[object, object, T]]) -> T:
    # A loop of its own in a thread of its own: callers are plain sync tests,
    # and pytest-asyncio may have a loop set on this thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, work()).result()


# -- the client side -------------------------------------------------------


def sign_up(url: str) -> dict[str, str]:
    """A new account on the server at ``url``; returns its Authorization header."""
    email, password = f"fault-{secrets.token_hex(6)}@example.com", "fault password 1"
    created = httpx.post(
        f"{url}/api/v1/users", json={"email": email, "password": password}, timeout=30
    )
    assert created.status_code == 201, created.text
    token = httpx.post(
        f"{url}/api/v1/auth/token", data={"username": email, "password": password}, timeout=30
    )
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class SlowBody:
    """An upload body of random bytes, sent in blocks with a pause between them.

    Remembers the SHA-256 of what it sent; ``reached`` is set once ``trigger``
    bytes have gone, so a test can inject its fault mid-upload.
    """

    def __init__(
        self, total: int, *, trigger: int, pause: float = 0.01, block: int = 256 * 1024
    ) -> None:
        self.total = total
        self.trigger = trigger
        self.pause = pause
        self.block = block
        self.sent = 0
        self.reached = threading.Event()
        self._hash = hashlib.sha256()

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def __iter__(self) -> Iterator[bytes]:
        while self.sent < self.total:
            piece = os.urandom(min(self.block, self.total - self.sent))
            self._hash.update(piece)
            self.sent += len(piece)
            yield piece
            if self.sent >= self.trigger:
                self.reached.set()
                time.sleep(self.pause)


@dataclass
class Outcome:
    """What a client saw: a response, or the exception that ended the exchange."""

    response: httpx.Response | None = None
    body: bytes = b""
    error: BaseException | None = None
    elapsed: float = 0.0

    @property
    def status(self) -> int | None:
        return None if self.response is None else self.response.status_code


def upload(
    url: str,
    headers: dict[str, str],
    *,
    name: str,
    body: bytes | Iterable[bytes],
    timeout: float = 60,
) -> Outcome:
    """A raw upload; a transport error is an outcome, not an exception."""
    started = time.monotonic()
    outcome = Outcome()
    try:
        outcome.response = httpx.post(
            f"{url}/api/v1/files",
            params={"name": name},
            headers={**headers, "Content-Type": "application/octet-stream"},
            content=body,
            timeout=timeout,
        )
        outcome.body = outcome.response.content
    except httpx.HTTPError as exc:
        outcome.error = exc
    outcome.elapsed = time.monotonic() - started
    return outcome


class InFlight:
    """A request running in a thread of its own, while the test breaks things."""

    def __init__(self, work: Callable[[], Outcome]) -> None:
        self._outcomes: list[Outcome] = []
        self._thread = threading.Thread(target=lambda: self._outcomes.append(work()), daemon=True)
        self._thread.start()

    def result(self, timeout: float = 90) -> Outcome:
        self._thread.join(timeout)
        assert self._outcomes, f"no outcome within {timeout:.0f}s: the request hangs"
        return self._outcomes[0]


def download(
    url: str,
    headers: dict[str, str],
    file_id: str,
    *,
    on_progress: Callable[[int], None] | None = None,
    pause: float = 0.0,
    timeout: float = 60,
) -> Outcome:
    """Stream a download, calling ``on_progress(bytes so far)`` after each chunk."""
    started = time.monotonic()
    outcome = Outcome()
    received = bytearray()
    try:
        with httpx.stream(
            "GET", f"{url}/api/v1/files/{file_id}/content", headers=headers, timeout=timeout
        ) as response:
            outcome.response = response
            if response.status_code >= 300:
                response.read()  # a problem document, kept for `.json()`
            for chunk in response.iter_bytes(256 * 1024):
                received += chunk
                if on_progress is not None:
                    on_progress(len(received))
                if pause:
                    time.sleep(pause)
    except httpx.HTTPError as exc:
        outcome.error = exc
    outcome.body = bytes(received)
    outcome.elapsed = time.monotonic() - started
    return outcome


# -- what a client may see -------------------------------------------------


def assert_prompt_503(outcome: Outcome, *, code: str, within: float = PROMPT) -> None:
    """A 503 problem with Retry-After, answered within ``within`` seconds."""
    assert outcome.error is None, f"no answer but {outcome.error!r}"
    response = outcome.response
    assert response is not None
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    assert response.json()["code"] == code, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert outcome.elapsed < within, f"answered after {outcome.elapsed:.1f}s"


def assert_never_short(outcome: Outcome, expected: bytes) -> None:
    """A download either fails visibly or ends 2xx with every byte, correct."""
    response = outcome.response
    if outcome.error is not None:
        assert isinstance(outcome.error, httpx.TransportError), repr(outcome.error)
        if response is not None and response.status_code == 200:
            declared = int(response.headers["content-length"])
            assert len(outcome.body) < declared, "an error after the whole body"
        return
    assert response is not None
    if response.status_code == 200:
        assert len(outcome.body) == int(response.headers["content-length"])
        assert sha(outcome.body) == sha(expected), "a 200 with the wrong bytes"


# -- the invariants --------------------------------------------------------


def listed_files(url: str, headers: dict[str, str]) -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    cursor = None
    while True:
        params = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
        page = httpx.get(f"{url}/api/v1/files", params=params, headers=headers, timeout=30)
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def assert_invariants(
    deployment: Deployment,
    *,
    url: str,
    accounts: Iterable[dict[str, str]],
    kept: dict[str, str],
    gc: bool = True,
) -> subprocess.CompletedProcess[str] | None:
    """Check the invariants; ``kept`` maps each file id answered 2xx to its SHA-256.

    ``url`` is a server that can reach the database and S3 again.
    """
    listed: dict[str, str] = {}
    for headers in accounts:
        for item in listed_files(url, headers):
            file_id, digest = str(item["id"]), str(item["sha256"])
            listed[file_id] = digest
            fetched = download(url, headers, file_id)
            assert fetched.error is None, f"{file_id}: {fetched.error!r}"
            assert fetched.status == 200, f"{file_id}: {fetched.status}"
            assert sha(fetched.body) == digest, f"{file_id}: other bytes than its SHA-256"
    for file_id, digest in kept.items():
        assert listed.get(file_id) == digest, f"answered 2xx, but {file_id} is gone or changed"

    objects = deployment.objects()
    for row in deployment.rows():
        if row.state == FileState.READY:
            assert row.object_key in objects, f"ready file {row.id} has no object"
            assert objects[row.object_key] == row.size, f"ready file {row.id}: wrong size"
    # Usage and reservations agree with the rows whatever the fault; a reservation
    # may still wait for gc (a killed process's, a failed release's).
    _run_async(lambda: check_invariant(deployment.database_url, live_uploads_only=False))

    if not gc:
        return None
    time.sleep(1.1)  # everything left is older than gc's one-second grace
    result = deployment.gc()
    report = result.stdout + result.stderr
    rows = deployment.rows()
    assert [r for r in rows if r.state != FileState.READY] == [], f"pending rows after gc\n{report}"
    referenced = {r.object_key for r in rows}
    orphans = sorted(set(deployment.objects()) - referenced)
    assert orphans == [], f"orphan objects after gc: {orphans}\n{report}"
    uploads = deployment.multipart_uploads()
    assert uploads == [], f"unfinished multipart uploads after gc: {uploads}\n{report}"
    assert result.returncode == 0, report
    _run_async(lambda: check_invariant(deployment.database_url))
    return result
