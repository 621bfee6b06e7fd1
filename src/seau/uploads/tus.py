"""The tus 1.0.0 headers, parsed and formatted by small pure functions.

https://tus.io/protocols/resumable-upload: core, creation, creation-with-upload,
creation-defer-length, termination, expiration and checksum.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from seau.uploads.errors import HeaderError, UnsupportedChecksum

TUS_VERSION = "1.0.0"
EXTENSIONS = (
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "termination",
    "expiration",
    "checksum",
)
CHECKSUM_ALGORITHMS = ("sha1", "sha256")
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
MAX_METADATA_LENGTH = 4096
# Offsets and lengths go into signed 64-bit columns.
_MAX_INTEGER = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")
# RFC 9110 token characters: what a metadata key may be made of.
_KEY = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


@dataclass(frozen=True, slots=True)
class Checksum:
    algorithm: str
    digest: bytes


def parse_integer(value: str | None, *, header: str) -> int | None:
    """A non-negative decimal header value (no sign, no spaces), or None when absent."""
    if value is None:
        return None
    text = value.strip()
    if not _DIGITS.fullmatch(text) or int(text) > _MAX_INTEGER:
        raise HeaderError(f"{header} must be a non-negative integer")
    return int(text)


def parse_defer_length(value: str | None) -> bool:
    """`Upload-Defer-Length`: absent, or exactly ``1``."""
    if value is None:
        return False
    if value.strip() != "1":
        raise HeaderError("Upload-Defer-Length must be 1")
    return True


def parse_metadata(value: str | None) -> dict[str, bytes | None]:
    """`Upload-Metadata`: comma-separated ``key base64value`` pairs, or a bare ``key``.

    Keys are unique tokens; values are the decoded bytes (None for a bare key).
    """
    if value is None or not value.strip():
        return {}
    if len(value) > MAX_METADATA_LENGTH:
        raise HeaderError(f"Upload-Metadata is longer than {MAX_METADATA_LENGTH} characters")
    pairs: dict[str, bytes | None] = {}
    for item in value.split(","):
        fields = item.strip().split(" ")
        if len(fields) > 2 or not _KEY.fullmatch(fields[0]):
            raise HeaderError("Upload-Metadata must be `key base64value` pairs")
        key = fields[0]
        if key in pairs:
            raise HeaderError(f"Upload-Metadata repeats the key {key!r}")
        pairs[key] = (
            _decode_base64(fields[1], header="Upload-Metadata") if len(fields) == 2 else None
        )
    return pairs


def metadata_text(metadata: dict[str, bytes | None], *keys: str) -> str | None:
    """The first of ``keys`` present with a value, as UTF-8 text."""
    for key in keys:
        value = metadata.get(key)
        if value is None:
            continue
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise HeaderError(f"Upload-Metadata {key} is not UTF-8") from None
    return None


def parse_checksum(value: str | None) -> Checksum | None:
    """`Upload-Checksum`: ``algorithm base64digest``."""
    if value is None:
        return None
    fields = value.strip().split(" ")
    if len(fields) != 2:
        raise HeaderError("Upload-Checksum must be `algorithm base64digest`")
    algorithm = fields[0].lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise UnsupportedChecksum(
            f"Upload-Checksum algorithm {fields[0]!r} is not one of "
            f"{', '.join(CHECKSUM_ALGORITHMS)}"
        )
    digest = _decode_base64(fields[1], header="Upload-Checksum")
    expected = {"sha1": 20, "sha256": 32}[algorithm]
    if len(digest) != expected:
        raise HeaderError(f"Upload-Checksum: a {algorithm} digest has {expected} bytes")
    return Checksum(algorithm=algorithm, digest=digest)


def http_date(moment: datetime) -> str:
    """`Upload-Expires` is an RFC 9110 HTTP-date."""
    return format_datetime(moment, usegmt=True)


def _decode_base64(text: str, *, header: str) -> bytes:
    if not _BASE64.fullmatch(text):
        raise HeaderError(f"{header} holds invalid base64")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise HeaderError(f"{header} holds invalid base64") from None


# For CORS: what a browser tus client sends, and what it must be allowed to read.
TUS_REQUEST_HEADERS = (
    "Tus-Resumable",
    "Upload-Length",
    "Upload-Offset",
    "Upload-Metadata",
    "Upload-Checksum",
    "Upload-Defer-Length",
    "Upload-Concat",
)
TUS_RESPONSE_HEADERS = (
    "Location",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Expires",
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
)
