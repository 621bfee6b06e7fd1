"""S3 and S3-compatible servers (MinIO, Garage, Ceph, R2, moto) through obstore."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from obstore.exceptions import BaseError
from obstore.store import S3Store

from seau.storage._obstore import MiB, ObstoreStore

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig, S3Config

# S3 allows at most 10,000 parts, so 8 MiB parts cap an object at ~78 GiB while
# two parts in flight keep an upload's buffers near 25 MiB (measured: a 512 MiB
# upload grew the process by ~20 MiB).
DEFAULT_PART_SIZE = 8 * MiB
# S3's limits on multipart uploads.
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * 1024 * MiB
MAX_PARTS = 10_000
DEFAULT_UPLOAD_CONCURRENCY = 2

# A download streams one response for as long as the HTTP client takes to read
# it, so a whole-request deadline would cut slow clients off mid-file; stalls
# are caught by the per-read timeout instead, and this only stops a transfer
# that is making progress but never ends.
_WHOLE_REQUEST_TIMEOUT = timedelta(hours=12)


@dataclass(frozen=True, slots=True, kw_only=True)
class S3Options:
    """Where the bucket is and how to reach it.

    Unset credentials and region fall back to the standard ``AWS_*`` environment
    variables (obstore reads them).
    """

    bucket: str
    prefix: str = ""
    """Namespace for every key inside the bucket, without leading or trailing ``/``."""
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    path_style: bool = False
    """``http://host/bucket/key``, not ``http://bucket.host/key``: most self-hosted servers."""
    timeout_seconds: float = 30
    """How long a response may stall with no bytes arriving before the request is retried."""
    connect_timeout_seconds: float = 5
    part_size: int = DEFAULT_PART_SIZE
    """Multipart part size for uploads: the buffers of one upload are about three
    parts, and 10,000 parts must reach the largest object."""


class ObstoreS3Store(ObstoreStore):
    """A `Store` on one bucket (and optional prefix) of an S3-compatible server."""

    def __init__(
        self,
        options: S3Options,
        *,
        upload_concurrency: int = DEFAULT_UPLOAD_CONCURRENCY,
        read_chunk_size: int = MiB,
    ) -> None:
        if not options.bucket:
            raise ValueError("S3 bucket name is empty")
        try:
            store = S3Store(
                options.bucket,
                prefix=options.prefix.strip("/") or None,
                config=_s3_config(options),
                client_options=_client_options(options),
                retry_config=_retry(options),
            )
        except BaseError as exc:
            raise ValueError(f"invalid S3 configuration: {exc}") from None
        super().__init__(
            store,
            part_size=options.part_size,
            max_concurrency=upload_concurrency,
            read_chunk_size=read_chunk_size,
            secrets=(options.secret_access_key or "", options.session_token or ""),
        )
        self._options = options

    @property
    def options(self) -> S3Options:
        return self._options


def _retry(options: S3Options) -> RetryConfig:
    """A few quick retries ride out a server restart or a dropped connection; the
    bounded total keeps a dead server a prompt StorageUnavailable (measured: a
    refused connection fails in ~0.4 s) instead of obstore's default of 3 minutes.

    No retry starts once the storage timeout has gone by: a stalled server
    costs one timeout per operation, not one per attempt (measured with a 3 s
    timeout: an upload to a stalled server answered 503 after 28 s, not 10 s).
    """
    return {
        "max_retries": 3,
        "retry_timeout": timedelta(seconds=min(10.0, options.timeout_seconds)),
        "backoff": {
            "init_backoff": timedelta(milliseconds=100),
            "max_backoff": timedelta(seconds=2),
            "base": 2,
        },
    }


def _s3_config(options: S3Options) -> S3Config:
    config: S3Config = {
        "virtual_hosted_style_request": not options.path_style,
        # Signing a body means hashing it (SHA-256, on obstore's threads: measured
        # ~0.8 CPU-seconds per GiB uploaded). TLS already protects the body, which
        # is why AWS's own SDKs send UNSIGNED-PAYLOAD over HTTPS; plain HTTP keeps
        # the signature as the only integrity check.
        "unsigned_payload": _uses_tls(options),
    }
    if options.endpoint_url:
        config["endpoint"] = options.endpoint_url
    if options.region:
        config["region"] = options.region
    if options.access_key_id:
        config["access_key_id"] = options.access_key_id
    if options.secret_access_key:
        config["secret_access_key"] = options.secret_access_key
    if options.session_token:
        config["session_token"] = options.session_token
    return config


def _client_options(options: S3Options) -> ClientConfig:
    client: ClientConfig = {
        "connect_timeout": timedelta(seconds=options.connect_timeout_seconds),
        "read_timeout": timedelta(seconds=options.timeout_seconds),
        "timeout": max(_WHOLE_REQUEST_TIMEOUT, timedelta(seconds=options.timeout_seconds)),
    }
    if not _uses_tls(options):
        client["allow_http"] = True
    return client


def _uses_tls(options: S3Options) -> bool:
    """Whether requests go over HTTPS: AWS itself (no endpoint) or an ``https://`` one."""
    return not (options.endpoint_url and options.endpoint_url.lower().startswith("http://"))


def part_size_for(max_size: int, configured: int | None = None) -> int:
    """The S3 part size: ``configured``, or the smallest whole MiB of at least
    5 MiB with which 10,000 parts reach ``max_size``."""
    if configured is not None:
        if not MIN_PART_SIZE <= configured <= MAX_PART_SIZE:
            raise ValueError("the part size must be between 5 MiB and 5 GiB")
        if configured * MAX_PARTS < max_size:
            raise ValueError(f"{MAX_PARTS} parts of {configured} bytes cannot reach {max_size}")
        return configured
    needed = -(-max_size // MAX_PARTS)
    return max(MIN_PART_SIZE, -(-needed // MiB) * MiB)
