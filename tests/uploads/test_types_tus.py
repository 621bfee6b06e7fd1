"""tus and types: the first PATCH (or creation-with-upload) decides the type from the
first bytes and answers 415 `type_not_allowed` before any is staged; the upload is
then gone with its room in the quota. A finished upload's file keeps `filetype` as
its declared type. On each database × store."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from seau.files.types import EMPTY, detect
from seau.uploads.errors import BodyInterrupted
from tests.api.helpers import assert_problem
from tests.files import corpus
from tests.files.typed import COMBINATIONS, Typed, typed_app

TUS = {"Tus-Resumable": "1.0.0"}
OFFSET = {"Content-Type": "application/offset+octet-stream"}


@pytest.fixture(scope="module", params=COMBINATIONS)
async def typed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Typed]:
    async for app in typed_app(request, tmp_path_factory.mktemp("tus-typed")):
        yield app


def _metadata(name: str, filetype: str) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}"
        for key, value in (("filename", name), ("filetype", filetype))
    )


async def _create(
    typed: Typed, auth: dict[str, str], *, length: int, name: str, filetype: str
) -> str:
    created = await typed.client.post(
        "/api/v1/uploads",
        headers={
            **auth,
            **TUS,
            "Upload-Length": str(length),
            "Upload-Metadata": _metadata(name, filetype),
        },
    )
    assert created.status_code == 201, created.text
    return httpx.URL(created.headers["location"]).path


def _refused(response: httpx.Response, detected: str) -> None:
    body = assert_problem(response, 415, "type_not_allowed")
    assert body["detected"] == detected, body


async def _gone(typed: Typed, auth: dict[str, str], location: str) -> None:
    head = await typed.client.head(location, headers={**auth, **TUS})
    assert head.status_code == 404, head.headers


async def test_the_first_patch_refuses_an_executable_named_photo_jpg(typed: Typed) -> None:
    auth = await typed.user()
    keys = await typed.keys()
    elf = corpus.elf_head() + bytes(60_000)
    location = await _create(typed, auth, length=len(elf), name="photo.jpg", filetype="image/jpeg")
    usage = (await typed.client.get("/api/v1/usage", headers=auth)).json()
    assert usage["reserved_bytes"] == len(elf)
    answer = await typed.client.patch(
        location, content=elf, headers={**auth, **TUS, **OFFSET, "Upload-Offset": "0"}
    )
    _refused(answer, detect(elf))
    await _gone(typed, auth, location)
    await typed.nothing_left(auth, keys=keys)


async def test_creation_with_upload_refuses_html_claiming_to_be_png(typed: Typed) -> None:
    auth = await typed.user()
    keys = await typed.keys()
    answer = await typed.client.post(
        "/api/v1/uploads",
        content=corpus.HTML,
        headers={
            **auth,
            **TUS,
            **OFFSET,
            "Upload-Length": str(len(corpus.HTML)),
            "Upload-Metadata": _metadata("cat.png", "image/png"),
        },
    )
    _refused(answer, "text/html")
    assert "location" not in answer.headers
    await typed.nothing_left(auth, keys=keys)


async def test_a_deferred_length_upload_is_refused_at_its_first_bytes(typed: Typed) -> None:
    auth = await typed.user()
    keys = await typed.keys()
    created = await typed.client.post(
        "/api/v1/uploads",
        headers={
            **auth,
            **TUS,
            "Upload-Defer-Length": "1",
            "Upload-Metadata": _metadata("x.pdf", "application/pdf"),
        },
    )
    assert created.status_code == 201, created.text
    location = httpx.URL(created.headers["location"]).path
    answer = await typed.client.patch(
        location,
        content=b"PK\x03\x04" + bytes(2000),
        headers={**auth, **TUS, **OFFSET, "Upload-Offset": "0"},
    )
    assert_problem(answer, 415, "type_not_allowed")
    await _gone(typed, auth, location)
    await typed.nothing_left(auth, keys=keys)


async def test_an_empty_upload_is_refused_at_creation_when_empty_is_not_allowed(
    typed: Typed,
) -> None:
    auth = await typed.user()
    keys = await typed.keys()
    answer = await typed.client.post(
        "/api/v1/uploads",
        headers={
            **auth,
            **TUS,
            "Upload-Length": "0",
            "Upload-Metadata": _metadata("e.png", "image/png"),
        },
    )
    _refused(answer, EMPTY)
    await typed.nothing_left(auth, keys=keys)


async def test_an_allowed_upload_keeps_its_claim_as_declared_type(typed: Typed) -> None:
    auth = await typed.user()
    picture = corpus.image("PNG", size=(256, 256))
    location = await _create(typed, auth, length=len(picture), name="pic.gif", filetype="image/gif")
    half = len(picture) // 2
    for start, end in ((0, half), (half, len(picture))):
        answer = await typed.client.patch(
            location,
            content=picture[start:end],
            headers={**auth, **TUS, **OFFSET, "Upload-Offset": str(start)},
        )
        assert answer.status_code == 204, answer.text
    file_id = location.rsplit("/", 1)[-1]
    file = (await typed.client.get(f"/api/v1/files/{file_id}", headers=auth)).json()
    assert (file["content_type"], file["declared_type"]) == ("image/png", "image/gif")
    content = await typed.client.get(
        f"/api/v1/files/{file_id}/content", params={"redirect": "false"}, headers=auth
    )
    assert content.headers["content-type"] == "image/png"
    assert content.content == picture


async def test_a_first_request_cut_short_keeps_none_of_its_bytes(typed: Typed) -> None:
    """Its type would be decided by the few bytes that came: the client sends them again."""
    auth = await typed.user()
    picture = corpus.png()
    location = await _create(typed, auth, length=len(picture), name="p.png", filetype="image/png")
    upload_id = location.rsplit("/", 1)[-1]
    me = (await typed.client.get("/api/v1/users/me", headers=auth)).json()
    uploads = typed.app.state.seau.uploads

    async def cut_short() -> AsyncIterator[bytes]:
        yield picture[:10]
        raise BodyInterrupted("the client went away")

    with pytest.raises(BodyInterrupted):
        await uploads.append(
            owner_id=uuid.UUID(me["id"]), upload_id=upload_id, offset=0, data=cut_short()
        )
    head = await typed.client.head(location, headers={**auth, **TUS})
    assert head.headers["upload-offset"] == "0"
    answer = await typed.client.patch(
        location, content=picture, headers={**auth, **TUS, **OFFSET, "Upload-Offset": "0"}
    )
    assert answer.status_code == 204, answer.text
    file = (await typed.client.get(f"/api/v1/files/{upload_id}", headers=auth)).json()
    assert file["content_type"] == "image/png"
