"""Slow clients over real sockets: a head trickled or never sent, a body that stops.

Each is answered 408 (or closed) within its bound, releases what it held (staged bytes,
the tus lease, its socket) and stores nothing; 200 of them at once do not keep anyone
else waiting. The server is `seau serve` with 2 s bounds, on a module of its own: the
cases hold connections for seconds, which would stretch the battery's other timings.
"""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.hostile.conftest import SECRET, Target, User, _sign_up, _warm_up
from tests.hostile.rawhttp import exchange
from tests.support.server import seau_server

HEAD_TIMEOUT = 2.0
BODY_IDLE = 2.0
# What a loaded two-core machine may add to a bound before the 408 is read.
LATE = 3.0
BOUNDARY = "slow-boundary"
TUS = "Tus-Resumable: 1.0.0"


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    tmp = tmp_path_factory.mktemp("slow")
    env = {
        "SEAU_DATA_DIR": str(tmp / "data"),
        "SEAU_SECRET_KEY": SECRET,
        "SEAU_LOG_LEVEL": "warning",
        "SEAU_REQUEST_HEAD_TIMEOUT_SECONDS": str(HEAD_TIMEOUT),
        "SEAU_BODY_IDLE_TIMEOUT_SECONDS": str(BODY_IDLE),
        # Longer than the body bound: a stalled PATCH is cut by the server's clock,
        # and the lease it held must be given back, not left to expire.
        "SEAU_UPLOAD_LEASE_SECONDS": "60",
    }
    with seau_server(env, cwd=tmp) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            victim, owner, namer = (_sign_up(client, n) for n in ("victim", "owner", "namer"))
            owned = client.post(
                "/api/v1/files",
                params={"name": "owned.bin"},
                content=b"owned",
                headers={"Authorization": f"Bearer {owner.token}"},
            )
            assert owned.status_code == 201, owned.text
        target = Target(
            server=server,
            data_dir=tmp / "data",
            port=int(server.url.rsplit(":", 1)[1]),
            victim=victim,
            owner=owner,
            namer=namer,
            owned_id=owned.json()["id"],
        )
        _warm_up(target)
        yield target


# -- a slow client, by hand ----------------------------------------------------------


@dataclass
class Slow:
    """One connection sending exactly what it is told, and what came back."""

    sock: socket.socket
    opened: float = field(default_factory=time.monotonic)
    received: bytes = b""
    closed_at: float | None = None

    @classmethod
    def connect(cls, port: int) -> Slow:
        return cls(socket.create_connection(("127.0.0.1", port), timeout=5))

    def send(self, data: bytes) -> bool:
        """Send unless the server has answered or closed; False once it has."""
        if self.poll():
            return False
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self._closed()
            return False
        return True

    def poll(self) -> bool:
        """Read what the server sent, without waiting; True once it has closed."""
        while self.closed_at is None:
            readable, _, _ = select.select([self.sock], [], [], 0)
            if not readable:
                break
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self._closed()
            self.received += chunk
        return self.closed_at is not None

    def wait_closed(self, timeout: float) -> float:
        """Seconds from opening until the server closed."""
        deadline = time.monotonic() + timeout
        while not self.poll():
            assert time.monotonic() < deadline, f"still open; got {self.received!r}"
            select.select([self.sock], [], [], 0.05)
        assert self.closed_at is not None
        return self.closed_at - self.opened

    def close(self) -> None:
        self.sock.close()

    @property
    def status(self) -> int | None:
        if not self.received.startswith(b"HTTP/1.1 "):
            return None
        return int(self.received[9:12])

    def _closed(self) -> None:
        self.closed_at = time.monotonic()


def _complete(received: bytes) -> bool:
    """Whether ``received`` holds a whole answer with a Content-Length."""
    head, separator, body = received.partition(b"\r\n\r\n")
    if not separator:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def _head(method: str, target: str, user: User, *lines: str) -> bytes:
    head = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {user.token}"]
    return ("\r\n".join([*head, *lines]) + "\r\n\r\n").encode()


def _multipart_start(user: User, *, total: int) -> tuple[bytes, bytes]:
    """A multipart upload's head and the first part of a body declared ``total`` long."""
    opening = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="s.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    head = _head(
        "POST",
        "/api/v1/files",
        user,
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}",
        f"Content-Length: {total}",
    )
    return head, opening


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _staged(target: Target) -> list[Path]:
    tmp = target.data_dir / "objects" / ".tmp"
    return [p for p in tmp.rglob("*") if p.is_file()] if tmp.exists() else []


# -- heads ---------------------------------------------------------------------------


