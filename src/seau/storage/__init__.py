"""Object storage: a small protocol and its backends. Knows no HTTP and no SQL."""

from seau.storage.errors import InvalidKey, ObjectNotFound, StorageError, StorageUnavailable
from seau.storage.protocol import ByteStream, ObjectInfo, Store

__all__ = [
    "ByteStream",
    "InvalidKey",
    "ObjectInfo",
    "ObjectNotFound",
    "Store",
    "StorageError",
    "StorageUnavailable",
]
