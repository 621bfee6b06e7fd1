"""seau with each kind of store, and a plain HTTP client that sends a direct upload's
bytes where the answers say: to moto's server over HTTP, or to seau itself."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from tests.conftest import TEST_SECRET, s3_settings, sign_up
from tests.support.databases import scratch_database
from tests.support.moto import make_bucket

from seau.app import create_app
from seau.db.base import utcnow
from seau.db.models import DirectUpload
from seau.settings import Settings

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

SEAU = "http://seau.test"
MiB = 1024 * 1024


@dataclass
class Site:
    store: str
    app: FastAPI
    settings: Settings
    objects: Path
    bucket: str | None = None
    endpoint: str | None = None

    def client(self) -> httpx.AsyncClient:
        """The API through ASGI; any other host (moto) over the network."""
        return httpx.AsyncClient(
            base_url=SEAU,
            mounts={SEAU: httpx.ASGITransport(app=self.app)},
            timeout=60,
        )

    def s3(self) -> S3Client:
        assert self.endpoint is not None
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def stored_keys(self) -> list[str]:
        """Every object under `files/` (what a file or a direct upload may have left)."""
        if self.bucket is not None:
            listing = self.s3().list_objects_v2(Bucket=self.bucket, Prefix="files/")
            return [item["Key"] for item in listing.get("Contents", [])]
        root = self.objects / "files"
        return [str(p.relative_to(self.objects)) for p in root.rglob("*") if p.is_file()]

    def multipart_uploads(self) -> list[str]:
        if self.bucket is None:
            return [p.name for p in (self.objects / ".tmp" / "direct").glob("*")]
        listing = self.s3().list_multipart_uploads(Bucket=self.bucket)
        return [item["UploadId"] for item in listing.get("Uploads", [])]

    async def expire(self, upload_id: str) -> None:
        """Move the upload's expiry into the past."""
        sessions = self.app.state.seau.sessions
        async with sessions() as session:
            await session.execute(
                update(DirectUpload)
                .where(DirectUpload.id == uuid.UUID(upload_id))
                .values(expires_at=utcnow().replace(year=2000))
            )
            await session.commit()


async def open_site(
    request: pytest.FixtureRequest,
    tmp: Path,
    *,
    store: str,
    database: str = "sqlite",
    **more: object,
) -> AsyncIterator[Site]:
    with scratch_database(database, tmp) as database_url:  # type: ignore[arg-type]
        extra: dict[str, object] = {}
        bucket = endpoint = None
        if store in ("s3", "ceph"):
            # moto's server, or Ceph's RADOS Gateway: a real S3 engine, which enforces
            # the POST policy that moto does not.
            server = request.getfixturevalue("s3_server" if store == "s3" else "ceph_server")
            endpoint = server.endpoint_url
            bucket = make_bucket(endpoint)
            storage_url = f"s3://{bucket}"
            extra = s3_settings(endpoint)
        else:
            storage_url = (tmp / "objects").as_uri()
        settings = Settings(
            data_dir=tmp,
            database_url=database_url,
            storage_url=storage_url,
            secret_key=TEST_SECRET,
            max_upload_bytes=64 * MiB,
            signup_per_address_per_hour=0,
            signup_per_minute=0,
            direct_multipart_threshold_bytes=8 * MiB,
            **extra,  # type: ignore[arg-type]
            **more,  # type: ignore[arg-type]
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            yield Site(
                store=store,
                app=app,
                settings=settings,
                objects=tmp / "objects",
                bucket=bucket,
                endpoint=endpoint,
            )


@pytest.fixture(
    scope="module", params=["local", "s3", pytest.param("ceph", marks=pytest.mark.ceph)]
)
async def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Site]:
    store = request.param
    async for made in open_site(request, tmp_path_factory.mktemp(f"direct-{store}"), store=store):
        yield made


@pytest.fixture
async def http(site: Site) -> AsyncIterator[httpx.AsyncClient]:
    async with site.client() as client:
        yield client


@pytest.fixture
async def auth(http: httpx.AsyncClient) -> dict[str, str]:
    return await sign_up(http)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def create(
    http: httpx.AsyncClient, auth: dict[str, str], *, expect: int = 201, **body: object
) -> dict[str, Any]:
    response = await http.post("/api/v1/direct-uploads", json=body, headers=auth)
    assert response.status_code == expect, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def post_form(http: httpx.AsyncClient, upload: dict[str, Any], data: bytes) -> httpx.Response:
    """What a browser form (or any S3 POST client) sends: the fields, then the file."""
    return await http.post(
        upload["url"],
        data=upload["fields"],
        files={"file": ("blob", data, upload["fields"].get("Content-Type", "x/y"))},
    )


async def send_parts(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    upload_id: str,
    chunks: dict[int, bytes],
) -> list[dict[str, object]]:
    """PUT each part to the URL seau gave for it; the parts as `complete` takes them."""
    signed = await http.post(
        f"/api/v1/direct-uploads/{upload_id}/parts",
        json={"numbers": sorted(chunks)},
        headers=auth,
    )
    assert signed.status_code == 200, signed.text
    done = []
    for part in signed.json()["parts"]:
        put = await http.put(part["url"], content=chunks[part["number"]])
        assert put.status_code == 200, put.text
        done.append({"number": part["number"], "etag": put.headers["etag"]})
    return done


async def complete(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    upload_id: str,
    *,
    parts: list[dict[str, object]] | None = None,
    expect: int = 201,
) -> dict[str, Any]:
    response = await http.post(
        f"/api/v1/direct-uploads/{upload_id}/complete",
        json={"parts": parts} if parts is not None else {},
        headers=auth,
    )
    assert response.status_code == expect, response.text
    answer: dict[str, Any] = response.json()
    return answer
