"""Whether the type detected from an object's first bytes agrees with the type its
uploader declared: a pure function, with its table in tests/direct/test_verify.py.

A declared type is a claim the bucket also serves (S3 keeps the object's
`Content-Type` as the POST fixed it), so a direct upload whose bytes are plainly
something else (an executable declared `image/png`) is refused. libmagic names
fewer types than uploaders declare, so the rule is lenient where it cannot tell:
text it cannot name further, an application format it knows only as
`application/octet-stream` or as the zip it is built on, another subtype of the
same image, audio, video or font family (`image/jpg` for `image/jpeg`).
"""

from __future__ import annotations

from typing import Final

from seau.files.names import OCTET_STREAM

EMPTY: Final = "application/x-empty"
_FAMILIES: Final = frozenset({"image", "audio", "video", "font", "text", "model"})
_CONTAINERS: Final = frozenset({OCTET_STREAM, "application/zip"})
_TEXTUAL: Final = frozenset(
    {
        "application/json",
        "application/xml",
        "application/javascript",
        "application/ecmascript",
        "application/x-javascript",
        "application/x-yaml",
        "application/yaml",
        "application/toml",
        "application/sql",
        "application/x-sh",
        "application/x-httpd-php",
        "application/ld+json",
        "application/csv",
        "application/x-ndjson",
    }
)


def _textual(media_type: str) -> bool:
    return media_type in _TEXTUAL or media_type.endswith(("+json", "+xml"))


def agrees(declared: str, detected: str) -> bool:
    """Whether bytes detected as ``detected`` may be kept as ``declared`` (both
    lowercase ``type/subtype`` without parameters)."""
    if declared in (detected, OCTET_STREAM) or detected == EMPTY:
        return True
    family = declared.partition("/")[0]
    found = detected.partition("/")[0]
    if detected in _CONTAINERS:
        return family == "application"
    if family == found and family in _FAMILIES:
        return True
    return _textual(declared) and (found == "text" or _textual(detected))
