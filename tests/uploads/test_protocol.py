"""tus 1.0.0 through the real app, on every database × store combination."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
from sqlalchemy import select, update

from seau.db.base import utcnow
from seau.db.models import Upload
from seau.files.types import detect
from tests.api.helpers import assert_problem
from tests.conftest import Running, sign_up
from tests.uploads.helpers import (
    OFFSET_STREAM,
    TUS,
    MiB,
    assert_head_problem,
    checksum,
    create,
    metadata,
    patch,
    send_all,
    staged_for,
    upload_id,
)

# The `running` apps allow 8 MiB, so S3 parts are 5 MiB: 3 MiB requests cross
# part boundaries in the middle, which exercises the tail object.
CHUNK = 3 * MiB


async def test_options_advertises_the_extensions_and_the_maximum_size(
    client: httpx.AsyncClient, running: Running
) -> None:
    response = await client.options("/api/v1/uploads")
    assert response.status_code == 204
    assert response.headers["tus-version"] == "1.0.0"
    assert set(response.headers["tus-extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "termination",
        "expiration",
        "checksum",
    }
    assert response.headers["tus-max-size"] == str(running.settings.max_upload_bytes)
    assert response.headers["tus-checksum-algorithm"] == "sha1,sha256"


async def test_chunked_upload_becomes_a_ready_file_with_its_sha256(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    data = os.urandom(7 * MiB + 12345)
    location = await create(
        client,
        auth,
        length=len(data),
        extra={"Upload-Metadata": metadata(filename="photo.jpg", filetype="image/jpeg")},
    )
    last = await send_all(client, auth, location, data, chunk=CHUNK)
    assert last.headers["tus-resumable"] == "1.0.0"
    assert last.headers["upload-offset"] == str(len(data))

    file_id = upload_id(location)
    listed = (await client.get("/api/v1/files", headers=auth)).json()["items"]
    assert [f["id"] for f in listed if f["id"] == file_id] == [file_id]
    meta = (await client.get(f"/api/v1/files/{file_id}", headers=auth)).json()
    assert meta["name"] == "photo.jpg"
    # Random bytes are not a JPEG, whatever the client said.
    assert (meta["content_type"], meta["declared_type"]) == (detect(data), "image/jpeg")
    assert meta["size"] == len(data)
    assert meta["sha256"] == hashlib.sha256(data).hexdigest()
    content = await client.get(f"/api/v1/files/{file_id}/content", headers=auth)
    assert content.content == data


async def test_head_reports_offset_length_metadata_and_expiry(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    sent_metadata = metadata(filename="notes.txt", filetype="text/plain")
    location = await create(client, auth, length=100, extra={"Upload-Metadata": sent_metadata})
    assert (await patch(client, auth, location, offset=0, data=b"x" * 40)).status_code == 204

    response = await client.head(location, headers={**auth, **TUS})
    assert response.status_code == 200
    assert response.headers["upload-offset"] == "40"
    assert response.headers["upload-length"] == "100"
    assert response.headers["upload-metadata"] == sent_metadata
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["tus-resumable"] == "1.0.0"
    assert "upload-expires" in response.headers


async def test_creation_with_upload_stores_the_first_bytes(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    data = os.urandom(6 * MiB)
    headers = {
        **auth,
        **TUS,
        **OFFSET_STREAM,
        "Upload-Length": str(len(data)),
        "Upload-Metadata": metadata(filename="first.bin"),
    }
    created = await client.post("/api/v1/uploads", headers=headers, content=data[: 4 * MiB])
    assert created.status_code == 201, created.text
    assert created.headers["upload-offset"] == str(4 * MiB)
    location = created.headers["location"]
    done = await patch(client, auth, location, offset=4 * MiB, data=data[4 * MiB :])
    assert done.status_code == 204
    file = (await client.get(f"/api/v1/files/{upload_id(location)}", headers=auth)).json()
    assert file["sha256"] == hashlib.sha256(data).hexdigest()


async def test_deferred_length_is_declared_by_a_later_patch(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    data = os.urandom(5 * MiB + 7)
    location = await create(client, auth, length=None)
    head = await client.head(location, headers={**auth, **TUS})
    assert head.headers["upload-defer-length"] == "1"
    assert "upload-length" not in head.headers
    first = await patch(client, auth, location, offset=0, data=data[:CHUNK])
    assert first.status_code == 204
    last = await patch(
        client,
        auth,
        location,
        offset=CHUNK,
        data=data[CHUNK:],
        extra={"Upload-Length": str(len(data))},
    )
    assert last.status_code == 204, last.text
    file = (await client.get(f"/api/v1/files/{upload_id(location)}", headers=auth)).json()
    assert file["size"] == len(data)
    assert file["sha256"] == hashlib.sha256(data).hexdigest()


async def test_empty_upload_is_a_file_as_soon_as_it_is_created(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    location = await create(client, auth, length=0, name="empty.txt")
    file = (await client.get(f"/api/v1/files/{upload_id(location)}", headers=auth)).json()
    assert file["size"] == 0
    assert file["sha256"] == hashlib.sha256(b"").hexdigest()
    head = await client.head(location, headers={**auth, **TUS})
    assert head.headers["upload-offset"] == "0"
    assert "upload-expires" not in head.headers


async def test_patch_at_the_wrong_offset_is_409_with_the_current_offset(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    location = await create(client, auth, length=10)
    assert (await patch(client, auth, location, offset=0, data=b"12345")).status_code == 204
    response = await patch(client, auth, location, offset=3, data=b"45678")
    assert_problem(response, 409, "upload_offset_mismatch")
    assert response.headers["upload-offset"] == "5"
    assert response.headers["tus-resumable"] == "1.0.0"


async def test_checksum_mismatch_is_460_and_discards_the_bytes(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    data = os.urandom(6 * MiB)
    location = await create(client, auth, length=len(data))
    first = data[:CHUNK]
    ok = await patch(
        client,
        auth,
        location,
        offset=0,
        data=first,
        extra={"Upload-Checksum": checksum("sha256", first)},
    )
    assert ok.status_code == 204
    second = data[CHUNK:]
    corrupted = bytes([second[0] ^ 1]) + second[1:]
    bad = await patch(
        client,
        auth,
        location,
        offset=CHUNK,
        data=corrupted,
        extra={"Upload-Checksum": checksum("sha1", second)},
    )
    assert_problem(bad, 460, "checksum_mismatch")
    assert bad.headers["upload-offset"] == str(CHUNK)
    head = await client.head(location, headers={**auth, **TUS})
    assert head.headers["upload-offset"] == str(CHUNK)

    good = await patch(
        client,
        auth,
        location,
        offset=CHUNK,
        data=second,
        extra={"Upload-Checksum": checksum("sha1", second)},
    )
    assert good.status_code == 204
    content = await client.get(f"/api/v1/files/{upload_id(location)}/content", headers=auth)
    assert content.content == data


async def test_unsupported_checksum_algorithm_is_400(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    location = await create(client, auth, length=3)
    response = await patch(
        client,
        auth,
        location,
        offset=0,
        data=b"abc",
        extra={"Upload-Checksum": "md5 kAFQmDzST7DWlj99KOF/cg=="},
    )
    assert_problem(response, 400, "invalid_tus_header")


async def test_patch_without_the_offset_stream_type_is_415(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    location = await create(client, auth, length=3)
    response = await client.patch(
        location,
        headers={**auth, **TUS, "Upload-Offset": "0", "Content-Type": "application/octet-stream"},
        content=b"abc",
    )
    assert_problem(response, 415, "unsupported_media_type")


async def test_request_without_tus_resumable_is_412_naming_the_version(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post("/api/v1/uploads", headers={**auth, "Upload-Length": "3"})
    assert_problem(response, 412, "tus_version_unsupported")
    assert response.headers["tus-version"] == "1.0.0"


async def test_request_without_a_token_is_401_and_speaks_tus(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "3"})
    assert_problem(response, 401, "token_invalid")
    assert response.headers["tus-resumable"] == "1.0.0"


async def test_another_users_upload_is_not_found(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    location = await create(client, auth, length=3)
    other = await sign_up(client)
    assert_head_problem(await client.head(location, headers={**other, **TUS}), 404)
    assert_problem(
        await patch(client, other, location, offset=0, data=b"abc"), 404, "upload_not_found"
    )
    assert_problem(await client.delete(location, headers={**other, **TUS}), 404, "upload_not_found")
    # Still the owner's, untouched.
    assert (await patch(client, auth, location, offset=0, data=b"abc")).status_code == 204


async def test_unknown_or_malformed_upload_id_is_not_found(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    for path in (f"/api/v1/uploads/{uuid.uuid4()}", "/api/v1/uploads/not-a-uuid"):
        assert_head_problem(await client.head(path, headers={**auth, **TUS}), 404)


async def test_termination_removes_the_upload_and_its_staged_bytes(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    data = os.urandom(6 * MiB)
    location = await create(client, auth, length=8 * MiB)
    assert (await patch(client, auth, location, offset=0, data=data)).status_code == 204
    assert staged_for(running, location)

    response = await client.delete(location, headers={**auth, **TUS})
    assert response.status_code == 204
    assert response.headers["tus-resumable"] == "1.0.0"
    assert staged_for(running, location) == []
    assert_head_problem(await client.head(location, headers={**auth, **TUS}), 404)


async def test_more_bytes_than_the_length_is_413_and_the_offset_stays(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    location = await create(client, auth, length=10)
    assert (await patch(client, auth, location, offset=0, data=b"12345")).status_code == 204
    response = await patch(client, auth, location, offset=5, data=b"6789012")
    assert_problem(response, 413, "file_too_large")
    head = await client.head(location, headers={**auth, **TUS})
    assert head.headers["upload-offset"] == "5"


async def test_streamed_bytes_beyond_the_length_are_413_and_discarded(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    location = await create(client, auth, length=10)

    async def too_much() -> AsyncIterator[bytes]:
        yield b"12345"
        yield b"6789012"

    headers = {**auth, **TUS, **OFFSET_STREAM, "Upload-Offset": "0"}
    response = await client.patch(location, headers=headers, content=too_much())
    assert_problem(response, 413, "file_too_large")
    head = await client.head(location, headers={**auth, **TUS})
    assert head.headers["upload-offset"] == "0"


async def test_length_above_the_maximum_is_413(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    headers = {**auth, **TUS, "Upload-Length": str(running.settings.max_upload_bytes + 1)}
    assert_problem(await client.post("/api/v1/uploads", headers=headers), 413, "file_too_large")


async def test_invalid_metadata_is_400(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    headers = {**auth, **TUS, "Upload-Length": "3", "Upload-Metadata": "filename %%%"}
    response = await client.post("/api/v1/uploads", headers=headers)
    assert_problem(response, 400, "invalid_tus_header")


async def test_patch_while_another_is_writing_is_423_with_the_current_offset(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    location = await create(client, auth, length=20)
    assert (await patch(client, auth, location, offset=0, data=b"0123456789")).status_code == 204
    started, release = asyncio.Event(), asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"abcde"
        started.set()
        await release.wait()
        yield b"fghij"

    headers = {**auth, **TUS, **OFFSET_STREAM, "Upload-Offset": "10"}
    first = asyncio.create_task(client.patch(location, headers=headers, content=slow()))
    await asyncio.wait_for(started.wait(), 10)
    second = await patch(client, auth, location, offset=10, data=b"ABCDEFGHIJ")
    assert_problem(second, 423, "upload_locked")
    assert second.headers["upload-offset"] == "10"
    terminate = await client.delete(location, headers={**auth, **TUS})
    assert_problem(terminate, 423, "upload_locked")

    release.set()
    assert (await first).status_code == 204
    content = await client.get(f"/api/v1/files/{upload_id(location)}/content", headers=auth)
    assert content.content == b"0123456789abcdefghij"


async def test_expired_upload_is_410_and_gc_reclaims_its_data(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    location = await create(client, auth, length=8 * MiB)
    assert (
        await patch(client, auth, location, offset=0, data=os.urandom(CHUNK))
    ).status_code == 204
    parsed = uuid.UUID(upload_id(location))
    state = running.app.state.seau
    uploads = state.uploads
    assert uploads is not None
    async with state.sessions() as session:
        await session.execute(
            update(Upload)
            .where(Upload.id == parsed)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    assert_head_problem(await client.head(location, headers={**auth, **TUS}), 410)
    assert_problem(
        await patch(client, auth, location, offset=CHUNK, data=b"x"), 410, "upload_expired"
    )

    dry = await uploads.reclaim(
        older_than=utcnow() - timedelta(days=1),
        dry_run=True,
    )
    assert dry >= 1
    assert staged_for(running, location)
    reclaimed = await uploads.reclaim(older_than=utcnow() - timedelta(days=1))
    assert reclaimed >= 1
    assert staged_for(running, location) == []
    async with state.sessions() as session:
        assert await session.scalar(select(Upload.id).where(Upload.id == parsed)) is None
    assert_head_problem(await client.head(location, headers={**auth, **TUS}), 404)


async def test_gc_removes_staging_data_no_upload_records(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    """A crash between creating an S3 multipart upload (or a staging file) and
    recording it leaves data no row points at; gc removes it once it is old."""
    location = await create(client, auth, length=8 * MiB)
    assert (
        await patch(client, auth, location, offset=0, data=os.urandom(CHUNK))
    ).status_code == 204
    parsed = uuid.UUID(upload_id(location))
    state = running.app.state.seau
    uploads = state.uploads
    assert uploads is not None
    async with state.sessions() as session:
        await session.execute(
            update(Upload).where(Upload.id == parsed).values(handle=None, tail_key=None)
        )
        await session.commit()

    young = await uploads.reclaim(older_than=utcnow() - timedelta(hours=1))
    # Young data stays (on moto, which dates every multipart upload 2010, the tail does).
    assert staged_for(running, location), young
    await uploads.reclaim(older_than=utcnow() + timedelta(seconds=1))
    assert staged_for(running, location) == []
