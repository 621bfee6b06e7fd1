"""Object storage: a small protocol and its backends. Knows no HTTP and no SQL.

The package exports the protocols and errors only; `seau.storage.factory` is the
one module that names the concrete stores and staging implementations.
"""

from seau.storage.errors import InvalidKey, ObjectNotFound, StorageError, StorageUnavailable
from seau.storage.protocol import ByteStream, DownloadLinks, ObjectInfo, Store, probe

__all__ = [
    "ByteStream",
    "DownloadLinks",
    "InvalidKey",
    "ObjectInfo",
    "ObjectNotFound",
    "StorageError",
    "StorageUnavailable",
    "Store",
    "probe",
]
