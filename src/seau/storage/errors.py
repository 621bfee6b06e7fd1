"""Storage-level exceptions. No SDK exception escapes the `storage` package."""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every error raised by a store."""


class ObjectNotFound(StorageError):
    """The key does not name an object in the store."""

    def __init__(self, key: str) -> None:
        super().__init__(f"object not found: {key}")
        self.key = key


class StorageUnavailable(StorageError):
    """The store could not be reached or failed in a way a retry may fix."""


class InvalidKey(StorageError):
    """The key is not one the store accepts (empty, absolute, `..`, outside the root)."""


class StagingLost(StorageError):
    """The staging data of an upload is gone or shorter than recorded; it cannot continue."""
