"""A real S3 server over HTTP for tests: moto's standalone server in a subprocess.

Use the session fixture ``s3_server`` (one server for the run) and give each test
its own bucket with ``make_bucket``. Fault tests that stop the server must use
their own: ``with running_moto_server() as server: ... server.stop(); server.start()``.

moto keeps everything in memory, so a restart comes back empty: recreate buckets.
Without the server, a test fails in CI (``CI`` set) and skips elsewhere.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import httpx
import pytest

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

MOTO_SERVER = Path(sys.executable).parent / "moto_server"
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"
REGION = "us-east-1"
START_TIMEOUT_SECONDS = 20.0


class MotoUnavailable(RuntimeError):
    """moto_server could not be started or did not answer in time."""


class MotoServer:
    """One moto_server process on a fixed local port; stop and start keep the port."""

    def __init__(self, *, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port if port is not None else restartable_port(host)
        self._process: subprocess.Popen[bytes] | None = None
        self._log = Path(tempfile.gettempdir()) / f"moto-{os.getpid()}-{self.port}.log"

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, *, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Start the server and wait until it answers HTTP; raises `MotoUnavailable`."""
        if self.running:
            return
        if not MOTO_SERVER.exists():
            raise MotoUnavailable(f"{MOTO_SERVER} not found (install moto[server])")
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                [str(MOTO_SERVER), "-H", self.host, "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                httpx.get(self.endpoint_url, timeout=1.0)
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            return
        tail = self._log_tail()
        self.stop()
        raise MotoUnavailable(
            f"moto_server did not answer on {self.endpoint_url} within {timeout:.0f}s; "
            f"log tail: {tail!r}"
        )

    def stop(self) -> None:
        """Terminate the server (killing it if it lingers); a no-op when stopped."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self._log.unlink(missing_ok=True)

    def restart(self) -> None:
        """Stop and start on the same port. Every bucket is gone afterwards."""
        self.stop()
        self.start()

    def _log_tail(self) -> str:
        try:
            return self._log.read_text(errors="replace")[-500:]
        except OSError:
            return ""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


# Below Linux's default ephemeral range (32768-60999), from which `free_port` and every
# outgoing connection take theirs.
_RESTARTABLE = range(20000, 32768)


def restartable_port(host: str = "127.0.0.1") -> int:
    """A free port for a server that is killed and started again on it (the fault
    tests): outside the range the kernel hands out, so that while the server is down
    no other server of a parallel test worker is given its port (one was, once: Ceph's
    gateway could not start again). Free when chosen, as `free_port`'s are."""
    for _ in range(200):
        port = secrets.choice(_RESTARTABLE)
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        return port
    return free_port(host)


def unavailable(message: str) -> None:
    """The S3 server is missing: a failure in CI, a skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI requires it)", pytrace=False)
    pytest.skip(message)


@contextmanager
def running_moto_server() -> Iterator[MotoServer]:
    """A private server for one test or fixture, stopped on exit."""
    server = MotoServer()
    try:
        server.start()
    except MotoUnavailable as exc:
        unavailable(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoServer]:
    """One moto server for the whole run. Do not stop it; see `running_moto_server`."""
    with running_moto_server() as server:
        yield server


def make_bucket(endpoint_url: str) -> str:
    """Create a bucket with a fresh name and return the name."""
    name = f"seau-test-{secrets.token_hex(6)}"
    _client(endpoint_url).create_bucket(Bucket=name)
    return name


def bucket_keys(endpoint_url: str, bucket: str) -> list[str]:
    """Every key in ``bucket``, as S3 itself reports it (prefixes included)."""
    listed = _client(endpoint_url).list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def pending_multipart_uploads(endpoint_url: str, bucket: str) -> list[str]:
    """Keys of multipart uploads started and neither completed nor aborted."""
    listed = _client(endpoint_url).list_multipart_uploads(Bucket=bucket)
    return sorted(upload["Key"] for upload in listed.get("Uploads", []))


def content_type(endpoint_url: str, bucket: str, key: str) -> str:
    """The Content-Type S3 stored for ``key``."""
    found: str = _client(endpoint_url).head_object(Bucket=bucket, Key=key)["ContentType"]
    return found


def _client(endpoint_url: str) -> S3Client:
    """boto3, for test setup and inspection only, never for the code under test."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        region_name=REGION,
    )
