"""Pure helpers for serving and naming files over HTTP.

Everything here treats its input as hostile: file names and media types come from
uploaders, and these values end up in response headers other users' browsers obey.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final
from urllib.parse import quote

from seau.errors import InvalidFileName

__all__ = [
    "DOWNLOAD_SECURITY_HEADERS",
    "OCTET_STREAM",
    "SAFE_INLINE_TYPES",
    "content_disposition",
    "disposition_for",
    "guess_content_type",
    "if_none_match_matches",
    "if_range_matches",
    "sanitize_content_type",
    "strong_etag",
    "validate_file_name",
]

OCTET_STREAM: Final = "application/octet-stream"

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

_MAX_CONTENT_TYPE_LENGTH: Final = 255
_MEDIA_TYPE_RE: Final = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+/[!#$%&'*+.^_`|~0-9a-z-]+")
# attr-char (RFC 8187 section 3.2.1) minus what quote() always leaves alone.
_ATTR_CHAR_SAFE: Final = "!#$&+^`|"
# In the quoted fallback, besides non-ASCII and controls: the quoted-string delimiters, path
# separators, and `%` and `;`, which some user agents decode or split on.
_FALLBACK_UNSAFE_RE: Final = re.compile(r"[^\x20-\x7e]|[\"\\/%;]")
# RFC 9110 entity-tag: optional W/, then a quoted run of etagc (no `"`, no controls).
_ENTITY_TAG_RE: Final = re.compile(r'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"')
_MEMBER_END_RE: Final = re.compile(r"[ \t]*(?:,|$)")
_SHA256_HEX_RE: Final = re.compile(r"[0-9a-f]{64}")
# Bytes that a gzip/bzip2/xz extension says the file is, where mimetypes reports the
# archive inside and an encoding instead.
_ENCODING_TYPES: Final = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
}
# Controls, lone surrogates, line separators, and the bidi overrides/isolates that can
# display `evil\u202etxt.exe` as `evilexe.txt`. Right-to-left letters themselves are fine.
_FORBIDDEN_NAME_CHARS_RE: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


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


def sanitize_content_type(value: str | None) -> str:
    """The lowercase ``type/subtype`` of a media type, or ``application/octet-stream``.

    Parameters are dropped. Anything that is not two RFC 9110 tokens, or is longer than
    255 characters, becomes ``application/octet-stream``, which browsers never render.
    """
    if value is None:
        return OCTET_STREAM
    media_type = value.partition(";")[0].strip(" \t").lower()
    if len(media_type) > _MAX_CONTENT_TYPE_LENGTH:
        return OCTET_STREAM
    if _MEDIA_TYPE_RE.fullmatch(media_type) is None:
        return OCTET_STREAM
    return media_type


def guess_content_type(filename: str, declared: str | None) -> str:
    """The declared media type when it says something, else a guess from the extension.

    The guess uses the `mimetypes` tables, which include the host's ``/etc/mime.types``.
    """
    media_type = sanitize_content_type(declared)
    if media_type != OCTET_STREAM:
        return media_type
    # Only the last path segment, and no colon: mimetypes parses `data:text/html,x` as a
    # data URL and would answer text/html for a file of that name.
    base = re.split(r"[/\\]", filename)[-1].replace(":", "_")
    guessed, encoding = mimetypes.guess_type(base, strict=True)
    if encoding is not None:
        return _ENCODING_TYPES.get(encoding, OCTET_STREAM)
    return sanitize_content_type(guessed)


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


def validate_file_name(name: str, *, max_length: int = 255) -> str:
    """The clean display name for an uploaded file, or `InvalidFileName`.

    NFC-normalised, reduced to its last path segment (browsers have sent
    ``C:\\dir\\f.txt``) and stripped of surrounding whitespace. Any Unicode letter, emoji
    or script is fine; control characters, bidi overrides and ``.``/``..`` are not.
    """
    normalized = unicodedata.normalize("NFC", name)
    if _FORBIDDEN_NAME_CHARS_RE.search(normalized):
        raise InvalidFileName("the file name contains control characters")
    clean = re.split(r"[/\\]", normalized)[-1].strip()
    if not clean:
        raise InvalidFileName("the file name is empty")
    if clean in {".", ".."}:
        raise InvalidFileName("the file name cannot be . or ..")
    if len(clean) > max_length:
        raise InvalidFileName(f"the file name is longer than {max_length} characters")
    return clean
