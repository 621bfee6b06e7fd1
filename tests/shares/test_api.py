"""Share links through the real app: the owner's API, the link's content and page.

On four database × store combinations (each database, each store, and SQLite on
both), not all seven: what differs between stores is `open_content`, which the files
suite covers; sqlite-s3 puts S3's slower opening, which comes before a download is
counted, in front of SQLite's one writer at a time, as the concurrent downloads race.
"""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from seau.auth.keys import hash_token
from seau.db.models import Share
from tests.api.helpers import assert_problem, sha, upload_raw
from tests.conftest import Running, sign_up

pytestmark = pytest.mark.parametrize(
    "running",
    [("sqlite", "local"), ("sqlite", "s3"), ("mysql", "s3"), ("postgresql", "local")],
    indirect=True,
    ids=["sqlite-local", "sqlite-s3", "mysql-s3", "postgresql-local"],
)

DATA = bytes(range(256)) * 40  # 10240 bytes


def basic(password: str, user: str = "") -> dict[str, str]:
    raw = f"{user}:{password}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


async def share(
    client: httpx.AsyncClient, auth: dict[str, str], file_id: str, **body: Any
) -> dict[str, Any]:
    response = await client.post(f"/api/v1/files/{file_id}/shares", json=body, headers=auth)
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


def path_of(url: str) -> str:
    # Without SEAU_PUBLIC_URL the answer is a path.
    assert re.fullmatch(r"/s/[A-Za-z0-9_-]{43}", url), url
    return url


