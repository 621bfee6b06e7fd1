"""A narrow aiobotocore client for the S3 verbs obstore does not offer.

obstore cannot list or abort multipart uploads, nor upload parts across
requests. Only this package talks to it; no botocore exception escapes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from seau.storage.errors import StorageUnavailable
from seau.storage.s3 import S3Options


@asynccontextmanager
async def s3_client(options: S3Options) -> AsyncIterator[Any]:
    """An aiobotocore S3 client configured like the obstore store."""
    config = AioConfig(
        s3={"addressing_style": "path" if options.path_style else "virtual"},
        connect_timeout=options.connect_timeout_seconds,
        read_timeout=options.timeout_seconds,
        retries={"max_attempts": 3, "mode": "standard"},
    )
    session = get_session()
    async with session.create_client(
        "s3",
        endpoint_url=options.endpoint_url,
        region_name=options.region,
        aws_access_key_id=options.access_key_id,
        aws_secret_access_key=options.secret_access_key,
        aws_session_token=options.session_token,
        config=config,
    ) as client:
        yield client


def full_key(options: S3Options, key: str) -> str:
    prefix = options.prefix.strip("/")
    return f"{prefix}/{key}" if prefix else key


def stale_uploads(
    uploads: list[dict[str, Any]], initiated_before: datetime
) -> list[dict[str, Any]]:
    """The listed multipart uploads started before the cutoff."""
    return [u for u in uploads if u["Initiated"] < initiated_before]


async def abort_stale_multipart_uploads(
    options: S3Options, *, initiated_before: datetime, key_prefix: str = ""
) -> int:
    """Abort incomplete multipart uploads started before ``initiated_before``."""
    aborted = 0
    try:
        async with s3_client(options) as client:
            paginator = client.get_paginator("list_multipart_uploads")
            async for page in paginator.paginate(
                Bucket=options.bucket, Prefix=full_key(options, key_prefix)
            ):
                for upload in stale_uploads(page.get("Uploads", []), initiated_before):
                    try:
                        await client.abort_multipart_upload(
                            Bucket=options.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                    except ClientError as exc:
                        if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                            raise
                        continue  # another instance aborted it first
                    aborted += 1
    except (BotoCoreError, ClientError) as exc:
        raise StorageUnavailable(f"listing multipart uploads failed: {exc}") from None
    return aborted
