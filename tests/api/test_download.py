from __future__ import annotations

import os
import uuid
from urllib.parse import quote

import httpx
import pytest

from tests.api.helpers import assert_problem, sha, upload_raw
from tests.conftest import sign_up

DATA = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture
async def stored(client: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, object]:
    return await upload_raw(client, auth, "report été.bin", DATA)


def url(stored: dict[str, object]) -> str:
    return f"/api/v1/files/{stored['id']}/content"


async def test_download_has_length_etag_and_safe_headers(
    client: httpx.AsyncClient, auth: dict[str, str], stored: dict[str, object]
) -> None:
    response = await client.get(url(stored), headers=auth)
    assert response.status_code == 200
    assert response.content == DATA
    h = response.headers
    assert h["content-length"] == str(len(DATA))
    assert h["etag"] == f'"{sha(DATA)}"'
    assert h["accept-ranges"] == "bytes"
    assert h["x-content-type-options"] == "nosniff"
    assert "sandbox" in h["content-security-policy"]
    assert h["content-disposition"].startswith("attachment;")
    assert f"filename*=UTF-8''{quote('report été.bin')}" in h["content-disposition"]


async def test_head_gives_the_headers_without_a_body(
    client: httpx.AsyncClient, auth: dict[str, str], stored: dict[str, object]
) -> None:
    response = await client.head(url(stored), headers=auth)
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(DATA))
    assert response.content == b""


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-0", 0, 1),
        ("bytes=100-199", 100, 200),
        ("bytes=10000-", 10000, 10240),
        ("bytes=-40", 10200, 10240),
        ("bytes=10230-99999", 10230, 10240),
    ],
)
async def test_a_single_range_is_206_with_content_range(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    stored: dict[str, object],
    header: str,
    start: int,
    end: int,
) -> None:
    response = await client.get(url(stored), headers={**auth, "Range": header})
    assert response.status_code == 206
    assert response.content == DATA[start:end]
    assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{len(DATA)}"
    assert response.headers["content-length"] == str(end - start)


@pytest.mark.parametrize(
    "header",
    ["bytes=10240-", "bytes=20000-20010", "bytes=5-2", "bytes=-0", "bytes=abc", "bytes=0-1,5-6"],
)
async def test_an_unsatisfiable_or_malformed_range_is_416(
    client: httpx.AsyncClient, auth: dict[str, str], stored: dict[str, object], header: str
) -> None:
    response = await client.get(url(stored), headers={**auth, "Range": header})
    assert_problem(response, 416, "range_not_satisfiable")
    assert response.headers["content-range"] == f"bytes */{len(DATA)}"


async def test_if_none_match_with_the_etag_is_304(
    client: httpx.AsyncClient, auth: dict[str, str], stored: dict[str, object]
) -> None:
    etag = f'"{stored["sha256"]}"'
    response = await client.get(url(stored), headers={**auth, "If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""
    other = await client.get(url(stored), headers={**auth, "If-None-Match": '"other"'})
    assert other.status_code == 200


async def test_if_range_honours_the_range_only_when_the_etag_matches(
    client: httpx.AsyncClient, auth: dict[str, str], stored: dict[str, object]
) -> None:
    etag = f'"{stored["sha256"]}"'
    same = await client.get(url(stored), headers={**auth, "Range": "bytes=5-9", "If-Range": etag})
    assert same.status_code == 206
    assert same.content == DATA[5:10]
    changed = await client.get(
        url(stored), headers={**auth, "Range": "bytes=5-9", "If-Range": '"stale"'}
    )
    assert changed.status_code == 200
    assert changed.content == DATA


async def test_inline_only_for_safe_types(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    png = await upload_raw(client, auth, "pic.png", b"\x89PNG....", "image/png")
    html = await upload_raw(client, auth, "page.html", b"<script>alert(1)</script>", "text/html")
    svg = await upload_raw(client, auth, "pic.svg", b"<svg/>", "image/svg+xml")
    r = await client.get(url(png), params={"disposition": "inline"}, headers=auth)
    assert r.headers["content-disposition"].startswith("inline;")
    for unsafe in (html, svg):
        r = await client.get(url(unsafe), params={"disposition": "inline"}, headers=auth)
        assert r.headers["content-disposition"].startswith("attachment;")
        assert r.headers["x-content-type-options"] == "nosniff"


async def test_another_users_file_is_exactly_like_a_missing_one(
    client: httpx.AsyncClient, auth: dict[str, str], stored: dict[str, object]
) -> None:
    other = await sign_up(client)
    missing_id = uuid.uuid4()
    for suffix in ("", "/content"):
        theirs = await client.get(f"/api/v1/files/{stored['id']}{suffix}", headers=other)
        missing = await client.get(f"/api/v1/files/{missing_id}{suffix}", headers=other)
        a = assert_problem(theirs, 404, "file_not_found")
        b = assert_problem(missing, 404, "file_not_found")
        for varying in ("instance", "request_id"):
            a.pop(varying)
            b.pop(varying)
        assert a == b
    for method in ("PATCH", "DELETE"):
        response = await client.request(
            method, f"/api/v1/files/{stored['id']}", json={"name": "stolen"}, headers=other
        )
        assert_problem(response, 404, "file_not_found")
    still = await client.get(f"/api/v1/files/{stored['id']}", headers=auth)
    assert still.json()["name"] == stored["name"]


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "1", "%00", "' OR 1=1 --"])
async def test_an_invalid_id_is_404(
    client: httpx.AsyncClient, auth: dict[str, str], bad_id: str
) -> None:
    response = await client.get(f"/api/v1/files/{quote(bad_id, safe='')}", headers=auth)
    assert_problem(response, 404, "file_not_found")


async def test_a_large_download_streams_every_byte(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    data = os.urandom(5 * 1024 * 1024 + 3)
    body = await upload_raw(client, auth, "big.bin", data)
    response = await client.get(url(body), headers=auth)
    assert response.content == data
