"""Quotas through the real app on each database, and on S3 (moto) as well as the
local store: every way of making a file reserves before storing, 413
`quota_exceeded` with its members (a cut request leaves no object, nor on S3 an
unfinished multipart upload), exactly reaching the quota fits, deletes and failures
give the room back, the admin API, `GET /api/v1/usage`, and the invariant after
each test."""

from __future__ import annotations

import base64
import functools
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from seau.app import create_app
from seau.auth.keys import AccessKeys
from seau.db.base import utcnow
from seau.db.models import AccessKeyKind, QuotaReservation
from seau.db.unit import unit_of_work
from seau.quotas.service import Quotas
from seau.settings import Settings
from tests.api.helpers import assert_problem
from tests.conftest import TEST_SECRET, s3_settings, sign_up
from tests.quotas.invariant import check_invariant
from tests.support.databases import Kind, scratch_database
from tests.support.moto import MotoServer, bucket_keys, make_bucket, pending_multipart_uploads

TUS = {"Tus-Resumable": "1.0.0"}
OFFSET = {"Content-Type": "application/offset+octet-stream"}

# Each database on the local store; S3 with one of them, the databases meeting
# S3 the same way.
COMBINATIONS = [
    pytest.param(("sqlite", "local"), id="sqlite-local"),
    pytest.param(("mysql", "local"), id="mysql-local", marks=pytest.mark.mysql),
    pytest.param(("postgresql", "local"), id="postgresql-local", marks=pytest.mark.postgresql),
    pytest.param(("sqlite", "s3"), id="sqlite-s3"),
]


@dataclass
class Setup:
    client: httpx.AsyncClient
    admin: dict[str, str]
    quotas: Quotas
    database_url: str
    stored: Callable[[], list[str]]
    """What the store holds, read around seau: the local store's files (its
    temporary ones included), or S3's keys and unfinished multipart uploads."""


def _files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _in_bucket(endpoint_url: str, bucket: str) -> list[str]:
    pending = pending_multipart_uploads(endpoint_url, bucket)
    return bucket_keys(endpoint_url, bucket) + [f"{key} (unfinished)" for key in pending]


@pytest.fixture(params=COMBINATIONS)
async def setup(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Setup]:
    kind: Kind
    kind, store = request.param
    with scratch_database(kind, tmp_path) as url:
        extra: dict[str, object] = {}
        root = tmp_path / "objects"
        storage_url = root.as_uri()
        stored = functools.partial(_files_under, root)
        if store == "s3":
            server: MotoServer = request.getfixturevalue("s3_server")
            bucket = make_bucket(server.endpoint_url)
            storage_url, extra = f"s3://{bucket}", s3_settings(server.endpoint_url)
            stored = functools.partial(_in_bucket, server.endpoint_url, bucket)
        settings = Settings(
            data_dir=tmp_path,
            database_url=url,
            storage_url=storage_url,
            secret_key=TEST_SECRET,
            signup_per_address_per_hour=0,
            signup_per_minute=0,
            default_quota_files=50,
            **extra,  # type: ignore[arg-type]
        )
        app = create_app(settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://seau.test"
            ) as http,
        ):
            keys: AccessKeys = app.state.seau.keys
            made = await keys.create(
                kind=AccessKeyKind.SERVICE, name="ops", scopes=["admin"], expires_in=None
            )
            yield Setup(
                client=http,
                admin={"Authorization": f"Bearer {made.token}"},
                quotas=app.state.seau.quotas,
                database_url=url,
                stored=stored,
            )
        await check_invariant(url)


async def _user(setup: Setup, *, quota_bytes: int | None, quota_files: int | None = None) -> Any:
    auth = await sign_up(setup.client)
    me = (await setup.client.get("/api/v1/users/me", headers=auth)).json()
    put = await setup.client.put(
        f"/api/v1/admin/quotas/{me['subject']}",
        json={"quota_bytes": quota_bytes, "quota_files": quota_files},
        headers=setup.admin,
    )
    assert put.status_code == 200, put.text
    return auth


