from __future__ import annotations

import pytest

from seau.errors import RangeNotSatisfiable
from seau.files.ranges import ByteRange, parse_range


@pytest.mark.parametrize(
    "header",
    [None, "", "   ", "items=0-5", "Items=0-1,2-3", "x-custom=abc"],
    ids=["absent", "empty", "blank", "other-unit", "other-unit-list", "other-unit-garbage"],
)
def test_no_header_or_another_unit_means_the_whole_file(header: str | None) -> None:
    assert parse_range(header, size=100) is None


@pytest.mark.parametrize(
    ("header", "size", "start", "end"),
    [
        pytest.param("bytes=0-0", 100, 0, 1, id="first-byte"),
        pytest.param("bytes=0-99", 100, 0, 100, id="whole-explicit"),
        pytest.param("bytes=0-", 100, 0, 100, id="whole-open"),
        pytest.param("bytes=10-19", 100, 10, 20, id="middle"),
        pytest.param("bytes=99-99", 100, 99, 100, id="last-byte"),
        pytest.param("bytes=50-", 100, 50, 100, id="open-ended"),
        pytest.param("bytes=90-500", 100, 90, 100, id="end-clamped"),
        pytest.param("bytes=0-99999999999999999999", 100, 0, 100, id="twenty-digit-end-clamped"),
        pytest.param("bytes=-1", 100, 99, 100, id="suffix-one"),
        pytest.param("bytes=-10", 100, 90, 100, id="suffix"),
        pytest.param("bytes=-100", 100, 0, 100, id="suffix-whole"),
        pytest.param("bytes=-1000", 100, 0, 100, id="suffix-longer-than-file"),
        pytest.param("  bytes=1-2\t", 100, 1, 3, id="surrounding-whitespace"),
        pytest.param("BYTES=1-2", 100, 1, 3, id="unit-case-insensitive"),
        pytest.param("bytes=007-008", 100, 7, 9, id="leading-zeros"),
        pytest.param("bytes=0-0", 1, 0, 1, id="one-byte-file"),
    ],
)
def test_single_byte_range_is_half_open(header: str, size: int, start: int, end: int) -> None:
    assert parse_range(header, size=size) == ByteRange(start, end, size)


@pytest.mark.parametrize(
    "header",
    [
        "bytes=a-b",
        "bytes=1-b",
        "bytes=-",
        "bytes=",
        "bytes=5",
        "bytes=--5",
        "bytes=1--5",
        "bytes=-5-",
        "bytes= 1-2",
        "bytes=1 -2",
        "bytes=1- 2",
        "bytes =1-2",
        "bytes=+1-2",
        "bytes=1.5-2",
        "bytes=\u0661-\u0662",  # Arabic-Indic digits, which int() would accept
        "bytes=0x10-0x20",
        "bytes=123456789012345678901-",
        "bytes=0-123456789012345678901",
        "bytes=-123456789012345678901",
        "bytes",
        "=0-1",
        "by tes=0-1",
    ],
)
def test_malformed_byte_range_is_unsatisfiable(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable, match="malformed") as caught:
        parse_range(header, size=100)
    assert caught.value.headers == {"Content-Range": "bytes */100"}


def test_multiple_ranges_are_not_supported() -> None:
    with pytest.raises(RangeNotSatisfiable, match="multiple ranges are not supported") as caught:
        parse_range("bytes=0-1, 5-6", size=100)
    assert caught.value.size == 100


@pytest.mark.parametrize(
    ("header", "size", "detail"),
    [
        pytest.param("bytes=100-", 100, "starts beyond", id="start-at-size"),
        pytest.param("bytes=100-200", 100, "starts beyond", id="start-at-size-closed"),
        pytest.param("bytes=5000-", 100, "starts beyond", id="start-far-beyond"),
        pytest.param("bytes=-0", 100, "suffix range of 0", id="suffix-zero"),
        pytest.param("bytes=0-0", 0, "empty", id="empty-file"),
        pytest.param("bytes=-5", 0, "empty", id="empty-file-suffix"),
        pytest.param("bytes=0-", 0, "empty", id="empty-file-open"),
    ],
)
def test_range_outside_the_file_is_unsatisfiable(header: str, size: int, detail: str) -> None:
    with pytest.raises(RangeNotSatisfiable, match=detail) as caught:
        parse_range(header, size=size)
    assert caught.value.headers == {"Content-Range": f"bytes */{size}"}


@pytest.mark.parametrize("header", ["bytes=20-10", "bytes=1-0", "bytes=500-400"])
def test_range_start_beyond_end_is_unsatisfiable(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable, match="ends before it starts"):
        parse_range(header, size=100)


@pytest.mark.parametrize(
    ("byte_range", "content_range", "length"),
    [
        (ByteRange(0, 1, 10), "bytes 0-0/10", 1),
        (ByteRange(0, 10, 10), "bytes 0-9/10", 10),
        (ByteRange(5, 8, 10), "bytes 5-7/10", 3),
    ],
)
def test_content_range_uses_inclusive_last_position(
    byte_range: ByteRange, content_range: str, length: int
) -> None:
    assert byte_range.content_range == content_range
    assert byte_range.length == length


@pytest.mark.parametrize(
    ("start", "end", "size"), [(0, 0, 10), (5, 4, 10), (-1, 2, 10), (0, 11, 10), (0, 1, 0)]
)
def test_byte_range_rejects_impossible_bounds(start: int, end: int, size: int) -> None:
    with pytest.raises(ValueError, match="not a satisfiable range"):
        ByteRange(start, end, size)
