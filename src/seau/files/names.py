"""What an uploaded file is called, and the media type it is stored with.

The rules of every way in (a plain or multipart upload, a tus upload, a rename),
so that a name accepted by one is accepted by all. Names and declared types come
from uploaders and later reach other users' browsers in download headers, so
everything here treats its input as hostile. Pure functions, no I/O.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from typing import Final

from seau.errors import InvalidFileName

__all__ = [
    "DEFAULT_NAME",
    "OCTET_STREAM",
    "guess_content_type",
    "sanitize_content_type",
    "validate_file_name",
]

DEFAULT_NAME: Final = "untitled"
"""The name of an upload whose client sent none (tus metadata is optional)."""

OCTET_STREAM: Final = "application/octet-stream"

_MAX_CONTENT_TYPE_LENGTH: Final = 255
_MEDIA_TYPE_RE: Final = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+/[!#$%&'*+.^_`|~0-9a-z-]+")
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
