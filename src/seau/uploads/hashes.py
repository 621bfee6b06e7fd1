"""SHA-256 of a resumable upload, carried across its requests in this process."""

from __future__ import annotations

import hashlib
import uuid
from collections import OrderedDict
from typing import TYPE_CHECKING

from seau.storage import Store

if TYPE_CHECKING:
    from hashlib import _Hash


class HashCache:
    """SHA-256 states of uploads whose every byte so far passed through this
    process, keyed by upload and offset. Only an optimization: a miss (another
    instance took a request, a restart) means reading the object back once at
    completion. Recorded bytes never change, so a state at a given offset stays right.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._states: OrderedDict[uuid.UUID, tuple[int, _Hash]] = OrderedDict()

    def get(self, upload_id: uuid.UUID, offset: int) -> _Hash | None:
        """A copy to continue from ``offset``; the kept state stays for a retry."""
        if offset == 0:
            return hashlib.sha256()
        found = self._states.get(upload_id)
        if found is None or found[0] != offset:
            return None
        return found[1].copy()

    def keep(self, upload_id: uuid.UUID, offset: int, state: _Hash) -> None:
        self._states[upload_id] = (offset, state)
        self._states.move_to_end(upload_id)
        while len(self._states) > self._capacity:
            self._states.popitem(last=False)

    def pop(self, upload_id: uuid.UUID, offset: int) -> _Hash | None:
        found = self._states.pop(upload_id, None)
        if found is None or found[0] != offset:
            return None
        return found[1]


async def read_back(store: Store, key: str) -> str:
    """SHA-256 of a stored object, read back once: the price of an upload whose
    bytes did not all pass through this process (see docs/decisions.md).
    Raises `StorageUnavailable`."""
    digest = hashlib.sha256()
    stream = await store.get(key)
    try:
        async for chunk in stream:
            digest.update(chunk)
    finally:
        await stream.aclose()
    return digest.hexdigest()
