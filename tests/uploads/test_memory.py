"""A resumable upload's memory stays flat whatever the size of its requests."""

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
from tests.uploads.helpers import OFFSET_STREAM, TUS, metadata

MiB = 1024 * 1024


def sign_in(server: Server) -> dict[str, str]:
    email, password = f"mem-{secrets.token_hex(4)}@example.com", "memory password"
    httpx.post(f"{server.url}/api/v1/users", json={"email": email, "password": password})
    token = httpx.post(
        f"{server.url}/api/v1/auth/token", data={"username": email, "password": password}
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def body(size: int, block: bytes, digest: hashlib._Hash) -> Iterator[bytes]:
    sent = 0
    while sent < size:
        piece = block[: min(len(block), size - sent)]
        digest.update(piece)
        sent += len(piece)
        yield piece


def upload(server: Server, auth: dict[str, str], size: int, *, request_size: int) -> None:
    """One upload of ``size`` bytes in requests of ``request_size``, streamed."""
    created = httpx.post(
        f"{server.url}/api/v1/uploads",
        headers={
            **auth,
            **TUS,
            "Upload-Length": str(size),
            "Upload-Metadata": metadata(filename="m"),
        },
    )
    location = f"{server.url}{created.headers['location']}"
    digest, block, offset = hashlib.sha256(), os.urandom(MiB), 0
    while offset < size:
        length = min(request_size, size - offset)
        response = httpx.patch(
            location,
            headers={
                **auth,
                **TUS,
                **OFFSET_STREAM,
                "Upload-Offset": str(offset),
                "Content-Length": str(length),
            },
            content=body(length, block, digest),
            timeout=120,
        )
        assert response.status_code == 204, response.text
        offset = int(response.headers["upload-offset"])
    file_id = location.rsplit("/", 1)[-1]
    file = httpx.get(f"{server.url}/api/v1/files/{file_id}", headers=auth).json()
    assert file["sha256"] == digest.hexdigest()


@pytest.mark.parametrize("store", ["local", "s3"])
def test_peak_rss_for_a_64_mib_request_stays_within_32_mib_of_1_mib(
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
        upload(server, auth, MiB, request_size=MiB)
        upload(server, auth, 6 * MiB, request_size=MiB)
        small = server.peak_rss_bytes()
        upload(server, auth, 64 * MiB, request_size=64 * MiB)
        upload(server, auth, 64 * MiB, request_size=16 * MiB)
        grown = server.peak_rss_bytes() - small
    assert grown < 32 * MiB, f"peak RSS grew by {grown / MiB:.1f} MiB"
