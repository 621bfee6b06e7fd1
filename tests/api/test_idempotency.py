"""Safe retries: `Idempotency-Key` on the routes that create something, on every
database and store (the `running` app). A retry answers the first answer and does
not do the work again; the same key on another request, a key still running, and
a malformed key are refused with their codes; a failed request frees its key."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from seau.db.base import utcnow
from seau.db.models import IdempotencyRecord
from seau.deps import AppState
from seau.errors import IdempotencyKeyInUse, IdempotencyKeyReused
from seau.idempotency.service import ABANDONED, KEEP, Answer, Claim, Idempotency
from tests.conftest import Running, sign_up

TUS = {"Tus-Resumable": "1.0.0"}


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def _names(client: httpx.AsyncClient, auth: dict[str, str]) -> list[str]:
    listed = await client.get("/api/v1/files", headers=auth, params={"limit": 1000})
    assert listed.status_code == 200, listed.text
    return [item["name"] for item in listed.json()["items"]]


async def test_a_raw_upload_sent_twice_with_one_key_is_stored_once(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    headers = auth | _key()
    first = await client.post(
        "/api/v1/files", params={"name": "once.txt"}, content=b"only once", headers=headers
    )
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = await client.post(
        "/api/v1/files", params={"name": "once.txt"}, content=b"only once", headers=headers
    )
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["content-type"] == "application/json"
    assert await _names(client, auth) == ["once.txt"]
    # Without a key, the same request is a new file.
    plain = await client.post(
        "/api/v1/files", params={"name": "once.txt"}, content=b"only once", headers=auth
    )
    assert plain.status_code == 201
    assert plain.json()["id"] != first.json()["id"]


async def test_a_multipart_retry_answers_the_same_files(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    headers = auth | _key()
    files = [("file", ("a.bin", b"a" * 100)), ("file", ("b.bin", b"b" * 200))]
    # httpx draws a new boundary for each request, as browsers and most clients do.
    first = await client.post("/api/v1/files", files=files, headers=headers)
    assert first.status_code == 201, first.text
    again = await client.post("/api/v1/files", files=files, headers=headers)
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert [f["id"] for f in again.json()["files"]] == [f["id"] for f in first.json()["files"]]
    assert sorted(await _names(client, auth)) == ["a.bin", "b.bin"]


async def test_the_same_key_on_another_request_is_refused(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    headers = auth | _key()
    first = await client.post(
        "/api/v1/files", params={"name": "one.txt"}, content=b"first", headers=headers
    )
    assert first.status_code == 201
    for params, content_type in (({"name": "two.txt"}, None), ({"name": "one.txt"}, "image/png")):
        other = await client.post(
            "/api/v1/files",
            params=params,
            content=b"first",
            headers=headers | ({"Content-Type": content_type} if content_type else {}),
        )
        assert other.status_code == 422, other.text
        assert other.json()["code"] == "idempotency_key_reused"
    assert await _names(client, auth) == ["one.txt"]


async def test_keys_belong_to_their_owner(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    key = _key()
    other = await sign_up(client)
    mine = await client.post(
        "/api/v1/files", params={"name": "k.txt"}, content=b"k", headers=auth | key
    )
    theirs = await client.post(
        "/api/v1/files", params={"name": "k.txt"}, content=b"k", headers=other | key
    )
    assert mine.status_code == theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert mine.json()["id"] != theirs.json()["id"]
    assert await _names(client, other) == ["k.txt"]


async def test_a_malformed_key_is_a_400(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    raw_auth = {name.encode(): value.encode() for name, value in auth.items()}
    for bad in (b"", b"x" * 256, "caf\u00e9".encode(), b"two words"):
        answer = await client.post(
            "/api/v1/files",
            params={"name": "bad.txt"},
            content=b"x",
            headers=raw_auth | {b"Idempotency-Key": bad},
        )
        assert answer.status_code == 400, (bad, answer.text)
        assert answer.json()["code"] == "invalid_idempotency_key"
    # The draft's structured-field form (a quoted string) is the same key as the bare one.
    made = await client.post(
        "/api/v1/files",
        params={"name": "q.txt"},
        content=b"q",
        headers=auth | {"Idempotency-Key": '"quoted-key-1"'},
    )
    again = await client.post(
        "/api/v1/files",
        params={"name": "q.txt"},
        content=b"q",
        headers=auth | {"Idempotency-Key": "quoted-key-1"},
    )
    assert made.status_code == again.status_code == 201
    assert again.json()["id"] == made.json()["id"]
    assert await _names(client, auth) == ["q.txt"]


async def test_a_failed_request_frees_its_key(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    headers = auth | _key()
    too_big = b"x" * (running.settings.max_upload_bytes + 1)
    # Chunked (no Content-Length): refused only once the bytes pass the limit.

    async def body(data: bytes) -> AsyncIterator[bytes]:
        yield data

    failed = await client.post(
        "/api/v1/files", params={"name": "big.bin"}, content=body(too_big), headers=headers
    )
    assert failed.status_code == 413, failed.text
    retried = await client.post(
        "/api/v1/files", params={"name": "big.bin"}, content=body(b"fits"), headers=headers
    )
    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert await _names(client, auth) == ["big.bin"]


async def test_a_retry_while_the_first_runs_is_a_409_then_the_answer(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    headers = auth | _key()
    started, release = asyncio.Event(), asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"first half "
        started.set()
        await release.wait()
        yield b"second half"

    first = asyncio.create_task(
        client.post("/api/v1/files", params={"name": "slow.txt"}, content=slow(), headers=headers)
    )
    await asyncio.wait_for(started.wait(), 10)

    async def same() -> AsyncIterator[bytes]:
        yield b"first half second half"

    during = await client.post(
        "/api/v1/files", params={"name": "slow.txt"}, content=same(), headers=headers
    )
    assert during.status_code == 409, during.text
    assert during.json()["code"] == "idempotency_key_in_use"
    assert during.headers["retry-after"] == "1"
    release.set()
    done = await first
    assert done.status_code == 201, done.text
    after = await client.post(
        "/api/v1/files", params={"name": "slow.txt"}, content=same(), headers=headers
    )
    assert after.status_code == 201
    assert after.json()["id"] == done.json()["id"]
    assert await _names(client, auth) == ["slow.txt"]


async def test_a_tus_creation_retry_answers_the_same_upload(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    headers = auth | TUS | _key() | {"Upload-Length": "5", "Upload-Metadata": "filename YS50eHQ="}
    first = await client.post("/api/v1/uploads", headers=headers)
    assert first.status_code == 201, first.text
    again = await client.post("/api/v1/uploads", headers=headers)
    assert again.status_code == 201, again.text
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    other = await client.post("/api/v1/uploads", headers=headers | {"Upload-Length": "6"})
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    sent = await client.patch(
        first.headers["location"],
        headers=auth
        | TUS
        | {"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
        content=b"hello",
    )
    assert sent.status_code == 204, sent.text
    assert await _names(client, auth) == ["a.txt"]


async def test_a_share_creation_retry_answers_the_same_url(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    made = await client.post(
        "/api/v1/files", params={"name": "shared.txt"}, content=b"s", headers=auth
    )
    file_id = made.json()["id"]
    headers = auth | _key()
    body = {"max_downloads": 3, "password": "a long share password"}
    first = await client.post(f"/api/v1/files/{file_id}/shares", json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = await client.post(f"/api/v1/files/{file_id}/shares", json=body, headers=headers)
    assert again.status_code == 201, again.text
    assert again.json()["url"] == first.json()["url"]
    listed = await client.get(f"/api/v1/files/{file_id}/shares", headers=auth)
    assert len(listed.json()["items"]) == 1
    # Another password is another request.
    other = await client.post(
        f"/api/v1/files/{file_id}/shares",
        json=body | {"password": "another long password"},
        headers=headers,
    )
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"


async def test_a_direct_upload_creation_retry_answers_the_same_upload(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    headers = auth | _key()
    body = {"name": "direct.bin", "size": 10, "content_type": "application/octet-stream"}
    first = await client.post("/api/v1/direct-uploads", json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = await client.post("/api/v1/direct-uploads", json=body, headers=headers)
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other = await client.post("/api/v1/direct-uploads", json=body | {"size": 11}, headers=headers)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"


async def test_the_openapi_document_names_the_header_and_its_errors(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    for path in (
        "/api/v1/files",
        "/api/v1/uploads",
        "/api/v1/files/{file_id}/shares",
        "/api/v1/direct-uploads",
    ):
        operation = document["paths"][path]["post"]
        names = [p["name"] for p in operation.get("parameters", [])]
        assert "Idempotency-Key" in names, path
        described = str(operation["responses"])
        for code in ("idempotency_key_reused", "idempotency_key_in_use", "invalid_idempotency_key"):
            assert code in described, (path, code)


# -- the service, with its clock moved -------------------------------------------


async def _owner(client: httpx.AsyncClient, auth: dict[str, str]) -> uuid.UUID:
    me = await client.get("/api/v1/users/me", headers=auth)
    assert me.status_code == 200, me.text
    return uuid.UUID(me.json()["id"])


def _service(running: Running, at: datetime) -> Idempotency:
    state: AppState = running.app.state.seau
    return Idempotency(sessions=state.sessions, clock=lambda: at)


async def _finish(running: Running, service: Idempotency, claim: Claim, answer: Answer) -> bool:
    """Store an answer as a route's work does: in a transaction of its own here."""
    state: AppState = running.app.state.seau
    async with state.sessions() as session:
        stored = await service.answer_in(session, claim, answer)
        await session.commit()
    return stored


