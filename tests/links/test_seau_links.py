"""The links seau signs itself (on the local store, and on S3 without credentials to
presign with): HMAC-signed URLs served like the owner's own download."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from seau.files.links import LINKS_PATH, LinkClaims, sign_token
from tests.api.helpers import assert_problem
from tests.conftest import TEST_SECRET
from tests.links.conftest import DATA, Site, link_to, stored

pytestmark = pytest.mark.parametrize("site", ["local"], indirect=True)

# -- seau's own links (the local store; on S3 any store without credentials) --------


async def test_a_seau_link_has_head_etag_and_the_safe_headers(
    site: Site, api: httpx.AsyncClient, auth: dict[str, str], anyone: httpx.AsyncClient
) -> None:
    file = await stored(api, auth)
    link = (await link_to(api, auth, file["id"]))["url"]
    head = await anyone.head(link)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(DATA))
    assert head.headers["etag"] == f'"{file["sha256"]}"'
    assert head.headers["accept-ranges"] == "bytes"
    assert head.headers["x-content-type-options"] == "nosniff"
    assert head.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert head.headers["referrer-policy"] == "no-referrer"
    cached = await anyone.get(link, headers={"If-None-Match": head.headers["etag"]})
    assert cached.status_code == 304
    assert_problem(
        await anyone.get(link, headers={"Range": f"bytes={len(DATA)}-"}),
        416,
        "range_not_satisfiable",
    )


async def test_a_link_seau_did_not_sign_is_not_found(
    site: Site, api: httpx.AsyncClient, auth: dict[str, str], anyone: httpx.AsyncClient
) -> None:
    file = await stored(api, auth)
    token = (await link_to(api, auth, file["id"]))["url"].removeprefix(LINKS_PATH)
    payload, _, mac = token.rpartition(".")
    later = payload.split(".")
    later[3] = str(int(later[3]) + 3600)
    forged = [
        ".".join(later) + "." + mac,  # a longer life, same signature
        payload + "." + mac[:-2] + ("AA" if mac[-2:] != "AA" else "BB"),
        "garbage",
        "1.2.3.4.a." + mac,
        payload + ".é",
    ]
    for bad in forged:
        assert_problem(await anyone.get(LINKS_PATH + bad), 404, "link_not_found")
    # Signed with another secret key: another server's link.
    other = sign_token(
        "another-secret-" + "y" * 40,
        LinkClaims(
            file_id=uuid.UUID(file["id"]),
            owner_id=uuid.uuid4(),
            expires=int(time.time()) + 60,
            inline=False,
        ),
    )
    assert_problem(await anyone.get(LINKS_PATH + other), 404, "link_not_found")


async def test_an_expired_seau_link_is_gone_whatever_it_names(
    site: Site, api: httpx.AsyncClient, auth: dict[str, str], anyone: httpx.AsyncClient
) -> None:
    token = sign_token(
        TEST_SECRET,
        LinkClaims(
            file_id=uuid.uuid4(), owner_id=uuid.uuid4(), expires=int(time.time()), inline=False
        ),
    )
    assert_problem(await anyone.get(LINKS_PATH + token), 410, "link_expired")


async def test_a_link_ends_with_its_file(
    site: Site, api: httpx.AsyncClient, auth: dict[str, str], anyone: httpx.AsyncClient
) -> None:
    file = await stored(api, auth)
    link = (await link_to(api, auth, file["id"]))["url"]
    assert (await api.delete(f"/api/v1/files/{file['id']}", headers=auth)).status_code == 204
    assert_problem(await anyone.get(link), 404, "file_not_found")
    assert_problem(
        await anyone.get(
            LINKS_PATH
            + sign_token(
                TEST_SECRET,
                LinkClaims(
                    file_id=uuid.UUID(file["id"]),
                    owner_id=uuid.uuid4(),  # the right file, another owner
                    expires=int(time.time()) + 60,
                    inline=False,
                ),
            )
        ),
        404,
        "file_not_found",
    )
