"""Streaming is proven: a 512 MiB upload costs the server no more memory than 1 MiB."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.moto import make_bucket
from tests.support.server import Server, seau_server

MiB = 1024 * 1024
BOUNDARY = "seau-memory-test-boundary"


def multipart_body(total: int, block: bytes, digest: hashlib._Hash) -> Iterator[bytes]:
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    sent = 0
    while sent < total:
        piece = block[: min(len(block), total - sent)]
        digest.update(piece)
        sent += len(piece)
        yield piece
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def upload(server: Server, auth: dict[str, str], size: int) -> None:
    digest = hashlib.sha256()
    block = os.urandom(MiB)
    response = httpx.post(
        f"{server.url}/api/v1/files",
        headers={**auth, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        content=multipart_body(size, block, digest),
        timeout=300,
    )
    assert response.status_code == 201, response.text
    stored = response.json()["files"][0]
    assert stored["size"] == size
    assert stored["sha256"] == digest.hexdigest()


def sign_in(server: Server) -> dict[str, str]:
    email, password = f"mem-{secrets.token_hex(4)}@example.com", "memory password"
    httpx.post(f"{server.url}/api/v1/users", json={"email": email, "password": password})
    token = httpx.post(
        f"{server.url}/api/v1/auth/token", data={"username": email, "password": password}
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.slow
@pytest.mark.parametrize("store", ["local", "s3"])
def test_peak_rss_for_512_mib_stays_within_32_mib_of_1_mib(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = {"SEAU_DATA_DIR": str(tmp_path / "data"), "SEAU_MAX_UPLOAD_BYTES": str(1024 * MiB)}
    if store == "s3":
        endpoint = request.getfixturevalue("s3_server").endpoint_url
        env |= {
            "SEAU_STORAGE_URL": f"s3://{make_bucket(endpoint)}",
            "SEAU_S3_PATH_STYLE": "true",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        }
    with seau_server(env, cwd=tmp_path) as server:
        auth = sign_in(server)
        upload(server, auth, MiB)
        upload(server, auth, MiB)
        small = server.peak_rss_bytes()
        upload(server, auth, 512 * MiB)
        large = server.peak_rss_bytes()
    grown = (large - small) / MiB
    print(
        f"{store}: peak RSS {small / MiB:.1f} MiB after 1 MiB, {large / MiB:.1f} MiB after 512 MiB"
    )
    assert grown <= 32, f"peak RSS grew by {grown:.1f} MiB on a 512 MiB upload"
