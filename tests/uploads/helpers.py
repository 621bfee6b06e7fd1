"""Speaking tus by hand, for tests that look at every header."""

from __future__ import annotations

import base64
import hashlib
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.conftest import Running
from tests.support.moto import bucket_keys, pending_multipart_uploads

TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_STREAM = {"Content-Type": "application/offset+octet-stream"}
MiB = 1024 * 1024


def metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def checksum(algorithm: str, data: bytes) -> str:
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


async def create(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    *,
    length: int | None,
    name: str = "upload.bin",
    extra: dict[str, str] | None = None,
    body: bytes | None = None,
) -> str:
    headers = {**auth, **TUS, "Upload-Metadata": metadata(filename=name), **(extra or {})}
    if length is None:
        headers["Upload-Defer-Length"] = "1"
    else:
        headers["Upload-Length"] = str(length)
    if body is not None:
        headers.update(OFFSET_STREAM)
    response = await client.post("/api/v1/uploads", headers=headers, content=body)
    assert response.status_code == 201, response.text
    location = response.headers["location"]
    assert location.startswith("/api/v1/uploads/")
    return location


async def patch(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    location: str,
    *,
    offset: int,
    data: bytes,
    extra: dict[str, str] | None = None,
) -> httpx.Response:
    headers = {**auth, **TUS, **OFFSET_STREAM, "Upload-Offset": str(offset), **(extra or {})}
    return await client.patch(location, headers=headers, content=data)


async def send_all(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    location: str,
    data: bytes,
    *,
    chunk: int,
) -> httpx.Response:
    offset = 0
    while True:
        piece = data[offset : offset + chunk]
        response = await patch(client, auth, location, offset=offset, data=piece)
        assert response.status_code == 204, response.text
        offset = int(response.headers["upload-offset"])
        if offset >= len(data):
            return response


def upload_id(location: str) -> str:
    return urlsplit(location).path.rstrip("/").rsplit("/", 1)[-1]


def staged_for(running: Running, location: str) -> list[str]:
    """What the store still stages for one upload: its staging file, or its S3
    multipart upload and tail objects."""
    hex_id = uuid.UUID(upload_id(location)).hex
    settings = running.settings
    url = settings.effective_storage_url
    if url.startswith("s3://"):
        assert settings.aws_endpoint_url is not None
        bucket = url.removeprefix("s3://").split("/", 1)[0]
        pending = pending_multipart_uploads(settings.aws_endpoint_url, bucket)
        tails = bucket_keys(settings.aws_endpoint_url, bucket)
        return [k for k in pending if k.endswith(hex_id)] + [
            k for k in tails if k.startswith(f"uploads/{hex_id}/")
        ]
    root = Path(urlsplit(url).path)
    staging = root / ".tmp" / "uploads" / hex_id
    return [str(staging)] if staging.exists() else []


def assert_head_problem(response: httpx.Response, status: int) -> None:
    """A HEAD answer carries a problem's status and headers, never its body."""
    assert response.status_code == status, response.headers
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["tus-resumable"] == "1.0.0"
