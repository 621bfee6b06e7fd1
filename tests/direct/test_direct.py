"""Direct uploads by a plain HTTP client, on the local store and on S3 (moto over HTTP)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import httpx
from tests.conftest import sign_up
from tests.direct.conftest import (
    MiB,
    Site,
    complete,
    create,
    post_form,
    send_parts,
    sha256,
)
from tests.quotas.invariant import check_invariant

from seau.wiring import open_parts

# Seeded, not os.urandom: one run in 65,536 random bytes begin with "MZ" and sniff
# as a DOS executable, and these tests read the sniffed type back.
SMALL = random.Random(23).randbytes(200 * 1024 + 3)
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + os.urandom(4000)
EXECUTABLE = Path("/bin/true").read_bytes()


async def _download(http: httpx.AsyncClient, auth: dict[str, str], file_id: str) -> bytes:
    response = await http.get(f"/api/v1/files/{file_id}/content", headers=auth)
    assert response.status_code == 200, response.text
    return response.content


async def _listed(http: httpx.AsyncClient, auth: dict[str, str]) -> list[str]:
    response = await http.get("/api/v1/files", headers=auth)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def test_single_part_upload_becomes_a_verified_file(
    site: Site, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    made = await create(
        http, auth, name="photo.png", size=len(PNG), content_type="image/png", sha256=sha256(PNG)
    )
    assert made["multipart"] is False
    assert made["upload"]["method"] == "POST"
    if site.store == "s3":
        assert made["upload"]["url"].startswith(site.settings.aws_endpoint_url or "")
        assert made["upload"]["fields"]["key"] == f"files/{made['id'].replace('-', '')[:2]}/" + (
            made["id"].replace("-", "")
        )
    # Not a file until completed.
    assert made["id"] not in await _listed(http, auth)
    sent = await post_form(http, made["upload"], PNG)
    assert sent.status_code in (200, 201, 204), sent.text
    assert made["id"] not in await _listed(http, auth)

    file = await complete(http, auth, made["id"])
    assert file["id"] == made["id"]
    assert file["size"] == len(PNG)
    assert file["sha256"] == sha256(PNG)
    assert file["content_type"] == "image/png"
    assert file["declared_type"] == "image/png"
    assert made["id"] in await _listed(http, auth)
    assert await _download(http, auth, made["id"]) == PNG
    # Completing again answers the same file.
    again = await complete(http, auth, made["id"])
    assert again == file


async def test_single_part_without_a_declared_hash_is_read_back(
    site: Site, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    made = await create(http, auth, name="data.bin", size=len(SMALL))
    sent = await post_form(http, made["upload"], SMALL)
    assert sent.status_code in (200, 201, 204), sent.text
    file = await complete(http, auth, made["id"])
    assert file["sha256"] == sha256(SMALL)
    assert file["content_type"] == "application/octet-stream"


async def test_multipart_upload_resumes_by_listing_parts(
    site: Site, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    data = os.urandom(10 * MiB + 1234)
    made = await create(
        http, auth, name="big.bin", size=len(data), content_type="application/octet-stream"
    )
    # Above SEAU_DIRECT_MULTIPART_THRESHOLD_BYTES (8 MiB here): parts, chosen by seau.
    assert made["multipart"] is True
    assert made["upload"] is None
    size = made["part_size"]
    assert size == 5 * MiB
    assert made["part_count"] == 3
    chunks = {n + 1: data[n * size : (n + 1) * size] for n in range(made["part_count"])}

    # The client sends part 2, then "crashes"; the listing tells it where it stands.
    await send_parts(http, auth, made["id"], {2: chunks[2]})
    listed = await http.get(f"/api/v1/direct-uploads/{made['id']}/parts", headers=auth)
    assert listed.status_code == 200, listed.text
    held = listed.json()["parts"]
    assert [(p["number"], p["size"]) for p in held] == [(2, len(chunks[2]))]

    sent = await send_parts(http, auth, made["id"], {1: chunks[1], 3: chunks[3]})
    parts = sorted([*sent, {"number": 2, "etag": held[0]["etag"]}], key=lambda p: p["number"])
    file = await complete(http, auth, made["id"], parts=parts)
    assert file["size"] == len(data)
    assert file["sha256"] == sha256(data)
    assert await _download(http, auth, made["id"]) == data
    assert site.multipart_uploads() == []


async def test_multipart_when_asked(
    site: Site, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    made = await create(http, auth, name="small.bin", size=len(SMALL), multipart=True)
    assert made["multipart"] is True
    parts = await send_parts(http, auth, made["id"], {1: SMALL})
    file = await complete(http, auth, made["id"], parts=parts)
    assert file["sha256"] == sha256(SMALL)


async def _lied(
    site: Site,
    http: httpx.AsyncClient,
    auth: dict[str, str],
    upload_id: str,
    differs: str,
    parts: list[dict[str, object]] | None = None,
) -> None:
    refused = await complete(http, auth, upload_id, parts=parts, expect=422)
    assert refused["code"] == "verification_failed"
    assert differs in refused["differs"].split(",")
    assert upload_id not in await _listed(http, auth)
    assert not [key for key in site.stored_keys() if upload_id.replace("-", "") in key]
    gone = await http.get(f"/api/v1/files/{upload_id}", headers=auth)
    assert gone.status_code == 404
    # The upload is over: its reservation is released, completing again finds nothing.
    again = await http.post(f"/api/v1/direct-uploads/{upload_id}/complete", headers=auth, json={})
    assert again.status_code == 404
    usage = (await http.get("/api/v1/usage", headers=auth)).json()
    assert usage["reserved_bytes"] == 0


async def test_more_bytes_than_declared_end_with_no_file(
    site: Site, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    made = await create(http, auth, name="a.bin", size=1000)
    # moto does not enforce the policy's content-length-range (S3 answers 400
    # EntityTooLarge); seau's own URL refuses past the declared size (413).
    sent = await post_form(http, made["upload"], os.urandom(5000))
    assert sent.status_code in (204, 400, 413), sent.text
    if site.store == "ceph":
        # A real S3 engine holds the POST to its policy.
        assert sent.status_code == 400, sent.text
        assert "EntityTooLarge" in sent.text
    await _lied(site, http, auth, made["id"], "size")


async def test_more_bytes_in_parts_than_declared_end_with_no_file(
    site: Site, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    made = await create(http, auth, name="a.bin", size=1000, multipart=True)
    signed = await http.post(
        f"/api/v1/direct-uploads/{made['id']}/parts", json={"numbers": [1]}, headers=auth
    )
    put = await http.put(signed.json()["parts"][0]["url"], content=os.urandom(3000))
    if put.status_code == 200:
        # moto takes any part (S3 too: a presigned part PUT cannot bound its size).
        parts: list[dict[str, object]] = [{"number": 1, "etag": put.headers["etag"]}]
        differs = "size"
    else:
        # seau's own part URL refuses past the declared size: nothing was stored.
        assert put.status_code == 413, put.text
        parts = [{"number": 1, "etag": '"' + "0" * 32 + '"'}]
        differs = "parts"
    await _lied(site, http, auth, made["id"], differs, parts=parts)


async def test_other_bytes_than_the_declared_hash_end_with_no_file(
    site: Site, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    made = await create(http, auth, name="a.bin", size=len(SMALL), sha256=sha256(b"other"))
    sent = await post_form(http, made["upload"], SMALL)
    # S3 itself refuses bytes whose x-amz-checksum-sha256 differs; moto and Ceph's
    # RGW 16.2 take them, and seau's read-back finds them out.
    assert sent.status_code in (204, 400), sent.text
    await _lied(site, http, auth, made["id"], "size" if sent.status_code == 400 else "sha256")


async def test_an_executable_declared_as_png_ends_with_no_file(
    site: Site, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    made = await create(http, auth, name="cat.png", size=len(EXECUTABLE), content_type="image/png")
    sent = await post_form(http, made["upload"], EXECUTABLE)
    assert sent.status_code == 204, sent.text
    await _lied(site, http, auth, made["id"], "content_type")


async def test_completing_after_expiry_is_410_and_removes_the_bytes(
    site: Site, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    made = await create(http, auth, name="late.bin", size=len(SMALL))
    await post_form(http, made["upload"], SMALL)
    await site.expire(made["id"])
    late = await complete(http, auth, made["id"], expect=410)
    assert late["code"] == "direct_upload_expired"
    assert not [k for k in site.stored_keys() if made["id"].replace("-", "") in k]
    assert made["id"] not in await _listed(http, auth)


async def test_expired_urls_of_seau_are_refused(
    site: Site, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    made = await create(http, auth, name="late.bin", size=len(SMALL))
    await site.expire(made["id"])
    status = await http.get(f"/api/v1/direct-uploads/{made['id']}", headers=auth)
    assert status.status_code == 410
    if site.store == "local":
        sent = await post_form(http, made["upload"], SMALL)
        assert sent.status_code == 410


async def test_abort_removes_the_upload_and_its_parts(
    site: Site, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    before = site.multipart_uploads()
    made = await create(http, auth, name="x.bin", size=6 * MiB, multipart=True)
    await send_parts(http, auth, made["id"], {1: os.urandom(5 * MiB)})
    assert len(site.multipart_uploads()) == len(before) + 1
    deleted = await http.delete(f"/api/v1/direct-uploads/{made['id']}", headers=auth)
    assert deleted.status_code == 204
    assert site.multipart_uploads() == before
    again = await http.delete(f"/api/v1/direct-uploads/{made['id']}", headers=auth)
    assert again.status_code == 404
    usage = (await http.get("/api/v1/usage", headers=auth)).json()
    assert usage["reserved_bytes"] == 0


async def test_abort_of_a_single_part_upload_removes_its_bytes(
    site: Site, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """The bytes were sent (the form POST, or seau's own URL) but never completed:
    aborting removes the object they made, and the room the upload held."""
    before = set(site.stored_keys())
    made = await create(http, auth, name="sent.bin", size=len(SMALL))
    await post_form(http, made["upload"], SMALL)
    assert set(site.stored_keys()) - before, "the bytes are in the store"
    deleted = await http.delete(f"/api/v1/direct-uploads/{made['id']}", headers=auth)
    assert deleted.status_code == 204
    assert set(site.stored_keys()) == before
    usage = (await http.get("/api/v1/usage", headers=auth)).json()
    assert usage["reserved_bytes"] == 0
    gone = await http.post(f"/api/v1/direct-uploads/{made['id']}/complete", json={}, headers=auth)
    assert gone.status_code == 404, gone.text


async def test_another_owners_upload_is_not_found(
    site: Site, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    made = await create(http, auth, name="mine.bin", size=len(SMALL))
    await post_form(http, made["upload"], SMALL)
    other = await sign_up(http)
    for method, path in [
        ("GET", ""),
        ("GET", "/parts"),
        ("POST", "/complete"),
        ("DELETE", ""),
    ]:
        response = await http.request(
            method, f"/api/v1/direct-uploads/{made['id']}{path}", headers=other
        )
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["code"] == "direct_upload_not_found"
    # Still the owner's to complete.
    await complete(http, auth, made["id"])


async def test_the_declared_size_is_reserved_at_creation(
    site: Site, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    me = (await http.get("/api/v1/users/me", headers=auth)).json()
    await site.app.state.seau.quotas.set_quota(me["subject"], values={"quota_bytes": 10_000})
    made = await create(http, auth, name="a.bin", size=6000)
    usage = (await http.get("/api/v1/usage", headers=auth)).json()
    assert usage["reserved_bytes"] == 6000
    refused = await create(http, auth, name="b.bin", size=5000, expect=413)
    assert refused["code"] == "quota_exceeded"
    data = os.urandom(6000)
    await post_form(http, made["upload"], data)
    await complete(http, auth, made["id"])
    usage = (await http.get("/api/v1/usage", headers=auth)).json()
    assert (usage["used_bytes"], usage["reserved_bytes"]) == (6000, 0)


async def test_gc_removes_abandoned_direct_uploads(
    site: Site, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    single = await create(http, auth, name="s.bin", size=len(SMALL))
    await post_form(http, single["upload"], SMALL)
    parted = await create(http, auth, name="m.bin", size=6 * MiB, multipart=True)
    await send_parts(http, auth, parted["id"], {1: os.urandom(5 * MiB)})
    await site.expire(single["id"])
    await site.expire(parted["id"])

    async with open_parts(site.settings) as parts:
        report = await parts.collect_garbage()
    assert report.extra["expired_direct_uploads"] >= 2, report
    assert site.multipart_uploads() == []
    for made in (single, parted):
        key = made["id"].replace("-", "")
        assert not [k for k in site.stored_keys() if key in k]
        status = await http.get(f"/api/v1/direct-uploads/{made['id']}", headers=auth)
        assert status.status_code == 404
    usage = (await http.get("/api/v1/usage", headers=auth)).json()
    assert usage["reserved_bytes"] == 0
    assert site.settings.database_url is not None
    await check_invariant(site.settings.database_url)


async def test_routes_need_the_files_write_scope(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/v1/direct-uploads", json={"name": "a", "size": 1})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
