"""How the obstore-backed stores use obstore: uploads coalesced."""

from __future__ import annotations

import pytest

from seau.storage._obstore import _coalesce
from tests.storage.helpers import chunks, pattern


@pytest.mark.parametrize(
    ("size", "piece"),
    [
        (0, 4),
        (7, 100),  # one short piece
        (10, 10),  # exactly one piece
        (25, 3),  # chunks straddle boundaries
        (25, 10),  # chunks end on boundaries
        (40, 35),  # a chunk larger than a piece
        (33, 1),
    ],
)
async def test_coalesce_are_exactly_the_part_size_but_the_last(size: int, piece: int) -> None:
    data = pattern(size)
    pieces = [data[i : i + piece] for i in range(0, size, piece)]
    head, rest = pieces[:2], pieces[2:]
    pieces = [bytes(p) async for p in _coalesce(head, chunks(*rest), size=10)]
    assert b"".join(pieces) == data
    assert all(len(p) == 10 for p in pieces[:-1])
    assert pieces == [] or 0 < len(pieces[-1]) <= 10
