"""Pure helpers for the HTTP headers of downloads: disposition, ETags, conditions.

Everything here treats its input as hostile: file names and media types come from
uploaders, and these values end up in response headers other users' browsers obey.
The rules for names and stored media types themselves are in `seau.files.names`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from types import MappingProxyType
from typing import Final
from urllib.parse import quote

from seau.files.names import sanitize_content_type
from seau.files.ranges import parse_range

__all__ = [
    "DOWNLOAD_SECURITY_HEADERS",
    "SAFE_INLINE_TYPES",
    "Conditions",
    "DownloadPlan",
    "content_disposition",
    "disposition_for",
    "if_none_match_matches",
    "if_range_matches",
    "plan_download",
    "strong_etag",
]

# Types a browser renders without running anything the uploader wrote. Never HTML, SVG,
# any XML or JavaScript: those execute script in our origin when shown inline.
SAFE_INLINE_TYPES: Final = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/bmp",
        "application/pdf",
        "text/plain",
        "audio/mpeg",
        "audio/ogg",
        "audio/wav",
        "audio/webm",
        "audio/flac",
        "audio/aac",
        "audio/mp4",
        "video/mp4",
        "video/webm",
        "video/ogg",
    }
)

# Read-only so no request handler can change what every later download sends.
DOWNLOAD_SECURITY_HEADERS: Final[Mapping[str, str]] = MappingProxyType(
    {
        # Without it a browser may sniff an "image" into HTML and run it.
        "X-Content-Type-Options": "nosniff",
        # Even if something renders, it gets no script, no plugins, and an opaque origin.
        "Content-Security-Policy": "default-src 'none'; sandbox",
        # Other sites cannot embed our files with a user's cookies.
        "Cross-Origin-Resource-Policy": "same-origin",
    }
)

# attr-char (RFC 8187 section 3.2.1) minus what quote() always leaves alone.
_ATTR_CHAR_SAFE: Final = "!#$&+^`|"
# In the quoted fallback, besides non-ASCII and controls: the quoted-string delimiters, path
# separators, and `%` and `;`, which some user agents decode or split on.
_FALLBACK_UNSAFE_RE: Final = re.compile(r"[^\x20-\x7e]|[\"\\/%;]")
# RFC 9110 entity-tag: optional W/, then a quoted run of etagc (no `"`, no controls).
_ENTITY_TAG_RE: Final = re.compile(r'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"')
_MEMBER_END_RE: Final = re.compile(r"[ \t]*(?:,|$)")
_SHA256_HEX_RE: Final = re.compile(r"[0-9a-f]{64}")


def content_disposition(filename: str, *, inline: bool) -> str:
    """A ``Content-Disposition`` value with an ASCII ``filename`` and an exact ``filename*``.

    Old user agents read the quoted fallback, where anything risky became ``_``; current
    ones read the RFC 8187 ``filename*``, percent-encoded so no byte can end the header.
    """
    kind = "inline" if inline else "attachment"
    # Decompose first so "café" falls back to "cafe", not "caf_".
    decomposed = unicodedata.normalize("NFKD", filename)
    ascii_only = "".join(c for c in decomposed if not unicodedata.combining(c))
    fallback = _FALLBACK_UNSAFE_RE.sub("_", ascii_only) or "download"
    encoded = quote(filename.encode("utf-8", "replace"), safe=_ATTR_CHAR_SAFE)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def disposition_for(content_type: str, *, want_inline: bool) -> bool:
    """Whether to serve inline: only when asked and only for `SAFE_INLINE_TYPES`."""
    return want_inline and sanitize_content_type(content_type) in SAFE_INLINE_TYPES


def strong_etag(sha256_hex: str) -> str:
    """The strong ETag for content with this SHA-256 digest."""
    digest = sha256_hex.lower()
    if _SHA256_HEX_RE.fullmatch(digest) is None:
        raise ValueError("expected a SHA-256 digest as 64 hex digits")
    return f'"{digest}"'


def if_none_match_matches(header: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` matches ``etag`` (weak comparison, RFC 9110 13.1.2).

    True means "not modified". Members that are not entity-tags are ignored, so garbage
    can only cost a full response, never a wrong 304.
    """
    if header is None:
        return False
    value = header.strip(" \t")
    if value == "*":
        return True
    ours = _opaque_tag(etag)
    if ours is None:
        return False
    return any(tag == ours for _, tag in _entity_tags(value))


