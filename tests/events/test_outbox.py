"""Every change writes its event in its own transaction, on every database: one
event per change, none for a change that did not happen."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import false, select, update

from seau.db.base import utcnow
from seau.db.models import Upload, User, WebhookEvent
from seau.errors import PayloadTooLarge
from seau.events import outbox
from seau.events.types import EventType
from seau.files.schemas import FileRead
from seau.files.service import FileService, NewFile
from seau.wiring import Parts
from tests.events.conftest import KINDS, make_owner, open_test_parts, outbox_rows
from tests.support.databases import Kind


async def _chunks(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def _upload(parts: Parts, owner: uuid.UUID, name: str = "a.txt") -> uuid.UUID:
    row = await parts.files.upload(
        owner_id=owner, name=name, content_type=None, data=_chunks(b"hello"), max_bytes=100
    )
    return row.id


async def test_upload_rename_delete_write_one_event_each_with_the_file_as_the_api_shows_it(
    parts: Parts,
) -> None:
    owner = await make_owner(parts, subject="auth0|Alice")
    file_id = await _upload(parts, owner)
    ready = await parts.files.get(owner_id=owner, file_id=str(file_id))
    await parts.files.rename(owner_id=owner, file_id=str(file_id), name="b.txt")
    renamed = await parts.files.get(owner_id=owner, file_id=str(file_id))
    await parts.files.delete(owner_id=owner, file_id=str(file_id))

    rows = await outbox_rows(parts)
    assert [r.type for r in rows] == ["file.ready", "file.renamed", "file.deleted"]
    assert {r.resource_id for r in rows} == {file_id}
    assert {r.subject for r in rows} == {"auth0|Alice"}
    api = [FileRead.model_validate(f).model_dump(mode="json") for f in (ready, renamed)]
    assert json.loads(rows[0].data) == api[0]
    assert json.loads(rows[1].data)["name"] == "b.txt"
    assert json.loads(rows[2].data) == api[1]


async def test_a_failed_upload_writes_no_event(parts: Parts) -> None:
    owner = await make_owner(parts)
    with pytest.raises(PayloadTooLarge):
        await parts.files.upload(
            owner_id=owner, name="big", content_type=None, data=_chunks(b"x" * 200), max_bytes=100
        )
    assert await outbox_rows(parts) == []


async def test_a_multipart_request_that_fails_part_way_takes_its_events_back(
    parts: Parts,
) -> None:
    owner = await make_owner(parts)

    async def files() -> AsyncIterator[NewFile]:
        yield NewFile(name="one", content_type=None, data=_chunks(b"1"))
        yield NewFile(name="two", content_type=None, data=_chunks(b"2" * 200))

    with pytest.raises(PayloadTooLarge):
        await parts.files.upload_many(owner_id=owner, files=files(), max_bytes=100)
    assert await outbox_rows(parts) == []


async def test_an_undone_file_already_handed_to_receivers_is_told_as_deleted(
    parts: Parts,
) -> None:
    owner = await make_owner(parts)
    row = await parts.files.upload(
        owner_id=owner, name="a.txt", content_type=None, data=_chunks(b"hello"), max_bytes=100
    )
    async with parts.sessions() as session:
        # As the dispatcher does once receivers have the event.
        await session.execute(update(WebhookEvent).values(fanned_out=True))
        await session.commit()
    await parts.files.discard([row])
    assert [r.type for r in await outbox_rows(parts)] == ["file.ready", "file.deleted"]


async def test_a_rolled_back_change_leaves_no_event(parts: Parts) -> None:
    owner = await make_owner(parts)
    async with parts.sessions() as session:
        await outbox.record(
            session,
            type=EventType.FILE_READY,
            resource_id=uuid.uuid4(),
            owner_id=owner,
            data={"id": "x"},
        )
        await session.rollback()
    assert await outbox_rows(parts) == []


async def test_purging_an_owner_tells_each_file_as_deleted(parts: Parts) -> None:
    owner = await make_owner(parts)
    ids = {await _upload(parts, owner, name) for name in ("a", "b")}
    await parts.files.purge_owner(owner)
    deleted = [r for r in await outbox_rows(parts) if r.type == "file.deleted"]
    assert {r.resource_id for r in deleted} == ids


async def test_a_finished_tus_upload_and_an_expired_one_write_their_events(
    parts: Parts,
) -> None:
    assert parts.uploads is not None
    owner = await make_owner(parts, subject="auth0|Bob")
    done = await parts.uploads.create(
        owner_id=owner,
        length=5,
        metadata=None,
        filename="t.txt",
        filetype=None,
        body=_chunks(b"hello"),
        declared=5,
    )
    assert done.done
    left = await parts.uploads.create(
        owner_id=owner, length=10, metadata=None, filename="late.txt", filetype=None
    )
    async with parts.sessions() as session:
        await session.execute(
            update(Upload)
            .where(Upload.id == left.id)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
        await session.commit()
    assert await parts.uploads.reclaim(older_than=utcnow()) == 1

    rows = await outbox_rows(parts)
    assert [(r.type, r.resource_id) for r in rows] == [
        ("file.ready", done.id),
        ("upload.expired", left.id),
    ]
    assert {r.subject for r in rows} == {"auth0|Bob"}
    ready = await parts.files.get(owner_id=owner, file_id=str(done.id))
    assert json.loads(rows[0].data) == FileRead.model_validate(ready).model_dump(mode="json")
    expired = json.loads(rows[1].data)
    assert (expired["id"], expired["name"], expired["size"], expired["offset"]) == (
        str(left.id),
        "late.txt",
        10,
        0,
    )


async def test_events_keep_the_subject_of_an_owner_deleted_since(parts: Parts) -> None:
    owner = await make_owner(parts, subject="auth0|Gone")
    await _upload(parts, owner)
    async with parts.sessions() as session:
        await session.delete(await session.get_one(User, owner))
        await session.commit()
    assert [r.subject for r in await outbox_rows(parts)] == ["auth0|Gone"]


@pytest.mark.parametrize("kind", KINDS)
async def test_without_a_receiver_no_event_is_written_until_an_endpoint_is_registered(
    kind: Kind, tmp_path: Path
) -> None:
    """No SEAU_WEBHOOK_URL: an event is kept only while an endpoint exists, decided
    in the statement that writes it, and the dispatcher is woken only for one kept."""
    async with open_test_parts(kind, tmp_path, receiver=False) as parts:
        woken: list[None] = []
        files = FileService(
            sessions=parts.sessions, store=parts.store, on_event=lambda: woken.append(None)
        )
        owner = await make_owner(parts)
        first = await files.upload(
            owner_id=owner, name="a", content_type=None, data=_chunks(b"a"), max_bytes=10
        )
        await files.rename(owner_id=owner, file_id=str(first.id), name="b")
        assert await outbox_rows(parts) == []
        assert woken == []

        added = await parts.webhooks.add(url="http://127.0.0.1:9/hook", types=frozenset(EventType))
        second = await files.upload(
            owner_id=owner, name="c", content_type=None, data=_chunks(b"c"), max_bytes=10
        )
        await files.delete(owner_id=owner, file_id=str(first.id))
        rows = await outbox_rows(parts)
        assert [(r.type, r.resource_id) for r in rows] == [
            ("file.ready", second.id),
            ("file.deleted", first.id),
        ]
        assert len(woken) == 2

        await parts.webhooks.remove(added.id)
        await files.delete(owner_id=owner, file_id=str(second.id))
        assert len(await outbox_rows(parts)) == 2
        assert len(woken) == 2


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("mysql", marks=pytest.mark.mysql),
        pytest.param("postgresql", marks=pytest.mark.postgresql),
    ],
)
async def test_a_change_writes_its_event_while_a_dispatcher_holds_its_claim(
    kind: Kind, tmp_path: Path
) -> None:
    """The dispatcher's claim of new events (`FOR UPDATE SKIP LOCKED`) locks rows,
    not the gaps between them: under MariaDB's default REPEATABLE READ it also
    locked where the next event would go, so every upload waited on it, and two
    uploads and a claim closed deadlock cycles (1 upload in 200 answered 503)."""
    async with open_test_parts(kind, tmp_path, receiver=True) as parts:
        owner = await make_owner(parts)
        await _upload(parts, owner, "claimed.txt")
        async with parts.sessions() as claim:
            claimed = await claim.scalars(
                select(WebhookEvent.id)
                .where(WebhookEvent.fanned_out == false())
                .order_by(WebhookEvent.created_at)
                .limit(100)
                .with_for_update(skip_locked=True)
            )
            assert len(claimed.all()) == 1
            # The claim's transaction is still open while another change commits.
            await asyncio.wait_for(_upload(parts, owner, "next.txt"), timeout=5)
            await claim.rollback()
        assert [r.type for r in await outbox_rows(parts)] == ["file.ready", "file.ready"]
