"""Presigned GET URLs on S3: the download-link capability of the S3 store.

obstore signs URLs too (`obstore.sign`), but only for a bare path: S3's signature
covers every query parameter, so the ``response-content-disposition`` and
``response-content-type`` overrides a safe download needs cannot be added to its
URL afterwards. botocore, already seau's SDK for resumable uploads, signs them.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from datetime import timedelta
from typing import Any

from seau.storage.errors import StorageUnavailable
from seau.storage.keys import validate_key
from seau.storage.s3 import S3Options

# S3 refuses a presigned URL valid for longer than seven days.
MAX_EXPIRY = timedelta(days=7)


@functools.cache
def _botocore() -> Any:
    """botocore, imported when the first link is signed (it is 10+ MiB resident)."""
    import botocore.session
    from botocore.config import Config

    return botocore.session, Config


class S3DownloadLinks:
    """`DownloadLinks` on one bucket (and prefix) of an S3-compatible server."""

    def __init__(self, options: S3Options) -> None:
        if not options.bucket:
            raise ValueError("S3 bucket name is empty")
        self._options = options
        self._prefix = options.prefix.strip("/")
        # A botocore client (untyped), made on first use: signing needs no network,
        # but finding credentials that are not configured (instance roles) may.
        self._client: Any = None
        self._lock = threading.Lock()

    async def presign_get(
        self,
        key: str,
        *,
        expires_in: timedelta,
        content_type: str,
        content_disposition: str,
    ) -> str | None:
        validate_key(key)
        if not timedelta(seconds=1) <= expires_in <= MAX_EXPIRY:
            raise ValueError("a presigned URL lasts between 1 second and 7 days")
        full = f"{self._prefix}/{key}" if self._prefix else key
        try:
            return await asyncio.to_thread(
                self._sign, full, int(expires_in.total_seconds()), content_type, content_disposition
            )
        except _NoCredentials:
            return None

    def _sign(self, key: str, expires_in: int, content_type: str, disposition: str) -> str:
        client = self._connect()
        try:
            url: str = client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self._options.bucket,
                    "Key": key,
                    "ResponseContentType": content_type,
                    "ResponseContentDisposition": disposition,
                },
                ExpiresIn=expires_in,
                HttpMethod="GET",
            )
        except Exception as exc:
            if type(exc).__name__ == "NoCredentialsError":
                raise _NoCredentials from None
            raise StorageUnavailable(f"signing a link to {key!r} failed: {exc}") from None
        return url

    def _connect(self) -> Any:
        with self._lock:
            if self._client is None:
                session_module, config = _botocore()
                options = self._options
                self._client = session_module.get_session().create_client(
                    "s3",
                    endpoint_url=options.endpoint_url,
                    region_name=options.region or "us-east-1",
                    aws_access_key_id=options.access_key_id,
                    aws_secret_access_key=options.secret_access_key,
                    aws_session_token=options.session_token,
                    config=config(
                        signature_version="s3v4",
                        s3={"addressing_style": "path" if options.path_style else "virtual"},
                    ),
                )
            return self._client


class _NoCredentials(Exception):
    """No credentials to sign with: the caller serves the link itself."""
