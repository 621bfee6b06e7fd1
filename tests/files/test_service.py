"""`FileService.upload_many`: a request with several files keeps all of them or none."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from seau.db.models import UserFile
from seau.errors import PayloadTooLarge, TooManyFiles
from seau.files.keys import FILES_PREFIX
from seau.files.service import NewFile
from seau.settings import Settings
from seau.storage import StorageUnavailable
from seau.wiring import Parts, open_parts


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    settings = Settings(data_dir=tmp_path, storage_url="memory://", secret_key="k" * 40)
    async with open_parts(settings, migrate=True) as opened:
        yield opened


@pytest.fixture
async def owner(parts: Parts) -> uuid.UUID:
    user = await parts.auth.create_user(email="owner@example.com", password="a long password")
    return user.id


async def _chunks(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def _file(name: str, *chunks: bytes, content_type: str | None = None) -> NewFile:
    return NewFile(name=name, content_type=content_type, data=_chunks(*chunks))


async def _stored(parts: Parts) -> tuple[list[str], list[UserFile]]:
    keys = [info.key async for info in parts.store.list(FILES_PREFIX)]
    async with parts.sessions() as session:
        rows = list(await session.scalars(select(UserFile)))
    return keys, rows


async def test_upload_many_stores_every_file_in_order(parts: Parts, owner: uuid.UUID) -> None:
    async def files() -> AsyncIterator[NewFile]:
        yield _file("a.txt", b"first")
        yield _file("dir/b.bin", b"sec", b"ond", content_type="image/png; x=y")

    rows = await parts.files.upload_many(owner_id=owner, files=files(), max_bytes=100)

    # The stored type is the bytes'; the declared one is the claim, else the name's guess.
    assert [(r.name, r.size, r.content_type, r.declared_type) for r in rows] == [
        ("a.txt", 5, "text/plain", "text/plain"),
        ("b.bin", 6, "text/plain", "image/png"),
    ]
    keys, stored = await _stored(parts)
    assert sorted(keys) == sorted(r.object_key for r in rows)
    assert {r.id for r in stored} == {r.id for r in rows}


async def test_a_failing_file_discards_the_files_before_it(parts: Parts, owner: uuid.UUID) -> None:
    closed = False

    async def files() -> AsyncIterator[NewFile]:
        nonlocal closed
        try:
            yield _file("kept-for-a-moment.txt", b"fine")
            yield _file("big.bin", b"x" * 101)
            yield _file("never-reached.txt", b"x")
        finally:
            closed = True

    with pytest.raises(PayloadTooLarge):
        await parts.files.upload_many(owner_id=owner, files=files(), max_bytes=100)

    assert await _stored(parts) == ([], [])
    # Closed by the service while the request lives, not later by the garbage collector.
    assert closed


async def test_a_source_refusing_the_request_part_way_discards_what_it_gave(
    parts: Parts, owner: uuid.UUID
) -> None:
    async def files() -> AsyncIterator[NewFile]:
        yield _file("one.txt", b"1")
        yield _file("two.txt", b"2")
        raise TooManyFiles("at most 2 files per request")

    with pytest.raises(TooManyFiles):
        await parts.files.upload_many(owner_id=owner, files=files(), max_bytes=100)

    assert await _stored(parts) == ([], [])


async def test_no_files_stores_nothing_and_answers_an_empty_list(
    parts: Parts, owner: uuid.UUID
) -> None:
    async def files() -> AsyncIterator[NewFile]:
        return
        yield  # pragma: no cover  (makes this an async generator)

    assert await parts.files.upload_many(owner_id=owner, files=files(), max_bytes=100) == []
    assert await _stored(parts) == ([], [])


async def test_purge_owner_removes_rows_and_objects_of_that_owner_only(
    parts: Parts, owner: uuid.UUID
) -> None:
    other = (await parts.auth.create_user(email="other@example.com", password="another one")).id

    async def files(*names: str) -> AsyncIterator[NewFile]:
        for name in names:
            yield _file(name, name.encode())

    await parts.files.upload_many(owner_id=owner, files=files("a", "bb"), max_bytes=100)
    kept = await parts.files.upload_many(owner_id=other, files=files("c"), max_bytes=100)

    purged = await parts.files.purge_owner(owner)

    assert (purged.files, purged.bytes) == (2, 3)
    keys, rows = await _stored(parts)
    assert keys == [kept[0].object_key]
    assert [r.owner_id for r in rows] == [other]


async def test_purge_owner_keeps_the_rows_when_the_store_fails(
    parts: Parts, owner: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def files() -> AsyncIterator[NewFile]:
        yield _file("a", b"a")
        yield _file("b", b"b")

    await parts.files.upload_many(owner_id=owner, files=files(), max_bytes=100)
    real_delete = parts.store.delete
    calls = 0

    async def failing_second_delete(key: str) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise StorageUnavailable("the store went away")
        await real_delete(key)

    monkeypatch.setattr(parts.store, "delete", failing_second_delete)
    with pytest.raises(StorageUnavailable):
        await parts.files.purge_owner(owner)

    # Every object left is still named by a row, so running it again finishes.
    keys, rows = await _stored(parts)
    assert len(rows) == 2
    assert set(keys) <= {r.object_key for r in rows}
    monkeypatch.setattr(parts.store, "delete", real_delete)
    assert (await parts.files.purge_owner(owner)).files == 2
    assert await _stored(parts) == ([], [])
