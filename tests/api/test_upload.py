from __future__ import annotations

import os

import httpx
import pytest

from tests.api.helpers import assert_problem, chunks, sha, stored_keys, upload_raw
from tests.conftest import Running


async def test_multipart_upload_of_two_files_lists_both_with_size_and_sha256(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    one, two = os.urandom(300_000), b"hello world\n"
    response = await client.post(
        "/api/v1/files",
        headers=auth,
        files=[
            ("file", ("one.bin", one, "application/octet-stream")),
            ("file", ("two.txt", two, "text/plain")),
        ],
        data={"note": "ignored field"},
    )
    assert response.status_code == 201, response.text
    files = response.json()["files"]
    assert [(f["name"], f["size"], f["sha256"]) for f in files] == [
        ("one.bin", len(one), sha(one)),
        ("two.txt", len(two), sha(two)),
    ]
    assert files[1]["content_type"] == "text/plain"
    listed = (await client.get("/api/v1/files", headers=auth)).json()["items"]
    assert sorted(listed, key=lambda f: f["name"]) == files
    for f, data in zip(files, (one, two), strict=True):
        content = await client.get(f"/api/v1/files/{f['id']}/content", headers=auth)
        assert content.content == data


async def test_raw_upload_streams_a_body_without_content_length(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    total = 3 * 1024 * 1024 + 17
    block = os.urandom(64 * 1024)
    response = await client.post(
        "/api/v1/files",
        params={"name": "stream.dat"},
        headers=auth,
        content=chunks(total, seed=block),
    )
    assert response.status_code == 201, response.text
    expected = (block * (total // len(block) + 1))[:total]
    assert response.json()["size"] == total
    assert response.json()["sha256"] == sha(expected)


async def test_raw_upload_without_name_is_400(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post(
        "/api/v1/files",
        content=b"abc",
        headers={**auth, "Content-Type": "application/octet-stream"},
    )
    assert_problem(response, 400, "bad_request")


async def test_unicode_names_round_trip_exactly(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    names = ["résumé été.pdf", "写真 📷 2026.jpg", "שלום.txt", "𝒻𝒶𝓃𝒸𝓎 🧪.bin"]
    ids = []
    for name in names:
        ids.append((await upload_raw(client, auth, name, name.encode()))["id"])
    for file_id, name in zip(ids, names, strict=True):
        body = (await client.get(f"/api/v1/files/{file_id}", headers=auth)).json()
        assert body["name"] == name
    multipart = await client.post(
        "/api/v1/files", headers=auth, files=[("file", ("naïve ☃.txt", b"x", "text/plain"))]
    )
    assert multipart.json()["files"][0]["name"] == "naïve ☃.txt"


async def test_empty_file_is_stored(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    body = await upload_raw(client, auth, "empty", b"")
    assert body["size"] == 0
    content = await client.get(f"/api/v1/files/{body['id']}/content", headers=auth)
    assert content.status_code == 200
    assert content.content == b""


async def test_directory_parts_of_a_name_are_dropped(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    for given in ("../../etc/passwd", "C:\\Users\\me\\report.txt", "a/b/c.txt"):
        body = await upload_raw(client, auth, given, b"data")
        assert "/" not in str(body["name"])
        assert "\\" not in str(body["name"])
        assert body["name"] == given.replace("\\", "/").rsplit("/", 1)[-1]


@pytest.mark.parametrize(
    "name", ["bad\x00name", "line\r\nbreak", "..", "   ", "x" * 300, "tab\there"]
)
async def test_invalid_names_are_422_and_store_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running, name: str
) -> None:
    before = await stored_keys(running)
    response = await client.post(
        "/api/v1/files", params={"name": name}, content=b"content", headers=auth
    )
    assert_problem(response, 422, "invalid_file_name")
    assert await stored_keys(running) == before
    assert (await client.get("/api/v1/files", headers=auth)).json()["items"] == []


@pytest.mark.parametrize("raw_name", [b"..", b"x" * 300, b"a\x7fb"])
async def test_invalid_multipart_names_are_422_and_store_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running, raw_name: bytes
) -> None:
    before = await stored_keys(running)
    body = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="'
        + raw_name
        + b'"\r\n\r\ncontent\r\n--B--\r\n'
    )
    response = await client.post(
        "/api/v1/files",
        content=body,
        headers={**auth, "Content-Type": "multipart/form-data; boundary=B"},
    )
    assert response.status_code in (400, 422), response.text
    assert response.json()["code"] in ("invalid_file_name", "malformed_multipart")
    assert await stored_keys(running) == before
    assert (await client.get("/api/v1/files", headers=auth)).json()["items"] == []


async def test_a_streamed_body_over_the_limit_is_413_and_keeps_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    before = await stored_keys(running)
    too_big = running.settings.max_upload_bytes + 1
    response = await client.post(
        "/api/v1/files", params={"name": "big.bin"}, headers=auth, content=chunks(too_big)
    )
    assert_problem(response, 413, "file_too_large")
    assert await stored_keys(running) == before
    assert (await client.get("/api/v1/files", headers=auth)).json()["items"] == []


async def test_a_declared_length_over_the_limit_is_refused_before_reading(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    pulled = 0

    async def body() -> object:
        nonlocal pulled
        for _ in range(200):
            pulled += 1
            yield b"x" * 65536

    response = await client.post(
        "/api/v1/files",
        params={"name": "big.bin"},
        headers={**auth, "Content-Length": str(running.settings.max_upload_bytes + 1)},
        content=body(),  # type: ignore[arg-type]
    )
    assert_problem(response, 413, "file_too_large")
    assert pulled <= 2


async def test_a_multipart_file_over_the_limit_discards_the_files_before_it(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    before = await stored_keys(running)
    response = await client.post(
        "/api/v1/files",
        headers=auth,
        files=[
            ("file", ("small.txt", b"fine", "text/plain")),
            ("file", ("big.bin", b"\0" * (running.settings.max_upload_bytes + 1), "x/y")),
        ],
    )
    assert_problem(response, 413, "file_too_large")
    assert await stored_keys(running) == before
    assert (await client.get("/api/v1/files", headers=auth)).json()["items"] == []


async def test_too_many_files_in_one_request_is_413_and_keeps_none(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    count = running.settings.max_files_per_request + 1
    response = await client.post(
        "/api/v1/files",
        headers=auth,
        files=[("file", (f"f{i}.txt", b"x", "text/plain")) for i in range(count)],
    )
    assert_problem(response, 413, "too_many_files")
    assert (await client.get("/api/v1/files", headers=auth)).json()["items"] == []


async def test_multipart_without_a_file_part_is_400(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post(
        "/api/v1/files",
        headers=auth,
        data={"file": "not a file, no filename"},
        files=[("other", ("x.txt", b"x", "text/plain"))],
    )
    assert_problem(response, 400, "no_file")


async def test_a_truncated_multipart_body_is_400_and_keeps_the_complete_part_neither(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    before = await stored_keys(running)
    body = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="file"; filename="whole.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n"
        b"complete\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="file"; filename="cut.txt"\r\n\r\n'
        b"cut off in the midd"
    )
    response = await client.post(
        "/api/v1/files",
        content=body,
        headers={**auth, "Content-Type": "multipart/form-data; boundary=XyZ"},
    )
    assert_problem(response, 400, "malformed_multipart")
    assert await stored_keys(running) == before
    assert (await client.get("/api/v1/files", headers=auth)).json()["items"] == []


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",
        "multipart/form-data; boundary=",
        'multipart/form-data; boundary="' + "b" * 80 + '"',
    ],
)
async def test_multipart_without_a_usable_boundary_is_400(
    client: httpx.AsyncClient, auth: dict[str, str], content_type: str
) -> None:
    response = await client.post(
        "/api/v1/files", content=b"--b\r\n\r\n", headers={**auth, "Content-Type": content_type}
    )
    assert_problem(response, 400, "malformed_multipart")


async def test_an_empty_file_input_part_is_ignored(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    body = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename=""\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n\r\n"
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="real.txt"\r\n\r\n'
        b"real\r\n--B--\r\n"
    )
    response = await client.post(
        "/api/v1/files",
        content=body,
        headers={**auth, "Content-Type": "multipart/form-data; boundary=B"},
    )
    assert response.status_code == 201, response.text
    assert [f["name"] for f in response.json()["files"]] == ["real.txt"]
