"""Key and prefix validation, the same for every backend."""

from __future__ import annotations

import pytest

from seau.storage import InvalidKey
from seau.storage.keys import check_range, prefix_directory, validate_key


@pytest.mark.parametrize(
    "key",
    ["a", "files/ab/abcdef0123", "a/b/c/d.e", ".hidden", "a/.b", "a..b", "ü/ñ", "a b", "a#b"],
)
def test_plain_relative_keys_are_accepted(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/",
        "/a",
        "//a",
        "a/",
        "a//b",
        ".",
        "..",
        "./a",
        "a/.",
        "../a",
        "a/../b",
        "a/..",
        "a\\b",
        "..\\a",
        "a\x00",
        "\x00",
    ],
    ids=repr,
)
def test_unsafe_keys_are_rejected(key: str) -> None:
    with pytest.raises(InvalidKey):
        validate_key(key)


@pytest.mark.parametrize(
    ("prefix", "directory"),
    [
        ("", ""),
        ("f", ""),
        ("files/", "files"),
        ("files/ab", "files"),
        ("a/b/c", "a/b"),
        ("files/.", "files"),
        ("files/..x", "files"),
    ],
)
def test_prefix_directory(prefix: str, directory: str) -> None:
    assert prefix_directory(prefix) == directory


@pytest.mark.parametrize("prefix", ["/", "/a", "../", "a/../", "a//", "a\\b", "a\x00"], ids=repr)
def test_unsafe_prefixes_are_rejected(prefix: str) -> None:
    with pytest.raises(InvalidKey):
        prefix_directory(prefix)


@pytest.mark.parametrize(("start", "end"), [(0, None), (0, 0), (5, 5), (5, 10), (100, None)])
def test_forward_ranges_pass(start: int, end: int | None) -> None:
    check_range(start, end)


@pytest.mark.parametrize(("start", "end"), [(-1, None), (-1, 5), (5, 4)])
def test_backward_or_negative_ranges_fail(start: int, end: int | None) -> None:
    with pytest.raises(ValueError, match="range"):
        check_range(start, end)