def test_a_head_trickled_a_byte_at_a_time_is_408_within_the_bound(slow: Target) -> None:
    client = Slow.connect(slow.port)
    try:
        head = _head("GET", "/api/v1/files", slow.victim)
        for byte in head[:-4]:
            if not client.send(bytes([byte])):
                break
            time.sleep(0.2)
        took = client.wait_closed(HEAD_TIMEOUT + LATE)
    finally:
        client.close()
    assert client.status == 408, client.received
    assert b'"code": "request_timeout"' in client.received
    assert HEAD_TIMEOUT - 0.1 <= took <= HEAD_TIMEOUT + LATE
    slow.assert_serving()


def test_a_connection_that_never_sends_is_408_within_the_bound(slow: Target) -> None:
    client = Slow.connect(slow.port)
    try:
        took = client.wait_closed(HEAD_TIMEOUT + LATE)
    finally:
        client.close()
    assert client.status == 408, client.received
    assert HEAD_TIMEOUT - 0.1 <= took <= HEAD_TIMEOUT + LATE


def test_a_kept_alive_connection_has_the_bound_on_its_second_head(slow: Target) -> None:
    client = Slow.connect(slow.port)
    try:
        client.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        deadline = time.monotonic() + 5
        # The whole first answer: its head and then its body may come in two packets.
        while not _complete(client.received):
            assert not client.poll(), client.received
            assert time.monotonic() < deadline, client.received
        assert client.status == 200
        client.received = b""
        # Within uvicorn's keep-alive timeout, the next request starts and stalls.
        assert client.send(b"GET /heal")
        second = time.monotonic()
        client.wait_closed(HEAD_TIMEOUT + LATE)
    finally:
        client.close()
    assert client.status == 408, client.received
    assert client.closed_at is not None
    assert HEAD_TIMEOUT - 0.1 <= client.closed_at - second <= HEAD_TIMEOUT + LATE


# -- bodies --------------------------------------------------------------------------


def test_a_multipart_upload_that_stalls_is_408_and_stores_nothing(slow: Target) -> None:
    before = slow.snapshot()
    head, opening = _multipart_start(slow.victim, total=4 * 1024 * 1024)
    client = Slow.connect(slow.port)
    try:
        assert client.send(head + opening + b"m" * 300_000)
        stalled = time.monotonic()
        client.wait_closed(BODY_IDLE + LATE)
    finally:
        client.close()
    assert client.closed_at is not None
    assert BODY_IDLE - 0.1 <= client.closed_at - stalled <= BODY_IDLE + LATE
    assert client.status == 408, client.received
    assert b"application/problem+json" in client.received
    slow.assert_stored_nothing(before, wait=2.0)
    slow.assert_serving()


def test_a_raw_upload_that_stalls_is_408_and_stores_nothing(slow: Target) -> None:
    before = slow.snapshot()
    client = Slow.connect(slow.port)
    try:
        head = _head(
            "POST",
            "/api/v1/files?name=raw.bin",
            slow.victim,
            "Content-Type: application/octet-stream",
            "Content-Length: 1000000",
        )
        assert client.send(head + b"r" * 200_000)
        stalled = time.monotonic()
        client.wait_closed(BODY_IDLE + LATE)
    finally:
        client.close()
    assert client.closed_at is not None
    assert BODY_IDLE - 0.1 <= client.closed_at - stalled <= BODY_IDLE + LATE
    assert client.status == 408, client.received
    slow.assert_stored_nothing(before, wait=2.0)


def test_a_body_that_keeps_coming_slowly_is_not_cut(slow: Target) -> None:
    """The bound is on silence, not on the whole body: 5 s of body, a piece a second."""
    chunks = [bytes([65 + i]) * 1000 for i in range(6)]
    head = _head(
        "POST",
        "/api/v1/files?name=steady.bin",
        slow.namer,
        "Content-Type: application/octet-stream",
        f"Content-Length: {sum(map(len, chunks))}",
        "Connection: close",
    )

    def paced() -> Iterator[bytes]:
        yield head
        for chunk in chunks:
            time.sleep(BODY_IDLE / 2)
            yield chunk

    response = exchange(slow.port, list(paced()), timeout=30)
    assert response.status == 201, response.text
    file_id = response.json()["id"]
    with slow.http() as client:
        auth = {"Authorization": f"Bearer {slow.namer.token}"}
        content = client.get(f"/api/v1/files/{file_id}/content", headers=auth)
        assert content.content == b"".join(chunks)
        assert client.delete(f"/api/v1/files/{file_id}", headers=auth).status_code == 204


