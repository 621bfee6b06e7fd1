"""What a storage key may look like, checked the same way by every backend.

Keys are made by the server (never taken from user input), so a bad key is a
bug; rejecting it loudly in every backend keeps a key that works in tests with
the memory store from failing later on disk or in S3.
"""

from __future__ import annotations

from seau.storage.errors import InvalidKey

_FORBIDDEN_CHARACTERS = ("\x00", "\\")
_FORBIDDEN_SEGMENTS = frozenset({"", ".", ".."})


def validate_key(key: str) -> str:
    """Return ``key`` if it is a relative POSIX path of plain segments, else raise."""
    if not key:
        raise InvalidKey("empty key")
    _check_characters(key)
    if key.startswith("/"):
        raise InvalidKey(f"absolute key: {key!r}")
    if any(segment in _FORBIDDEN_SEGMENTS for segment in key.split("/")):
        raise InvalidKey(f"key has an empty, '.' or '..' segment: {key!r}")
    return key


def prefix_directory(prefix: str) -> str:
    """The directory a listing for ``prefix`` must walk: everything before the last ``/``.

    Listing is by string prefix, so what follows the last ``/`` may be any partial
    segment (``"files/ab"`` lists ``files/abc...``); only the directory part must be
    made of valid segments.
    """
    _check_characters(prefix)
    if prefix.startswith("/"):
        raise InvalidKey(f"absolute prefix: {prefix!r}")
    directory = prefix.rpartition("/")[0]
    if directory:
        validate_key(directory)
    return directory


def _check_characters(text: str) -> None:
    for character in _FORBIDDEN_CHARACTERS:
        if character in text:
            raise InvalidKey(f"key contains {character!r}: {text!r}")


def check_range(start: int, end: int | None) -> None:
    """Reject ranges that no caller should build; clamping to the size is the store's job."""
    if start < 0:
        raise ValueError(f"range start must be >= 0, got {start}")
    if end is not None and end < start:
        raise ValueError(f"range end {end} is before start {start}")