async def _usage(setup: Setup, auth: dict[str, str]) -> dict[str, int]:
    response = await setup.client.get("/api/v1/usage", headers=auth)
    assert response.status_code == 200, response.text
    body: dict[str, int] = response.json()
    return body


async def _raw(setup: Setup, auth: dict[str, str], name: str, size: int) -> httpx.Response:
    return await setup.client.post(
        "/api/v1/files", params={"name": name}, content=b"x" * size, headers=auth
    )


def _over(response: httpx.Response, **members: object) -> None:
    body = assert_problem(response, 413, "quota_exceeded")
    for key, value in members.items():
        assert body[key] == value, body


async def test_raw_uploads_reserve_their_length_and_exactly_reaching_the_quota_fits(
    setup: Setup,
) -> None:
    auth = await _user(setup, quota_bytes=1000)
    assert await _usage(setup, auth) == {
        "used_bytes": 0,
        "used_files": 0,
        "reserved_bytes": 0,
        "quota_bytes": 1000,
        "quota_files": 50,
    }
    first = await _raw(setup, auth, "a.bin", 600)
    assert first.status_code == 201, first.text
    _over(
        await _raw(setup, auth, "b.bin", 401),
        unit="bytes",
        limit=1000,
        used=600,
        reserved=0,
        remaining=400,
    )
    exact = await _raw(setup, auth, "c.bin", 400)
    assert exact.status_code == 201, exact.text
    _over(await _raw(setup, auth, "d.bin", 1), remaining=0)
    # An empty file needs no byte.
    assert (await _raw(setup, auth, "e.bin", 0)).status_code == 201
    usage = await _usage(setup, auth)
    assert (usage["used_bytes"], usage["used_files"], usage["reserved_bytes"]) == (1000, 3, 0)
    # A delete gives the room back.
    gone = await setup.client.delete(f"/api/v1/files/{first.json()['id']}", headers=auth)
    assert gone.status_code == 204
    assert (await _usage(setup, auth))["used_bytes"] == 400
    assert (await _raw(setup, auth, "f.bin", 600)).status_code == 201


async def test_multipart_files_are_cut_at_the_line_and_the_request_stores_nothing(
    setup: Setup,
) -> None:
    auth = await _user(setup, quota_bytes=3 * 1024 * 1024)
    fits = [
        ("file", (f"{i}.bin", b"y" * 1024 * 1024, "application/octet-stream")) for i in range(3)
    ]
    made = await setup.client.post("/api/v1/files", files=fits, headers=auth)
    assert made.status_code == 201, made.text
    assert (await _usage(setup, auth))["used_bytes"] == 3 * 1024 * 1024
    assert len(setup.stored()) == 3, setup.stored()  # what the empty listing below would see
    for file in made.json()["files"]:
        await setup.client.delete(f"/api/v1/files/{file['id']}", headers=auth)
    one_too_many = [*fits, ("file", ("3.bin", b"z", "application/octet-stream"))]
    refused = await setup.client.post("/api/v1/files", files=one_too_many, headers=auth)
    _over(refused, unit="bytes", limit=3 * 1024 * 1024, remaining=0)
    usage = await _usage(setup, auth)
    assert (usage["used_bytes"], usage["used_files"], usage["reserved_bytes"]) == (0, 0, 0)
    listed = await setup.client.get("/api/v1/files", headers=auth)
    assert listed.json()["items"] == []
    assert setup.stored() == []


