"""The stores' direct-upload capabilities: what the S3 POST policy says (moto does not
enforce it, so the test reads it), checksums, parts, and refusals."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from seau.storage.direct import DirectTarget, PartsRejected
from seau.storage.errors import ObjectNotFound
from seau.storage.factory import S3Options, open_direct_uploads, open_store

MiB = 1024 * 1024
KEY = "files/ab/abcdef"


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture
async def s3(s3_server: object) -> AsyncIterator[tuple[object, str, str]]:
    from tests.support.moto import make_bucket

    endpoint: str = s3_server.endpoint_url  # type: ignore[attr-defined]
    bucket = make_bucket(endpoint)
    options = S3Options(
        bucket="",
        endpoint_url=endpoint,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
        path_style=True,
    )
    store = open_store(f"s3://{bucket}", s3=options)
    found = open_direct_uploads(store)
    assert found is not None
    target, signer = found
    assert signer is not None
    yield target, bucket, endpoint
    await target.close()
    await store.close()


async def test_the_s3_post_policy_fixes_key_type_size_and_checksum(
    s3: tuple[object, str, str],
) -> None:
    target, bucket, endpoint = s3
    digest = hashlib.sha256(b"x").hexdigest()
    post = await target.presign_post(  # type: ignore[attr-defined]
        KEY, content_type="image/png", size=1234, expires_in=timedelta(seconds=60), sha256=digest
    )
    assert post.url.startswith(endpoint)
    assert post.fields["key"] == KEY
    assert post.fields["Content-Type"] == "image/png"
    policy = json.loads(base64.b64decode(post.fields["policy"]))
    conditions = policy["conditions"]
    assert {"key": KEY} in conditions
    assert {"bucket": bucket} in conditions
    assert {"Content-Type": "image/png"} in conditions
    assert ["content-length-range", 1234, 1234] in conditions
    checksum = base64.b64encode(bytes.fromhex(digest)).decode()
    assert {"x-amz-checksum-sha256": checksum} in conditions
    assert post.fields["x-amz-checksum-sha256"] == checksum


async def test_s3_reports_a_full_object_sha256_it_verified(s3: tuple[object, str, str]) -> None:
    target, bucket, endpoint = s3
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    data = os.urandom(1000)
    client.put_object(Bucket=bucket, Key=KEY, Body=data, ChecksumAlgorithm="SHA256")
    assert await target.stored_sha256(KEY) == hashlib.sha256(data).hexdigest()  # type: ignore[attr-defined]
    client.put_object(Bucket=bucket, Key="files/ab/plain", Body=data)
    assert await target.stored_sha256("files/ab/plain") is None  # type: ignore[attr-defined]
    with pytest.raises(ObjectNotFound):
        await target.stored_sha256("files/ab/missing")  # type: ignore[attr-defined]


async def _parts_round_trip(target: DirectTarget) -> None:
    handle = await target.start_multipart(KEY, content_type="application/octet-stream")
    assert await target.list_parts(KEY, handle=handle) == []
    await target.abort_multipart(KEY, handle=handle)
    with pytest.raises(ObjectNotFound):
        await target.list_parts(KEY, handle=handle)
    # Aborting again is not an error.
    await target.abort_multipart(KEY, handle=handle)


async def test_s3_refuses_parts_it_does_not_hold(s3: tuple[object, str, str]) -> None:
    target = s3[0]
    assert isinstance(target, DirectTarget)
    await _parts_round_trip(target)
    handle = await target.start_multipart(KEY, content_type="application/octet-stream")
    with pytest.raises(PartsRejected):
        await target.complete_multipart(KEY, handle=handle, parts=[(1, '"' + "0" * 32 + '"')])
    await target.abort_multipart(KEY, handle=handle)


async def test_local_parts_are_listed_replaced_joined_and_refused(tmp_path: Path) -> None:
    store = open_store(tmp_path.as_uri())
    found = open_direct_uploads(store)
    assert found is not None
    target, signer = found
    assert signer is None
    await _parts_round_trip(target)
    handle = await target.start_multipart(KEY, content_type="application/octet-stream")
    write = target.write_part  # type: ignore[attr-defined]
    first = await write(KEY, handle=handle, number=1, data=_chunks(b"old"))
    first = await write(KEY, handle=handle, number=1, data=_chunks(b"a" * 10))
    second = await write(KEY, handle=handle, number=2, data=_chunks(b"b" * 5))
    assert first.etag == '"' + hashlib.md5(b"a" * 10).hexdigest() + '"'  # noqa: S324 (S3's ETag)
    listed = await target.list_parts(KEY, handle=handle)
    assert [(p.number, p.etag, p.size) for p in listed] == [
        (1, first.etag, 10),
        (2, second.etag, 5),
    ]
    with pytest.raises(PartsRejected):
        await target.complete_multipart(KEY, handle=handle, parts=[(1, second.etag)])
    await target.complete_multipart(KEY, handle=handle, parts=[(1, first.etag), (2, second.etag)])
    stream = await store.get(KEY)
    assert b"".join([chunk async for chunk in stream]) == b"a" * 10 + b"b" * 5
    assert not (tmp_path / ".tmp" / "direct" / handle).exists()
    with pytest.raises(ObjectNotFound):
        await write(KEY, handle=handle, number=3, data=_chunks(b"late"))


async def test_s3_presigns_with_signature_version_4(s3: tuple[object, str, str]) -> None:
    # botocore presigns with Signature Version 2 unless told: regions opened since
    # 2014 refuse it, and it signs the Content-Type a browser adds to a part.
    target, _, _ = s3
    post = await target.presign_post(  # type: ignore[attr-defined]
        KEY, content_type="image/png", size=10, expires_in=timedelta(seconds=60), sha256=None
    )
    assert post.fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    assert "AWSAccessKeyId" not in post.fields
    handle = await target.start_multipart(KEY, content_type="image/png")  # type: ignore[attr-defined]
    url = await target.presign_part(  # type: ignore[attr-defined]
        KEY, handle=handle, number=1, expires_in=timedelta(seconds=60)
    )
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert "AWSAccessKeyId" not in query
    await target.abort_multipart(KEY, handle=handle)  # type: ignore[attr-defined]