ANSWER = Answer(status=201, headers=(("content-type", "application/json"),), body=b'{"id":1}')


async def test_a_claim_left_by_a_dead_process_is_taken_over_after_a_while(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    owner, now = await _owner(client, auth), utcnow()
    first = await _service(running, now).begin(owner_id=owner, key="k-dead", fingerprint="f")
    assert isinstance(first, Claim)
    # Renewed claims hold...
    with pytest.raises(IdempotencyKeyInUse):
        await _service(running, now + ABANDONED / 2).begin(
            owner_id=owner, key="k-dead", fingerprint="f"
        )
    # ...a claim not renewed for `ABANDONED` is a dead process's: the retry runs.
    later = _service(running, now + ABANDONED + timedelta(seconds=1))
    second = await later.begin(owner_id=owner, key="k-dead", fingerprint="f")
    assert isinstance(second, Claim)
    assert second.token != first.token
    # The dead request's answer, should it come after all, is not kept.
    late = Answer(status=201, headers=(), body=b"late")
    assert not await _finish(running, _service(running, now), first, late)
    assert await _finish(running, later, second, ANSWER)
    assert await later.begin(owner_id=owner, key="k-dead", fingerprint="f") == ANSWER


async def test_a_key_is_new_again_after_a_day_and_gc_forgets_it(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    owner, now = await _owner(client, auth), utcnow()
    today = _service(running, now)
    claim = await today.begin(owner_id=owner, key="k-day", fingerprint="f")
    assert isinstance(claim, Claim)
    await _finish(running, today, claim, ANSWER)
    assert await today.begin(owner_id=owner, key="k-day", fingerprint="f") == ANSWER
    with pytest.raises(IdempotencyKeyReused):
        await today.begin(owner_id=owner, key="k-day", fingerprint="other")
    tomorrow = _service(running, now + KEEP + timedelta(minutes=1))
    assert await tomorrow.purge(dry_run=True) >= 1
    assert await today.begin(owner_id=owner, key="k-day", fingerprint="f") == ANSWER
    assert await tomorrow.purge() >= 1
    fresh = await tomorrow.begin(owner_id=owner, key="k-day", fingerprint="other")
    assert isinstance(fresh, Claim)
    # Past its day, a record gc has not removed yet is taken over all the same.
    await _finish(running, tomorrow, fresh, ANSWER)
    after = _service(running, now + 2 * KEEP + timedelta(minutes=2))
    assert isinstance(await after.begin(owner_id=owner, key="k-day", fingerprint="f"), Claim)


async def test_the_database_holds_neither_the_key_nor_the_answer_in_clear(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    owner = await _owner(client, auth)
    made = await client.post("/api/v1/files", params={"name": "s.txt"}, content=b"s", headers=auth)
    key = f"secret-key-{uuid.uuid4()}"
    shared = await client.post(
        f"/api/v1/files/{made.json()['id']}/shares",
        json={},
        headers=auth | {"Idempotency-Key": key},
    )
    assert shared.status_code == 201, shared.text
    token = shared.json()["url"].rsplit("/", 1)[1]
    state: AppState = running.app.state.seau
    async with state.sessions() as session:
        rows = (
            await session.scalars(
                select(IdempotencyRecord).where(IdempotencyRecord.owner_id == owner)
            )
        ).all()
    assert len(rows) == 1
    stored = " ".join(
        str(getattr(rows[0], column)) for column in ("key_hash", "fingerprint", "answer")
    )
    opened = base64.b64decode(rows[0].answer or "")
    assert key not in stored
    assert token not in stored
    assert token.encode() not in opened
    assert b"url" not in opened
