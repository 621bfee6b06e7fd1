"""The byte meter shared by plain and resumable uploads, as tus sets it up."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from unittest.mock import sentinel

import pytest

from seau.errors import PayloadTooLarge
from seau.files.meter import ByteMeter
from seau.uploads.body import checksum_fails, metered
from seau.uploads.errors import BodyInterrupted, UploadLocked, UploadTooLarge
from seau.uploads.lease import Lease
from seau.uploads.tus import Checksum


async def chunks(*parts: bytes, then: Exception | None = None) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
    if then is not None:
        raise then


async def drain(meter: ByteMeter) -> bytes:
    return b"".join([chunk async for chunk in meter])


def lease() -> Lease:
    return Lease(
        sessions=sentinel.sessions,
        db_timeout=1.0,
        upload_id=uuid.uuid4(),
        token="t",
        duration=timedelta(seconds=30),
    )


def checksum(data: bytes) -> Checksum:
    return Checksum(algorithm="sha256", digest=hashlib.sha256(data).digest())


async def test_plain_meter_counts_hashes_and_stops_at_the_limit() -> None:
    meter = ByteMeter(chunks(b"abc", b"de"), limit=5, sha256=hashlib.sha256())
    assert await drain(meter) == b"abcde"
    assert meter.size == 5
    assert meter.sha256 is not None
    assert meter.sha256.hexdigest() == hashlib.sha256(b"abcde").hexdigest()

    over = ByteMeter(chunks(b"abc", b"def"), limit=5, sha256=hashlib.sha256())
    with pytest.raises(PayloadTooLarge, match="limit of 5 bytes"):
        await drain(over)


async def test_tus_body_continues_the_hash_and_checks_the_checksum() -> None:
    state = hashlib.sha256(b"head-")
    body = metered(
        chunks(b"tail"), room=10, lease=lease(), offset=5, checksum=checksum(b"tail"), sha256=state
    )
    assert await drain(body) == b"tail"
    assert body.sha256 is not None
    assert body.sha256.hexdigest() == hashlib.sha256(b"head-tail").hexdigest()
    assert not checksum_fails(body, checksum(b"tail"))
    assert checksum_fails(body, checksum(b"other"))


async def test_tus_body_beyond_the_room_is_413_naming_the_room() -> None:
    body = metered(
        chunks(b"12345", b"6"), room=5, lease=lease(), offset=0, checksum=None, sha256=None
    )
    with pytest.raises(UploadTooLarge, match="5 bytes left"):
        await drain(body)


async def test_tus_body_stops_once_the_lease_is_lost() -> None:
    held = lease()
    body = metered(chunks(b"a", b"b"), room=10, lease=held, offset=7, checksum=None, sha256=None)
    iterator = aiter(body)
    assert await anext(iterator) == b"a"
    held.lost = True
    with pytest.raises(UploadLocked) as raised:
        await anext(iterator)
    assert raised.value.offset == 7


async def test_interrupted_tus_body_keeps_what_came_but_fails_its_checksum() -> None:
    body = metered(
        chunks(b"abc", then=BodyInterrupted("gone")),
        room=10,
        lease=lease(),
        offset=0,
        checksum=checksum(b"abc"),
        sha256=hashlib.sha256(),
    )
    assert await drain(body) == b"abc"
    assert body.interrupted
    assert checksum_fails(body, checksum(b"abc"))
    assert not checksum_fails(body, None)
