"""The one place that names concrete stores: a storage URL becomes a store, and a
store its optional capabilities (tusd's composer). Everything else in seau talks
to the `Store` and `UploadStaging` protocols.

`S3Options` and `part_size_for` are re-exported for the wiring, which configures
S3 without importing the S3 store itself.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from urllib.parse import unquote, urlsplit

from seau.storage.direct import DirectTarget, UploadSigner
from seau.storage.local import READ_ON_LOOP_BYTES, LocalFileStore
from seau.storage.local_direct import LocalDirectUploads
from seau.storage.local_staging import LocalUploadStaging
from seau.storage.memory import MemoryObjectStore
from seau.storage.protocol import DownloadLinks, Store
from seau.storage.s3 import ObstoreS3Store, S3Options, part_size_for
from seau.storage.s3_direct import S3DirectUploads
from seau.storage.s3_links import S3DownloadLinks
from seau.storage.s3_staging import S3UploadStaging
from seau.storage.staging import UploadStaging

__all__ = [
    "S3Options",
    "open_direct_uploads",
    "open_download_links",
    "open_staging",
    "open_store",
    "part_size_for",
]

_SUPPORTED = "file:///ABSOLUTE/PATH, a plain path, s3://BUCKET[/PREFIX] or memory://"


def open_store(
    url: str,
    *,
    s3: S3Options | None = None,
    data_dir: Path | None = None,
    read_on_loop_bytes: int = READ_ON_LOOP_BYTES,
) -> Store:
    """Build the store ``url`` names. Nothing is read or written until first use.

    - ``file:///abs/path`` or a plain path: a `LocalFileStore`. A relative path
      (plain, ``file:relative`` or ``file://relative/path``) is taken relative to
      ``data_dir``, and is an error without one. ``read_on_loop_bytes`` goes to
      its constructor.
    - ``s3://BUCKET[/PREFIX]``: an `ObstoreS3Store`; bucket and prefix come from the
      URL, everything else (endpoint, credentials, timeouts) from ``s3``.
    - ``memory://``: a `MemoryObjectStore`, for tests.
    """
    if not url.strip():
        raise ValueError(f"storage URL is empty; expected {_SUPPORTED}")
    if "://" not in url and not url.startswith("file:"):
        return LocalFileStore(
            _local_path(url, data_dir=data_dir, url=url), read_on_loop_bytes=read_on_loop_bytes
        )
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ValueError(f"storage URL {url!r} must not have a query or fragment")
    scheme = parts.scheme.lower()
    if scheme == "file":
        # RFC 8089 allows "localhost" as the host of a local absolute path.
        host = "" if parts.netloc.lower() == "localhost" else parts.netloc
        path = unquote(host + parts.path)
        return LocalFileStore(
            _local_path(path, data_dir=data_dir, url=url), read_on_loop_bytes=read_on_loop_bytes
        )
    if scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"storage URL {url!r} names no bucket; expected s3://BUCKET[/PREFIX]")
        bucket, prefix = parts.netloc, unquote(parts.path).strip("/")
        options = (
            S3Options(bucket=bucket, prefix=prefix)
            if s3 is None
            else dataclasses.replace(s3, bucket=bucket, prefix=prefix)
        )
        return ObstoreS3Store(options)
    if scheme == "memory":
        if parts.netloc or parts.path.strip("/"):
            raise ValueError(f"storage URL {url!r}: memory:// takes no name or path")
        return MemoryObjectStore()
    raise ValueError(f"unsupported storage URL {url!r}; expected {_SUPPORTED}")


def open_staging(store: Store) -> UploadStaging | None:
    """The staging capability of ``store`` (what resumable uploads need), or None
    when it has none (the memory store). Detected once, when the server starts."""
    if isinstance(store, LocalFileStore):
        return LocalUploadStaging(store.directory)
    if isinstance(store, ObstoreS3Store):
        return S3UploadStaging(store.options)
    return None


def open_download_links(store: Store) -> DownloadLinks | None:
    """The capability of ``store`` to sign URLs that fetch objects straight from it
    (S3's presigned GETs), or None: seau then serves its download links itself."""
    if isinstance(store, ObstoreS3Store):
        return S3DownloadLinks(store.options)
    return None


def open_direct_uploads(store: Store) -> tuple[DirectTarget, UploadSigner | None] | None:
    """What direct uploads need of ``store``: its multipart target, and its signer
    when the store can take the bytes without seau (S3); None for a store without
    direct uploads (memory). Without a signer, seau signs URLs to its own routes."""
    if isinstance(store, LocalFileStore):
        return LocalDirectUploads(store.directory), None
    if isinstance(store, ObstoreS3Store):
        s3 = S3DirectUploads(store.options)
        return s3, s3
    return None


def _local_path(text: str, *, data_dir: Path | None, url: str) -> Path:
    if not text:
        raise ValueError(f"storage URL {url!r} names no directory")
    path = Path(text)
    if path.is_absolute():
        return path
    if data_dir is None:
        raise ValueError(f"storage URL {url!r} is a relative path and no data directory is set")
    return data_dir / path