async def test_a_chunked_body_stops_at_the_line(setup: Setup) -> None:
    limit = 5 * 1024 * 1024 + 123
    auth = await _user(setup, quota_bytes=limit)
    sent = 0
    chunk = b"c" * 65536

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(200):  # 12.5 MiB offered
            sent += len(chunk)
            yield chunk

    refused = await setup.client.post(
        "/api/v1/files", params={"name": "big.bin"}, content=body(), headers=auth
    )
    _over(refused, unit="bytes", limit=limit, used=0)
    # Read up to the chunk that crossed the line, and not one more.
    assert limit < sent <= limit + len(chunk)
    usage = await _usage(setup, auth)
    assert (usage["used_bytes"], usage["reserved_bytes"]) == (0, 0)
    assert setup.stored() == []

    async def exactly() -> AsyncIterator[bytes]:
        left = limit
        while left:
            piece = min(left, 65536)
            left -= piece
            yield b"e" * piece

    fits = await setup.client.post(
        "/api/v1/files", params={"name": "exact.bin"}, content=exactly(), headers=auth
    )
    assert fits.status_code == 201, fits.text
    assert (await _usage(setup, auth))["used_bytes"] == limit


async def test_tus_creation_reserves_its_length_and_answers_413(setup: Setup) -> None:
    auth = {**await _user(setup, quota_bytes=1000), **TUS}
    metadata = "filename " + base64.b64encode(b"t.bin").decode()
    _over(
        await setup.client.post(
            "/api/v1/uploads",
            headers={**auth, "Upload-Length": "1001", "Upload-Metadata": metadata},
        ),
        limit=1000,
        remaining=1000,
    )
    created = await setup.client.post(
        "/api/v1/uploads", headers={**auth, "Upload-Length": "700", "Upload-Metadata": metadata}
    )
    assert created.status_code == 201, created.text
    usage = await _usage(setup, auth)
    assert (usage["reserved_bytes"], usage["used_bytes"]) == (700, 0)
    # The reservation counts: 301 more do not fit while it is held.
    _over(
        await setup.client.post("/api/v1/uploads", headers={**auth, "Upload-Length": "301"}),
        used=0,
        reserved=700,
        remaining=300,
    )
    location = httpx.URL(created.headers["location"]).path
    patched = await setup.client.patch(
        location, content=b"t" * 700, headers={**auth, **OFFSET, "Upload-Offset": "0"}
    )
    assert patched.status_code == 204, patched.text
    usage = await _usage(setup, auth)
    assert (usage["reserved_bytes"], usage["used_bytes"], usage["used_files"]) == (0, 700, 1)
    # Terminating an upload gives its room back.
    other = await setup.client.post("/api/v1/uploads", headers={**auth, "Upload-Length": "300"})
    assert other.status_code == 201
    assert (await _usage(setup, auth))["reserved_bytes"] == 300
    ended = await setup.client.delete(httpx.URL(other.headers["location"]).path, headers=auth)
    assert ended.status_code == 204
    assert (await _usage(setup, auth))["reserved_bytes"] == 0


async def test_a_deferred_tus_length_is_reserved_as_bytes_come_and_when_told(
    setup: Setup,
) -> None:
    limit = 3 * 1024 * 1024
    auth = {**await _user(setup, quota_bytes=limit), **TUS}
    created = await setup.client.post(
        "/api/v1/uploads", headers={**auth, "Upload-Defer-Length": "1"}
    )
    assert created.status_code == 201, created.text
    location = httpx.URL(created.headers["location"]).path
    first = await setup.client.patch(
        location,
        content=b"d" * (2 * 1024 * 1024),
        headers={**auth, **OFFSET, "Upload-Offset": "0"},
    )
    assert first.status_code == 204, first.text
    # Crossing the line in a PATCH of unknown total: refused, nothing of it kept.
    over = await setup.client.patch(
        location,
        content=b"d" * (1024 * 1024 + 1),
        headers={**auth, **OFFSET, "Upload-Offset": str(2 * 1024 * 1024)},
    )
    _over(over, unit="bytes", limit=limit)
    # Telling a length that does not fit: refused before the body is read.
    told = await setup.client.patch(
        location,
        content=b"",
        headers={
            **auth,
            **OFFSET,
            "Upload-Offset": str(2 * 1024 * 1024),
            "Upload-Length": str(limit + 1),
        },
    )
    _over(told, unit="bytes", limit=limit)
    last = await setup.client.patch(
        location,
        content=b"d" * (1024 * 1024),
        headers={
            **auth,
            **OFFSET,
            "Upload-Offset": str(2 * 1024 * 1024),
            "Upload-Length": str(limit),
        },
    )
    assert last.status_code == 204, last.text
    usage = await _usage(setup, auth)
    assert (usage["used_bytes"], usage["reserved_bytes"]) == (limit, 0)