async def test_share_round_trip_list_count_and_revoke(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    file = await upload_raw(client, auth, "report 2026.pdf", DATA, "application/pdf")
    made = await share(client, auth, file["id"], max_downloads=3)
    assert set(made) >= {"id", "url", "expires_at", "max_downloads", "downloads"}
    assert made["max_downloads"] == 3
    assert made["downloads"] == 0
    assert made["has_password"] is False
    link = path_of(made["url"])

    # Anyone, without an account: the bytes with the API's safe headers.
    anonymous = running.client()
    async with anonymous:
        got = await anonymous.get(f"{link}/content")
        assert got.status_code == 200
        assert got.content == DATA
        assert got.headers["content-disposition"].startswith("attachment;")
        assert got.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in got.headers["content-security-policy"]
        assert got.headers["etag"] == f'"{sha(DATA)}"'
        assert got.headers["accept-ranges"] == "bytes"
        # HEAD, a resumed range and a 304 are not counted; a range from 0 is.
        head = await anonymous.head(f"{link}/content")
        assert head.status_code == 200
        assert head.headers["content-length"] == str(len(DATA))
        resumed = await anonymous.get(f"{link}/content", headers={"Range": "bytes=100-"})
        assert resumed.status_code == 206
        assert resumed.content == DATA[100:]
        cached = await anonymous.get(
            f"{link}/content", headers={"If-None-Match": got.headers["etag"]}
        )
        assert cached.status_code == 304
        first = await anonymous.get(f"{link}/content", headers={"Range": "bytes=0-9"})
        assert first.status_code == 206
        assert first.content == DATA[:10]

        listed = (await client.get("/api/v1/shares", headers=auth)).json()["items"]
        mine = [s for s in listed if s["id"] == made["id"]]
        assert mine[0]["downloads"] == 2
        assert mine[0]["file_name"] == "report 2026.pdf"
        assert "url" not in mine[0]
        of_file = (await client.get(f"/api/v1/files/{file['id']}/shares", headers=auth)).json()
        assert [s["id"] for s in of_file["items"]] == [made["id"]]

        # The secret is stored only as its hash.
        async with running.app.state.seau.sessions() as session:
            row = await session.get(Share, uuid.UUID(made["id"]))
            assert row is not None
            assert row.token_hash == hash_token(link.removeprefix("/s/"))
            assert link.removeprefix("/s/") not in repr(
                {c.key: getattr(row, c.key) for c in Share.__table__.columns}
            )

        third = await anonymous.get(f"{link}/content")
        assert third.status_code == 200
        assert_problem(await anonymous.get(f"{link}/content"), 410, "share_exhausted")
        assert_problem(
            await anonymous.get(f"{link}/content", headers={"Range": "bytes=5-"}),
            410,
            "share_exhausted",
        )
        assert (await anonymous.get(link)).status_code == 410

        revoked = await client.delete(f"/api/v1/shares/{made['id']}", headers=auth)
        assert revoked.status_code == 204
        assert_problem(await anonymous.get(f"{link}/content"), 404, "share_not_found")
        assert (await anonymous.get(link)).status_code == 404
        assert_problem(
            await client.delete(f"/api/v1/shares/{made['id']}", headers=auth),
            404,
            "share_not_found",
        )


async def test_a_deleted_file_takes_its_shares_and_others_cannot_touch_them(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    file = await upload_raw(client, auth, "gone.txt", b"soon gone")
    made = await share(client, auth, file["id"])
    other = await sign_up(client)
    assert_problem(
        await client.delete(f"/api/v1/shares/{made['id']}", headers=other), 404, "share_not_found"
    )
    assert_problem(
        await client.post(f"/api/v1/files/{file['id']}/shares", json={}, headers=other),
        404,
        "file_not_found",
    )
    assert_problem(
        await client.get(f"/api/v1/files/{file['id']}/shares", headers=other),
        404,
        "file_not_found",
    )
    assert (await client.get("/api/v1/shares", headers=other)).json()["items"] == []
    assert (await client.delete(f"/api/v1/files/{file['id']}", headers=auth)).status_code == 204
    async with running.client() as anonymous:
        assert_problem(await anonymous.get(f"{made['url']}/content"), 404, "share_not_found")
        # A made-up or malformed secret looks the same.
        assert_problem(
            await anonymous.get(f"/s/{secrets.token_urlsafe(32)}/content"), 404, "share_not_found"
        )
        assert_problem(await anonymous.get("/s/short/content"), 404, "share_not_found")
    assert (await client.get("/api/v1/shares", headers=auth)).json()["items"] == []


async def test_expiry_is_bounded_and_an_expired_link_is_gone(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    file = await upload_raw(client, auth, "brief.txt", b"brief")
    too_long = running.settings.share_max_ttl_seconds + 1
    assert_problem(
        await client.post(
            f"/api/v1/files/{file['id']}/shares", json={"expires_in": too_long}, headers=auth
        ),
        422,
        "invalid_share",
    )
    default = await share(client, auth, file["id"])
    lasts = datetime.fromisoformat(default["expires_at"]) - datetime.now(UTC)
    assert abs(lasts.total_seconds() - running.settings.share_default_ttl_seconds) < 60
    made = await share(client, auth, file["id"], expires_in=60)
    # Its minute passed (the row aged in the database, not the test waiting).
    async with running.app.state.seau.sessions() as session:
        await session.execute(
            update(Share)
            .where(Share.id == uuid.UUID(made["id"]))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()
    async with running.client() as anonymous:
        assert_problem(await anonymous.get(f"{made['url']}/content"), 410, "share_expired")
        assert (await anonymous.head(f"{made['url']}/content")).status_code == 410
        page = await anonymous.get(made["url"])
        assert page.status_code == 410
        assert "expired" in page.text


async def test_password_by_http_basic_any_user_name_and_wrong_ones_throttled(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    file = await upload_raw(client, auth, "secret.bin", DATA)
    made = await share(client, auth, file["id"], password="s3cret pässword")
    assert made["has_password"] is True
    content = f"{made['url']}/content"
    async with running.client() as anonymous:
        missing = assert_problem(await anonymous.get(content), 401, "share_password_required")
        assert missing
        refused = await anonymous.get(content)
        assert refused.headers["www-authenticate"].startswith("Basic ")
        # `curl -u :secret` and `curl -u anyone:secret`.
        for user in ("", "anyone"):
            got = await anonymous.get(content, headers=basic("s3cret pässword", user))
            assert got.status_code == 200
            assert got.content == DATA
        wrong = await anonymous.get(content, headers=basic("guess"))
        assert_problem(wrong, 401, "share_password_invalid")
        assert wrong.headers["www-authenticate"].startswith("Basic ")
        for _ in range(4):
            await anonymous.get(content, headers=basic("guess"))
        throttled = await anonymous.get(content, headers=basic("another guess"))
        assert_problem(throttled, 429, "too_many_attempts")
        assert int(throttled.headers["retry-after"]) >= 1
        # The right password, verified before, still works; the page shows the file
        # only with it.
        assert (await anonymous.head(content, headers=basic("s3cret pässword"))).status_code == 200
        page = await anonymous.get(made["url"])
        assert page.status_code == 200
        assert "secret.bin" not in page.text
        assert 'type="password"' in page.text
        unlocked = await anonymous.get(made["url"], headers=basic("s3cret pässword"))
        assert "secret.bin" in unlocked.text
    listed = (await client.get("/api/v1/shares", headers=auth)).json()["items"]
    assert [s["downloads"] for s in listed if s["id"] == made["id"]] == [2]


async def test_concurrent_downloads_never_exceed_max_downloads(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    file = await upload_raw(client, auth, "popular.bin", DATA)
    made = await share(client, auth, file["id"], max_downloads=5)
    async with running.client() as anonymous:
        answers = await asyncio.gather(
            *(anonymous.get(f"{made['url']}/content") for _ in range(20))
        )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 5 + [410] * 15, statuses
    assert all(a.content == DATA for a in answers if a.status_code == 200)
    listed = (await client.get(f"/api/v1/files/{file['id']}/shares", headers=auth)).json()
    assert listed["items"][0]["downloads"] == 5


async def test_scopes_and_validation(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    file = await upload_raw(client, auth, "scoped.txt", b"scoped")
    made = await client.post(
        "/api/v1/tokens", json={"name": "reader", "scopes": ["files:read"]}, headers=auth
    )
    assert made.status_code == 201, made.text
    reader = {"Authorization": f"Bearer {made.json()['token']}"}
    assert_problem(
        await client.post(f"/api/v1/files/{file['id']}/shares", json={}, headers=reader),
        403,
        "insufficient_scope",
    )
    assert (await client.get("/api/v1/shares", headers=reader)).status_code == 200
    assert_problem(await client.get("/api/v1/shares"), 401, "token_invalid")
    for body in ({"max_downloads": 0}, {"password": ""}, {"expires_in": 0}, {"extra": 1}):
        assert_problem(
            await client.post(f"/api/v1/files/{file['id']}/shares", json=body, headers=auth),
            422,
            "validation_error",
        )
