"""Object storage: a small protocol and its backends. Knows no HTTP and no SQL."""

from seau.storage.errors import InvalidKey, ObjectNotFound, StorageError, StorageUnavailable
from seau.storage.factory import open_store
from seau.storage.local import LocalFileStore
from seau.storage.memory import MemoryObjectStore
from seau.storage.protocol import ByteStream, ObjectInfo, Store, probe
from seau.storage.s3 import ObstoreS3Store, S3Options

__all__ = [
    "ByteStream",
    "InvalidKey",
    "LocalFileStore",
    "MemoryObjectStore",
    "ObjectInfo",
    "ObjectNotFound",
    "ObstoreS3Store",
    "S3Options",
    "StorageError",
    "StorageUnavailable",
    "Store",
    "open_store",
    "probe",
]