def if_range_matches(header: str | None, etag: str) -> bool:
    """Whether to honour ``Range`` given ``If-Range`` (RFC 9110 13.1.5).

    No header: yes. Otherwise only a strong ETag equal to ours; a weak ETag or a date
    (seau keeps no modification time to compare) sends the whole representation.
    """
    if header is None:
        return True
    match = _ENTITY_TAG_RE.fullmatch(header.strip(" \t"))
    if match is None or match.group(1):
        return False
    ours = _ENTITY_TAG_RE.fullmatch(etag)
    if ours is None or ours.group(1):
        return False
    return match.group(2) == ours.group(2)


@dataclass(frozen=True, slots=True)
class DownloadPlan:
    """What to answer to a download request: 200, 206 or 304, bytes ``start`` up to
    (not including) ``end``, and every header but the media type."""

    status: int
    start: int
    end: int
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Conditions:
    """The request's ``If-None-Match``, ``If-Range`` and ``Range``, each field's lines
    joined (RFC 9110 section 5.3), None when absent."""

    if_none_match: str | None = None
    if_range: str | None = None
    range: str | None = None


def plan_download(
    *,
    name: str,
    size: int,
    sha256: str,
    updated_at: datetime,
    inline: bool,
    conditions: Conditions,
) -> DownloadPlan:
    """The answer to a download of a ready file, for every route that serves bytes
    (the owner's API, share links). Raises `RangeNotSatisfiable`."""
    etag = strong_etag(sha256)
    headers = {
        "ETag": etag,
        "Last-Modified": format_datetime(updated_at, usegmt=True),
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-cache",
        "Content-Disposition": content_disposition(name, inline=inline),
        **DOWNLOAD_SECURITY_HEADERS,
    }
    if if_none_match_matches(conditions.if_none_match, etag):
        return DownloadPlan(status=304, start=0, end=0, headers=headers)
    byte_range = None
    if if_range_matches(conditions.if_range, etag):
        byte_range = parse_range(conditions.range, size=size)
    if byte_range is None:
        headers["Content-Length"] = str(size)
        return DownloadPlan(status=200, start=0, end=size, headers=headers)
    headers["Content-Range"] = byte_range.content_range
    headers["Content-Length"] = str(byte_range.length)
    return DownloadPlan(status=206, start=byte_range.start, end=byte_range.end, headers=headers)


def _opaque_tag(etag: str) -> str | None:
    match = _ENTITY_TAG_RE.fullmatch(etag)
    return None if match is None else match.group(2)


def _entity_tags(value: str) -> list[tuple[bool, str]]:
    """The (weak, opaque-tag) members of an entity-tag list, skipping malformed members.

    Tags may contain commas, so the list is scanned rather than split.
    """
    tags: list[tuple[bool, str]] = []
    pos = 0
    length = len(value)
    while pos < length:
        while pos < length and value[pos] in " \t,":
            pos += 1
        match = _ENTITY_TAG_RE.match(value, pos)
        if match is not None and _member_ends(value, match.end()):
            tags.append((match.group(1) is not None, match.group(2)))
            pos = match.end()
            continue
        # Skip a malformed member up to the next comma.
        comma = value.find(",", pos)
        pos = length if comma == -1 else comma + 1
    return tags


def _member_ends(value: str, pos: int) -> bool:
    return _MEMBER_END_RE.match(value, pos) is not None
