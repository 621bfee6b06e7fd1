"""Clients that go away in the middle of an upload or a download."""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.faults.conftest import Deploy
from tests.faults.harness import (
    Deployment,
    MiB,
    assert_invariants,
    download,
    sha,
    sign_up,
    upload,
)
from tests.support.server import Server

# Real servers killed and restarted, timeouts waited out: minutes in all.
pytestmark = pytest.mark.slow


def _abandon(url: str, head: bytes, body: bytes, *, reset: bool) -> None:
    """Send ``head`` and ``body`` on a raw connection, then vanish."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head)
        for start in range(0, len(body), 256 * 1024):
            sock.sendall(body[start : start + 256 * 1024])
            time.sleep(0.002)
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _raw_upload_head(url: str, auth: dict[str, str], *, length: int) -> bytes:
    host = urlsplit(url).netloc
    return (
        f"POST /api/v1/files?name=gone.bin HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: {auth['Authorization']}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def _multipart_head(url: str, auth: dict[str, str], *, boundary: str, length: int) -> bytes:
    host = urlsplit(url).netloc
    return (
        f"POST /api/v1/files HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: {auth['Authorization']}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _part(boundary: str, name: str, data: bytes) -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + data


def _eventually(condition: Callable[[], bool], *, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still not true after {timeout:.0f}s: {what}"
        time.sleep(0.1)


class Debris:
    """What the store and the database hold now, to compare with later."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.before = self._now()

    def _now(self) -> tuple[set[str], set[str], list[str]]:
        return (
            {r.id for r in self.deployment.rows()},
            set(self.deployment.objects()),
            self.deployment.multipart_uploads(),
        )

    def none_added(self) -> bool:
        return self._now() == self.before


@pytest.fixture(scope="module")
def served(deploy_for_module: Deploy) -> Iterator[tuple[Deployment, Server]]:
    deployment = deploy_for_module()
    with deployment.serve() as server:
        yield deployment, server


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_client_gone_mid_upload_leaves_nothing_even_before_gc(
    served: tuple[Deployment, Server], reset: bool
) -> None:
    deployment, server = served
    auth = sign_up(server.url)
    debris = Debris(deployment)
    # Past the first 8 MiB part: a multipart upload must be aborted.
    head = _raw_upload_head(server.url, auth, length=40 * MiB)
    _abandon(server.url, head, os.urandom(20 * MiB), reset=reset)
    _eventually(debris.none_added, what="the server cleaned up")
    assert_invariants(deployment, url=server.url, accounts=[auth], kept={})


def test_client_gone_mid_multipart_request_keeps_none_of_its_files(
    served: tuple[Deployment, Server],
) -> None:
    deployment, server = served
    auth = sign_up(server.url)
    debris = Debris(deployment)
    boundary = "fault-boundary-1234"
    complete = _part(boundary, "first.bin", os.urandom(3 * MiB)) + b"\r\n"
    started = _part(boundary, "second.bin", os.urandom(12 * MiB))
    head = _multipart_head(server.url, auth, boundary=boundary, length=64 * MiB)
    _abandon(server.url, head, complete + started, reset=False)
    _eventually(debris.none_added, what="the server cleaned up")
    assert_invariants(deployment, url=server.url, accounts=[auth], kept={})


def test_clients_gone_mid_download_leave_the_server_serving(
    served: tuple[Deployment, Server],
) -> None:
    deployment, server = served
    auth = sign_up(server.url)
    data = os.urandom(24 * MiB)
    created = upload(server.url, auth, name="big.bin", body=data)
    assert created.status == 201, created.body
    file_id = created.response.json()["id"]  # type: ignore[union-attr]
    log_start = server.log.stat().st_size

    # More abandoned downloads than obstore's connection pool would hold
    # if abandoning one leaked its S3 connection.
    for _ in range(12):
        with httpx.stream(
            "GET", f"{server.url}/api/v1/files/{file_id}/content", headers=auth, timeout=30
        ) as response:
            assert response.status_code == 200
            for got, _chunk in enumerate(response.iter_bytes(1024 * 1024)):
                if got == 2:
                    break

    fetched = download(server.url, auth, file_id)
    assert fetched.error is None, repr(fetched.error)
    assert sha(fetched.body) == sha(data)
    with server.log.open("rb") as log:
        log.seek(log_start)
        assert b"Traceback" not in log.read(), "abandoned downloads logged errors"
    assert_invariants(deployment, url=server.url, accounts=[auth], kept={file_id: sha(data)})
