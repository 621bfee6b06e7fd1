"""Download links end to end, on the local store (seau-signed URLs) and on S3
(presigned GETs, checked as AWS checks them: see tests/links/sigv4.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from seau.files.links import LINKS_PATH
from tests.api.helpers import assert_problem, sha, upload_raw
from tests.conftest import sign_up
from tests.files import corpus
from tests.links.conftest import DATA, Site, link_to, stored


async def test_a_link_downloads_the_file_without_a_token(
    site: Site, api: httpx.AsyncClient, auth: dict[str, str], anyone: httpx.AsyncClient
) -> None:
    file = await stored(api, auth)
    link = await link_to(api, auth, file["id"], expires_in=60)
    if site.store == "s3":
        assert link["url"].startswith(site.settings.aws_endpoint_url or "-")
    else:
        assert link["url"].startswith(LINKS_PATH)
    got = await anyone.get(link["url"])
    assert got.status_code == 200, got.text
    assert got.content == DATA
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["content-disposition"] == (
        "attachment; filename=\"report 2026 e.bin\"; filename*=UTF-8''report%202026%20%C3%A9.bin"
    )
    expires = link["expires_at"].replace("Z", "+00:00")
    from datetime import datetime

    left = datetime.fromisoformat(expires).timestamp() - time.time()
    assert 55 < left <= 61


async def test_redirect_is_followed_like_curl_minus_L(
    site: Site, api: httpx.AsyncClient, auth: dict[str, str], anyone: httpx.AsyncClient
) -> None:
    file = await stored(api, auth)
    url = f"/api/v1/files/{file['id']}/content"
    answer = await api.get(url, params={"redirect": "true"}, headers=auth)
    assert answer.status_code == 307
    assert answer.headers["cache-control"] == "no-store"
    # The client carries its token to seau; `follow_redirects` drops it for
    # another host (S3 refuses a second credential: VerifyingS3 checks it).
    got = await anyone.get(url, params={"redirect": "true"}, headers=auth)
    assert got.status_code == 200, got.text
    assert got.content == DATA
    assert [r.status_code for r in got.history] == [307]
    # Without `redirect` the bytes come through seau, as before.
    direct = await api.get(url, headers=auth)
    assert direct.status_code == 200
    assert direct.content == DATA


async def test_every_download_redirects_when_the_server_says_so(
    site: Site, api: httpx.AsyncClient, auth: dict[str, str], anyone: httpx.AsyncClient
) -> None:
    file = await stored(api, auth)
    state: Any = site.app.state
    before = state.seau
    state.seau = dataclasses.replace(
        before, settings=before.settings.model_copy(update={"download_redirect": True})
    )
    try:
        url = f"/api/v1/files/{file['id']}/content"
        assert (await api.get(url, headers=auth)).status_code == 307
        got = await anyone.get(url, headers=auth)
        assert got.content == DATA
        # `?redirect=false` still streams through seau.
        direct = await api.get(url, params={"redirect": "false"}, headers=auth)
        assert direct.status_code == 200
        assert direct.content == DATA
    finally:
        state.seau = before


async def test_a_download_resumes_with_range_through_thelink_to(
    site: Site, api: httpx.AsyncClient, auth: dict[str, str], anyone: httpx.AsyncClient
) -> None:
    file = await stored(api, auth)
    cut = 123_457
    link = await link_to(api, auth, file["id"])
    first = await anyone.get(link["url"], headers={"Range": f"bytes=0-{cut - 1}"})
    assert first.status_code == 206, first.text
    rest = await anyone.get(
        link["url"], headers={"Range": f"bytes={cut}-", "If-Range": f'"{file["sha256"]}"'}
    )
    assert rest.status_code == 206, rest.text
    assert rest.headers["content-range"] == f"bytes {cut}-{len(DATA) - 1}/{len(DATA)}"
    assert first.content + rest.content == DATA
    # The same through the stable URL and its redirect.
    redirected = await anyone.get(
        f"/api/v1/files/{file['id']}/content",
        params={"redirect": "true"},
        headers={**auth, "Range": f"bytes={cut}-"},
    )
    assert redirected.status_code == 206
    assert redirected.content == DATA[cut:]
    assert sha(first.content + rest.content) == file["sha256"]


async def test_an_expired_link_is_refused(
    site: Site, api: httpx.AsyncClient, auth: dict[str, str], anyone: httpx.AsyncClient
) -> None:
    file = await stored(api, auth)
    link = await link_to(api, auth, file["id"], expires_in=1)
    assert (await anyone.get(link["url"])).status_code == 200
    await asyncio.sleep(2.1)
    refused = await anyone.get(link["url"])
    if site.store == "s3":
        # What S3 answers (moto does not check; tests/links/sigv4.py does).
        assert refused.status_code == 403
        assert b"Request has expired" in refused.content
    else:
        assert_problem(refused, 410, "link_expired")


async def test_another_users_file_gets_nolink_to(
    site: Site, api: httpx.AsyncClient, auth: dict[str, str], anyone: httpx.AsyncClient
) -> None:
    file = await stored(api, auth)
    stranger = await sign_up(api)
    url = f"/api/v1/files/{file['id']}"
    assert_problem(await api.post(f"{url}/link", json={}, headers=stranger), 404, "file_not_found")
    answer = await api.get(f"{url}/content", params={"redirect": "true"}, headers=stranger)
    assert_problem(answer, 404, "file_not_found")
    assert "location" not in answer.headers
    missing = await api.post(f"/api/v1/files/{uuid.uuid4()}/link", headers=stranger)
    assert_problem(missing, 404, "file_not_found")


async def test_a_link_is_never_inline_for_an_active_type(
    site: Site, api: httpx.AsyncClient, auth: dict[str, str], anyone: httpx.AsyncClient
) -> None:
    page = b"<html><script>alert(document.cookie)</script></html>"
    file = await stored(api, auth, "page.html", data=page, content_type="text/html")
    link = await link_to(api, auth, file["id"], disposition="inline")
    if site.store == "s3":
        query = parse_qs(urlsplit(link["url"]).query)
        assert query["response-content-disposition"][0].startswith("attachment;")
        assert query["response-content-type"] == [file["content_type"]]
    got = await anyone.get(link["url"])
    assert got.content == page
    assert got.headers["content-disposition"].startswith("attachment;")
    png = await upload_raw(api, auth, "a.png", corpus.png(), "image/png")
    inline = await anyone.get((await link_to(api, auth, png["id"], disposition="inline"))["url"])
    assert inline.headers["content-disposition"].startswith("inline;")
    assert inline.headers["content-type"] == "image/png"


async def test_a_link_longer_than_the_maximum_is_refused(
    site: Site, api: httpx.AsyncClient, auth: dict[str, str], anyone: httpx.AsyncClient
) -> None:
    file = await stored(api, auth)
    url = f"/api/v1/files/{file['id']}/link"
    too_long = await api.post(url, json={"expires_in": 301}, headers=auth)
    assert_problem(too_long, 422, "invalid_link")
    assert_problem(
        await api.post(url, json={"expires_in": 0}, headers=auth), 422, "validation_error"
    )
    assert_problem(
        await api.post(url, json={"disposition": "evil"}, headers=auth),
        422,
        "validation_error",
    )
    # No body at all: the longest link, as an attachment.
    default = await api.post(url, headers=auth)
    assert default.status_code == 200, default.text
    assert_problem(await api.post(url, json={}), 401, "token_invalid")
