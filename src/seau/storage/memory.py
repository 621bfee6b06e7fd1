"""An in-process store for unit tests: same semantics as S3, no server."""

from __future__ import annotations

from obstore.store import MemoryStore

from seau.storage._obstore import MiB, ObstoreStore


class MemoryObjectStore(ObstoreStore):
    """Objects live in this process and vanish with it. For tests only."""

    def __init__(self, *, read_chunk_size: int = MiB) -> None:
        super().__init__(
            MemoryStore(),
            part_size=5 * MiB,
            max_concurrency=2,
            read_chunk_size=read_chunk_size,
        )
