"""The ``Range`` request header (RFC 9110 section 14), for one byte range.

Ranges are half-open inside seau, as object stores take them; the inclusive HTTP form
appears only in `ByteRange.content_range`, at the edge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from seau.errors import RangeNotSatisfiable

__all__ = ["ByteRange", "parse_range"]

_TOKEN_RE: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# ASCII digits only: `\d` and int() would accept other scripts' digits. Twenty digits
# cover any real size and keep int() cheap on hostile input.
_SPEC_RE: Final = re.compile(r"([0-9]{0,20})-([0-9]{0,20})")


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``start`` up to, not including, ``end`` of a representation of ``size`` bytes."""

    start: int
    end: int
    size: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end <= self.size:
            raise ValueError(f"not a satisfiable range: {self.start}-{self.end} of {self.size}")

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def content_range(self) -> str:
        """The ``Content-Range`` header value, whose last position is inclusive."""
        return f"bytes {self.start}-{self.end - 1}/{self.size}"


def parse_range(header: str | None, *, size: int) -> ByteRange | None:
    """Return the range to serve, or None to serve the whole representation.

    None for no header and for a unit other than ``bytes`` (RFC 9110 says to ignore those).
    A malformed ``bytes`` range, several ranges, or a range outside ``size`` bytes raise
    `RangeNotSatisfiable`, which carries ``Content-Range: bytes */size``.
    """
    if header is None:
        return None
    value = header.strip(" \t")
    if not value:
        return None
    unit, equals, spec = value.partition("=")
    if not equals or _TOKEN_RE.fullmatch(unit) is None:
        raise RangeNotSatisfiable(size, "malformed Range header")
    if unit.lower() != "bytes":
        return None
    if "," in spec:
        raise RangeNotSatisfiable(size, "multiple ranges are not supported")
    match = _SPEC_RE.fullmatch(spec)
    if match is None or match.group(0) == "-":
        raise RangeNotSatisfiable(size, "malformed Range header")
    first, last = match.group(1, 2)
    if size <= 0:
        raise RangeNotSatisfiable(size, "the file is empty")
    if not first:
        suffix = int(last)
        if suffix == 0:
            raise RangeNotSatisfiable(size, "a suffix range of 0 bytes selects nothing")
        return ByteRange(max(0, size - suffix), size, size)
    start = int(first)
    if last and int(last) < start:
        raise RangeNotSatisfiable(size, "the range ends before it starts")
    if start >= size:
        raise RangeNotSatisfiable(size, "the range starts beyond the end of the file")
    end = min(int(last) + 1, size) if last else size
    return ByteRange(start, end, size)
