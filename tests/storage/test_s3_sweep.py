"""Stale multipart uploads (a crash mid-put) are aborted; recent ones are not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3

from seau.storage import ObstoreS3Store
from seau.storage.s3_client import stale_uploads
from tests.storage.conftest import s3_options
from tests.support.moto import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    MotoServer,
    make_bucket,
    pending_multipart_uploads,
)


def test_only_uploads_initiated_before_the_cutoff_are_stale() -> None:
    now = datetime.now(UTC)
    uploads = [
        {"Key": "old", "Initiated": now - timedelta(hours=2)},
        {"Key": "new", "Initiated": now - timedelta(minutes=5)},
    ]
    assert [u["Key"] for u in stale_uploads(uploads, now - timedelta(hours=1))] == ["old"]


async def test_sweep_aborts_incomplete_multipart_uploads(s3_server: MotoServer) -> None:
    # moto reports every upload as initiated in 2010, so only the abort path can
    # be exercised here; the cutoff itself is tested above.
    bucket = make_bucket(s3_server.endpoint_url)
    client = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )
    client.create_multipart_upload(Bucket=bucket, Key="files/ab/abandoned")
    client.create_multipart_upload(Bucket=bucket, Key="files/cd/abandoned-too")
    store = ObstoreS3Store(s3_options(s3_server.endpoint_url, bucket=bucket))
    try:
        assert len(pending_multipart_uploads(s3_server.endpoint_url, bucket)) == 2
        assert await store.sweep_temp_files(older_than=timedelta(0)) == 2
        assert pending_multipart_uploads(s3_server.endpoint_url, bucket) == []
        assert await store.sweep_temp_files(older_than=timedelta(0)) == 0
    finally:
        await store.close()