def test_a_tus_patch_that_stalls_is_cut_and_gives_its_upload_back(slow: Target) -> None:
    """The bytes that arrived count (tus resumes from them); the lease is released at
    once, not left to expire; no file exists until the upload completes."""
    before = slow.snapshot()
    data = os.urandom(300_000)
    auth = {"Authorization": f"Bearer {slow.victim.token}", "Tus-Resumable": "1.0.0"}
    with slow.http() as http:
        created = http.post("/api/v1/uploads", headers={**auth, "Upload-Length": str(len(data))})
        assert created.status_code == 201, created.text
        location = created.headers["location"]
        path = httpx.URL(location).path
    client = Slow.connect(slow.port)
    try:
        head = _head(
            "PATCH",
            path,
            slow.victim,
            TUS,
            "Upload-Offset: 0",
            "Content-Type: application/offset+octet-stream",
            f"Content-Length: {len(data)}",
        )
        assert client.send(head + data[:100_000])
        stalled = time.monotonic()
        client.wait_closed(BODY_IDLE + LATE)
    finally:
        client.close()
    assert client.closed_at is not None
    assert BODY_IDLE - 0.1 <= client.closed_at - stalled <= BODY_IDLE + LATE
    assert client.status == 408, client.received
    assert slow.snapshot().rows == before.rows
    with slow.http() as http:
        # The lease is back within moments, far sooner than its 60 s.
        deadline = time.monotonic() + 5
        while True:
            offset = int(http.head(path, headers=auth).headers["upload-offset"])
            resumed = http.patch(
                path,
                headers={
                    **auth,
                    "Upload-Offset": str(offset),
                    "Content-Type": "application/offset+octet-stream",
                },
                content=data[offset:],
            )
            if resumed.status_code != 423 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert resumed.status_code == 204, resumed.text
        assert 0 < offset <= 100_000
        listing = http.get("/api/v1/files", headers=auth).json()["items"]
        (stored,) = listing
        content = http.get(f"/api/v1/files/{stored['id']}/content", headers=auth)
        assert content.content == data
        assert http.delete(f"/api/v1/files/{stored['id']}", headers=auth).status_code == 204
    slow.assert_stored_nothing(before, wait=2.0)


# -- many at once --------------------------------------------------------------------


def test_200_slow_connections_keep_no_one_else_waiting_and_leave_nothing(
    slow: Target,
) -> None:
    """100 heads trickled a byte every half second and 100 multipart uploads stalled
    mid-body, all at once: others are served promptly meanwhile, every slow one is
    answered or closed within its bound, and the server holds no more sockets, staged
    files or rows than before."""
    before = slow.snapshot()
    fds_before = _open_fds(slow.server.pid)
    head, opening = _multipart_start(slow.victim, total=1024 * 1024)
    heads = [Slow.connect(slow.port) for _ in range(100)]
    bodies = [Slow.connect(slow.port) for _ in range(100)]
    latencies: list[float] = []
    try:
        for client in bodies:
            assert client.send(head + opening + b"b" * 20_000)
        started = time.monotonic()
        trickle = _head("GET", "/api/v1/files", slow.victim)
        sent = 0
        with slow.http() as http:
            auth = {"Authorization": f"Bearer {slow.namer.token}"}
            while time.monotonic() < started + max(HEAD_TIMEOUT, BODY_IDLE) + LATE:
                for client in heads:
                    client.send(trickle[sent : sent + 1])
                sent = min(sent + 1, len(trickle) - 5)
                asked = time.monotonic()
                assert http.get("/healthz").status_code == 200
                made = http.post(
                    "/api/v1/files", params={"name": "other.txt"}, content=b"x", headers=auth
                )
                assert made.status_code == 201, made.text
                gone = http.delete(f"/api/v1/files/{made.json()['id']}", headers=auth)
                assert gone.status_code == 204
                latencies.append(time.monotonic() - asked)
                time.sleep(0.5)
        for client in [*heads, *bodies]:
            client.wait_closed(LATE)
    finally:
        for client in [*heads, *bodies]:
            client.close()
    statuses = {client.status for client in [*heads, *bodies]}
    assert statuses <= {408, None}, statuses
    assert sum(client.status == 408 for client in heads) >= 95
    assert sum(client.status == 408 for client in bodies) >= 95
    for client in heads:
        assert client.closed_at is not None
        assert client.closed_at - client.opened <= HEAD_TIMEOUT + LATE
    assert max(latencies) < 1.0, latencies
    slow.assert_stored_nothing(before, wait=3.0)
    assert _staged(slow) == []
    deadline = time.monotonic() + 5
    while _open_fds(slow.server.pid) > fds_before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _open_fds(slow.server.pid) <= fds_before
    slow.assert_serving()
    log = slow.server.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-5000:]
