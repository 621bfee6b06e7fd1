"""`seau.wiring`: one set of parts from one `Settings`, for the server and the CLI alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from seau.settings import Settings
from seau.wiring import open_parts
from tests.support.threads import ThreadCalls

SECRET = "k" * 40


async def _bytes(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_a_relative_file_url_is_a_directory_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", storage_url="file:objects", secret_key=SECRET)
    async with open_parts(settings, migrate=True) as parts:
        await parts.store.put("files/ab/cd", _bytes(b"here"))
        assert parts.staging is not None
        assert parts.uploads is not None
    assert (tmp_path / "data" / "objects" / "files" / "ab" / "cd").read_bytes() == b"here"


async def test_a_store_without_staging_has_no_resumable_uploads(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, storage_url="memory://", secret_key=SECRET)
    async with open_parts(settings, migrate=True) as parts:
        assert parts.staging is None
        assert parts.uploads is None
        report = await parts.collect_garbage()
    assert report.extra == {
        "expired_uploads": 0,
        "stale_reservations": 0,
        "old_idempotency_keys": 0,
        "expired_direct_uploads": 0,
    }
    assert report.errors == []


async def test_an_unusable_storage_url_fails_before_anything_is_yielded(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, storage_url="s3://", secret_key=SECRET)
    with pytest.raises(ValueError, match="names no bucket"):
        async with open_parts(settings):
            pytest.fail("no parts for an unusable store")


@pytest.mark.parametrize(("on_loop", "trips"), [(None, 0), (0, 1)])
async def test_small_local_reads_leave_the_event_loop_only_when_set_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, on_loop: int | None, trips: int
) -> None:
    if on_loop is not None:
        monkeypatch.setenv("SEAU_LOCAL_READ_ON_LOOP_BYTES", str(on_loop))
    settings = Settings(data_dir=tmp_path, secret_key=SECRET)
    async with open_parts(settings, migrate=True) as parts:
        await parts.store.put("files/ab/cd", _bytes(b"small"))
        calls = ThreadCalls(monkeypatch)
        stream = await parts.store.get("files/ab/cd")
        assert b"".join([piece async for piece in stream]) == b"small"
    assert calls.count == trips
