"""Resumable uploads across two real `seau serve` instances sharing MariaDB and S3."""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from tusclient.client import TusClient

from tests.support.databases import scratch_database
from tests.support.moto import make_bucket, pending_multipart_uploads
from tests.support.server import Server, seau_server
from tests.uploads.helpers import TUS, metadata

MiB = 1024 * 1024


@dataclass
class Cluster:
    env: dict[str, str]
    root: Path
    stack: ExitStack
    servers: list[Server] = field(default_factory=list)

    def start(self) -> None:
        with ThreadPoolExecutor(2) as pool:
            futures = [
                pool.submit(self.stack.enter_context, seau_server(self.env, cwd=self.root / d))
                for d in ("a", "b")
            ]
            self.servers = [f.result() for f in futures]

    def restart(self) -> None:
        """Stop every instance, then start them all again (on new ports)."""
        for server in self.servers:
            server.stop()
        self.start()

    @property
    def bucket(self) -> str:
        return self.env["SEAU_STORAGE_URL"].removeprefix("s3://")


@pytest.fixture
def cluster(s3_server: object, tmp_path: Path) -> Iterator[Cluster]:
    endpoint = s3_server.endpoint_url  # type: ignore[attr-defined]
    with scratch_database("mysql", tmp_path) as database_url, ExitStack() as stack:
        env = {
            "SEAU_DATABASE_URL": database_url.replace("mysql+aiomysql://", "mariadb://"),
            "SEAU_STORAGE_URL": f"s3://{make_bucket(endpoint)}",
            "SEAU_SECRET_KEY": secrets.token_urlsafe(40),
            "SEAU_S3_PATH_STYLE": "true",
            "SEAU_UPLOAD_LEASE_SECONDS": "2",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        }
        for directory in ("a", "b"):
            (tmp_path / directory).mkdir()
        cluster = Cluster(env=env, root=tmp_path, stack=stack)
        cluster.start()
        yield cluster


def sign_in(url: str) -> dict[str, str]:
    email, password = f"multi-{secrets.token_hex(4)}@example.com", "shared password"
    httpx.post(f"{url}/api/v1/users", json={"email": email, "password": password})
    token = httpx.post(f"{url}/api/v1/auth/token", data={"username": email, "password": password})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def test_chunks_alternate_between_instances_and_survive_a_restart_of_all(
    cluster: Cluster, tmp_path: Path
) -> None:
    auth = sign_in(cluster.servers[0].url)
    data = os.urandom(17 * MiB + 321)
    path = tmp_path / "alternating.bin"

    def uploader_at(server: Server, url: str | None):  # type: ignore[no-untyped-def]  # tuspy is untyped
        client = TusClient(f"{server.url}/api/v1/uploads", headers=auth)
        # 3 MiB chunks with sha1 checksums: S3 parts (5 MiB) span instances.
        return client.uploader(
            # A stream of its own: tuspy opens file_path anew for each request and
            # never closes it (a ResourceWarning, an error here).
            file_stream=io.BytesIO(data),
            url=url,
            chunk_size=3 * MiB,
            metadata={"filename": path.name},
            upload_checksum=True,
        )

    uploader = uploader_at(cluster.servers[0], None)
    uploader.set_url(uploader.create_url())
    upload_path = "/api/v1/uploads/" + uploader.url.rsplit("/", 1)[-1]
    turn = 0
    while uploader.offset < len(data):
        if turn == 3:
            cluster.restart()
            # A fresh client, as after a restart of the client too: HEAD tells the offset.
            uploader = uploader_at(cluster.servers[1], f"{cluster.servers[1].url}{upload_path}")
            assert uploader.offset == 9 * MiB
        server = cluster.servers[turn % 2]
        uploader.set_url(f"{server.url}{upload_path}")
        uploader.upload_chunk()
        turn += 1
    assert turn == 6

    a, b = cluster.servers
    listed = httpx.get(f"{b.url}/api/v1/files", headers=auth).json()["items"]
    assert [(f["name"], f["size"]) for f in listed] == [(path.name, len(data))]
    assert listed[0]["sha256"] == hashlib.sha256(data).hexdigest()
    content = httpx.get(f"{a.url}/api/v1/files/{listed[0]['id']}/content", headers=auth, timeout=60)
    assert content.content == data
    assert pending_multipart_uploads(cluster.env["AWS_ENDPOINT_URL"], cluster.bucket) == []


def test_concurrent_patches_through_two_instances_are_serialized(cluster: Cluster) -> None:
    a, b = cluster.servers
    auth = sign_in(a.url)
    first, second = os.urandom(6 * MiB), os.urandom(2 * MiB)
    created = httpx.post(
        f"{a.url}/api/v1/uploads",
        headers={
            **auth,
            **TUS,
            "Upload-Length": str(len(first) + len(second)),
            "Upload-Metadata": metadata(filename="race.bin"),
        },
    )
    location = created.headers["location"]
    started, release = threading.Event(), threading.Event()

    def slow_body() -> Iterator[bytes]:
        yield first[: 3 * MiB]
        started.set()
        release.wait(30)
        yield first[3 * MiB :]

    patch_headers = {
        **auth,
        **TUS,
        "Content-Type": "application/offset+octet-stream",
        "Upload-Offset": "0",
        "Content-Length": str(len(first)),
    }
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(
            httpx.patch,
            f"{a.url}{location}",
            headers=patch_headers,
            content=slow_body(),
            timeout=60,
        )
        assert started.wait(30)
        time.sleep(0.5)  # the first PATCH holds the lease once its body starts to arrive
        racing = httpx.patch(f"{b.url}{location}", headers=patch_headers, content=first)
        assert racing.status_code == 423, racing.text
        assert racing.headers["upload-offset"] == "0"
        assert racing.headers["tus-resumable"] == "1.0.0"
        release.set()
        assert slow.result().status_code == 204

    late = httpx.patch(f"{b.url}{location}", headers=patch_headers, content=first)
    assert late.status_code == 409
    assert late.headers["upload-offset"] == str(len(first))
    done = httpx.patch(
        f"{b.url}{location}",
        headers={
            **patch_headers,
            "Upload-Offset": str(len(first)),
            "Content-Length": str(len(second)),
        },
        content=second,
    )
    assert done.status_code == 204, done.text
    file_id = location.rsplit("/", 1)[-1]
    content = httpx.get(f"{a.url}/api/v1/files/{file_id}/content", headers=auth, timeout=60)
    assert content.content == first + second