async def test_the_file_count_quota(setup: Setup) -> None:
    auth = await _user(setup, quota_bytes=0, quota_files=2)
    for name in ("1", "2"):
        assert (await _raw(setup, auth, name, 10)).status_code == 201
    _over(await _raw(setup, auth, "3", 10), unit="files", limit=2, used=2, remaining=0)
    _over(
        await setup.client.post("/api/v1/uploads", headers={**auth, **TUS, "Upload-Length": "1"}),
        unit="files",
    )
    # A multipart file of unknown size holds its file before its first byte.
    empty = [("file", ("4", b"", "application/octet-stream"))]
    _over(await setup.client.post("/api/v1/files", files=empty, headers=auth), unit="files")
    usage = await _usage(setup, auth)
    assert (usage["quota_bytes"], usage["quota_files"]) == (0, 2)


async def test_only_admins_set_quotas_and_defaults_apply_until_they_do(setup: Setup) -> None:
    auth = await sign_up(setup.client)
    me = (await setup.client.get("/api/v1/users/me", headers=auth)).json()
    path = f"/api/v1/admin/quotas/{me['subject']}"
    assert_problem(await setup.client.get(path, headers=auth), 403, "admin_required")
    assert_problem(
        await setup.client.put(path, json={"quota_bytes": 1}, headers=auth), 403, "admin_required"
    )
    shown = (await setup.client.get(path, headers=setup.admin)).json()
    assert shown["quota_bytes"] == 0
    assert shown["quota_files"] == 50
    assert shown["own_quota_bytes"] is None
    assert shown["subject"] == me["subject"]
    put = await setup.client.put(path, json={"quota_bytes": 5}, headers=setup.admin)
    assert put.json()["quota_bytes"] == 5
    assert put.json()["own_quota_bytes"] == 5
    assert put.json()["quota_files"] == 50
    wrong = await setup.client.put(path, json={"quota_bytes": -1}, headers=setup.admin)
    assert_problem(wrong, 422, "validation_error")
    # A subject nobody used yet: its owner is made, the quota waits for it.
    fresh = await setup.client.put(
        "/api/v1/admin/quotas/auth0|someone", json={"quota_files": 3}, headers=setup.admin
    )
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["used_files"] == 0


async def test_gc_releases_what_a_killed_upload_held(setup: Setup) -> None:
    auth = await _user(setup, quota_bytes=1000)
    me = (await setup.client.get("/api/v1/users/me", headers=auth)).json()
    owner_id = uuid.UUID(me["id"])
    quotas = setup.quotas
    # As a process killed mid-upload leaves it: a reservation, no file, no upload.
    await quotas.reserve(owner_id=owner_id, reservation_id=uuid.uuid4(), size=900)
    _over(await _raw(setup, auth, "a", 101), reserved=900)
    assert await quotas.release_stale(before=utcnow() - timedelta(hours=1)) == 0
    assert await quotas.release_stale(before=utcnow(), dry_run=True) == 1
    assert await quotas.release_stale(before=utcnow()) == 1
    assert (await _usage(setup, auth))["reserved_bytes"] == 0
    assert (await _raw(setup, auth, "a", 1000)).status_code == 201
    async with unit_of_work(quotas._sessions, timeout_seconds=5) as session:
        assert await session.get(QuotaReservation, owner_id) is None
