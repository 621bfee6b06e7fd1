"""The tus header parsers, and the S3 part size, as tables."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest

from seau.storage.s3 import part_size_for
from seau.uploads.errors import HeaderError, UnsupportedChecksum
from seau.uploads.tus import (
    Checksum,
    http_date,
    metadata_text,
    parse_checksum,
    parse_defer_length,
    parse_integer,
    parse_metadata,
)
from tests.storage.helpers import MiB


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("0", 0),
        ("42", 42),
        (" 7 ", 7),
        (str(2**63 - 1), 2**63 - 1),
    ],
)
def test_integer_headers_accept_plain_non_negative_decimals(
    value: str | None, expected: int | None
) -> None:
    assert parse_integer(value, header="Upload-Offset") == expected


@pytest.mark.parametrize("value", ["", "-1", "+1", "1.0", "0x10", "1e3", "12 3", str(2**63)])
def test_integer_headers_refuse_anything_else(value: str) -> None:
    with pytest.raises(HeaderError, match="Upload-Offset"):
        parse_integer(value, header="Upload-Offset")


def test_defer_length_is_absent_or_exactly_one() -> None:
    assert parse_defer_length(None) is False
    assert parse_defer_length("1") is True
    for bad in ("0", "true", "2"):
        with pytest.raises(HeaderError):
            parse_defer_length(bad)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, {}),
        ("", {}),
        (" ", {}),
        (f"filename {b64('a.txt')}", {"filename": b"a.txt"}),
        (
            f"filename {b64('é b.txt')},filetype {b64('text/plain')}, private",
            {"filename": "é b.txt".encode(), "filetype": b"text/plain", "private": None},
        ),
        # Unpadded base64 is common in the wild.
        ("name YQ", {"name": b"a"}),
    ],
)
def test_metadata_pairs_decode(header: str | None, expected: dict[str, bytes | None]) -> None:
    assert parse_metadata(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        "filename %%%",
        "filename a b",
        "filename a==b",
        f"file name {b64('x')}",
        f"filename {b64('a')},filename {b64('b')}",
        "x " + "A" * 5000,
    ],
)
def test_malformed_metadata_is_refused(header: str) -> None:
    with pytest.raises(HeaderError):
        parse_metadata(header)


def test_metadata_text_takes_the_first_key_present_and_needs_utf8() -> None:
    pairs = {"name": b"fallback.txt", "filename": None, "bad": b"\xff"}
    assert metadata_text(pairs, "filename", "name") == "fallback.txt"
    assert metadata_text(pairs, "missing") is None
    with pytest.raises(HeaderError, match="UTF-8"):
        metadata_text(pairs, "bad")


def test_checksum_names_a_supported_algorithm_and_a_digest_of_its_size() -> None:
    digest = hashlib.sha256(b"abc").digest()
    header = f"sha256 {base64.b64encode(digest).decode()}"
    assert parse_checksum(header) == Checksum("sha256", digest)
    sha1 = hashlib.sha1(b"abc", usedforsecurity=False).digest()
    assert parse_checksum(f"SHA1 {base64.b64encode(sha1).decode()}") == Checksum("sha1", sha1)
    assert parse_checksum(None) is None
    with pytest.raises(UnsupportedChecksum):
        parse_checksum("md5 kAFQmDzST7DWlj99KOF/cg==")
    with pytest.raises(HeaderError, match="32 bytes"):
        parse_checksum(f"sha256 {base64.b64encode(sha1).decode()}")
    with pytest.raises(HeaderError):
        parse_checksum("sha256")


def test_expiry_is_an_http_date() -> None:
    assert http_date(datetime(2026, 11, 26, 9, 5, 3, tzinfo=UTC)) == "Thu, 26 Nov 2026 09:05:03 GMT"


@pytest.mark.parametrize(
    ("max_size", "configured", "expected"),
    [
        (1, None, 5 * MiB),
        (8 * MiB, None, 5 * MiB),
        (5 * 1024 * MiB, None, 5 * MiB),
        # 10,000 parts of 5 MiB reach 48.8 GiB; beyond, whole MiB that suffice.
        (100 * 1024 * MiB, None, 11 * MiB),
        (5 * 1024 * 1024 * MiB, None, 525 * MiB),
        (8 * MiB, 16 * MiB, 16 * MiB),
    ],
)
def test_part_size_lets_ten_thousand_parts_reach_the_maximum(
    max_size: int, configured: int | None, expected: int
) -> None:
    size = part_size_for(max_size, configured)
    assert size == expected
    assert size * 10_000 >= max_size


def test_part_size_refuses_what_s3_cannot_do() -> None:
    with pytest.raises(ValueError, match="5 MiB"):
        part_size_for(MiB, 4 * MiB)
    with pytest.raises(ValueError, match="cannot reach"):
        part_size_for(100 * 1024 * MiB, 5 * MiB)
