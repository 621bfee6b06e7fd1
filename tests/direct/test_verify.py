"""The declared type against the detected one: when a direct upload is refused."""

from __future__ import annotations

import pytest

from seau.direct.verify import agrees


@pytest.mark.parametrize(
    ("declared", "detected"),
    [
        ("image/png", "image/png"),
        ("application/octet-stream", "application/x-sharedlib"),  # claims nothing
        ("text/plain", "application/x-empty"),  # no bytes to tell
        ("image/jpg", "image/jpeg"),  # another name of the same family
        ("audio/mp3", "audio/mpeg"),
        ("video/quicktime", "video/mp4"),
        ("text/csv", "text/plain"),
        ("application/json", "text/plain"),
        ("application/geo+json", "application/json"),
        ("image/svg+xml", "text/xml"),
        (
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/zip",
        ),
        ("application/x-custom-format", "application/octet-stream"),
    ],
)
def test_agreeing_types(declared: str, detected: str) -> None:
    assert agrees(declared, detected)


@pytest.mark.parametrize(
    ("declared", "detected"),
    [
        ("image/png", "application/x-sharedlib"),  # an executable declared as an image
        ("image/png", "application/x-pie-executable"),
        ("image/png", "text/html"),
        ("image/png", "application/octet-stream"),  # libmagic knows PNG: not one
        ("text/plain", "application/x-dosexec"),
        ("application/pdf", "text/html"),
        ("application/json", "application/x-sharedlib"),
        ("video/mp4", "image/png"),
    ],
)
def test_disagreeing_types(declared: str, detected: str) -> None:
    assert not agrees(declared, detected)
