"""The rules for uploaded files' names and stored media types (`seau.files.names`)."""

from __future__ import annotations

import pytest

from seau.errors import InvalidFileName
from seau.files.names import (
    DEFAULT_NAME,
    OCTET_STREAM,
    guess_content_type,
    sanitize_content_type,
    validate_file_name,
)

# --- file names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "clean"),
    [
        ("report.pdf", "report.pdf"),
        ("  spaced name.txt  ", "spaced name.txt"),
        ("C:\\Users\\me\\Desktop\\y.txt", "y.txt"),
        ("/etc/passwd", "passwd"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("dir/ file.txt ", "file.txt"),
        ("cafe\u0301.txt", "café.txt"),
        ("日本語のファイル.txt", "日本語のファイル.txt"),
        ("🎉👨‍👩‍👧.png", "🎉👨‍👩‍👧.png"),
        ("שלום.txt", "שלום.txt"),
        ("مرحبا.pdf", "مرحبا.pdf"),
        (".hidden", ".hidden"),
        ("...", "..."),
        ("a" * 255, "a" * 255),
    ],
)
def test_valid_file_names_are_normalised_to_their_last_segment(name: str, clean: str) -> None:
    assert validate_file_name(name) == clean


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        "\u3000\u00a0",
        ".",
        "..",
        "dir/..",
        "dir/",
        "a\x00b",
        "a\tb.txt",
        "a\nb.txt",
        "\nfile.txt",
        "del\x7f.txt",
        "c1\x85.txt",
        "c1\x9f.txt",
        "evil\u202etxt.exe",
        "iso\u2067late.txt",
        "line\u2028sep.txt",
        "lone\ud800surrogate",
        "a" * 256,
    ],
)
def test_invalid_file_names_are_rejected(name: str) -> None:
    with pytest.raises(InvalidFileName):
        validate_file_name(name)


def test_file_name_length_counts_characters_after_normalisation() -> None:
    composed = "é" * 10
    decomposed = "e\u0301" * 10
    assert validate_file_name(decomposed, max_length=10) == composed
    with pytest.raises(InvalidFileName, match="longer than 9"):
        validate_file_name(decomposed, max_length=9)


def test_the_default_name_is_itself_a_valid_name() -> None:
    assert validate_file_name(DEFAULT_NAME) == DEFAULT_NAME


# --- media types --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, OCTET_STREAM),
        ("", OCTET_STREAM),
        ("image/png", "image/png"),
        ("Image/PNG", "image/png"),
        ("  text/plain ; charset=utf-8", "text/plain"),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", None),
        ("application/ld+json", "application/ld+json"),
        ("text", OCTET_STREAM),
        ("text/", OCTET_STREAM),
        ("/plain", OCTET_STREAM),
        ("text/plain/extra", OCTET_STREAM),
        ("text /plain", OCTET_STREAM),
        ("text/pl ain", OCTET_STREAM),
        ('text/"plain"', OCTET_STREAM),
        ("text/plain\r\nX-Evil: 1", OCTET_STREAM),
        ("téxt/plain", OCTET_STREAM),
        ("a/" + "b" * 253, "a/" + "b" * 253),
        ("a/" + "b" * 254, OCTET_STREAM),
    ],
)
def test_sanitize_content_type_keeps_only_a_valid_media_type(
    value: str | None, expected: str | None
) -> None:
    assert sanitize_content_type(value) == (value if expected is None else expected)


@pytest.mark.parametrize(
    ("filename", "declared", "expected"),
    [
        ("a.bin", "image/png", "image/png"),
        ("a.png", "IMAGE/PNG; x=y", "image/png"),
        ("a.png", None, "image/png"),
        ("a.png", "application/octet-stream", "image/png"),
        ("a.png", "not a type", "image/png"),
        ("A.PDF", None, "application/pdf"),
        ("notes.txt", "", "text/plain"),
        ("page.html", None, "text/html"),
        ("archive.tar.gz", None, "application/gzip"),
        ("noext", None, OCTET_STREAM),
        ("weird.zzzunknown", None, OCTET_STREAM),
        ("data:text/html,x", None, OCTET_STREAM),
        ("dir/sub\\a.png", None, "image/png"),
        ("", None, OCTET_STREAM),
    ],
)
def test_guess_content_type_prefers_a_specific_declared_type(
    filename: str, declared: str | None, expected: str
) -> None:
    assert guess_content_type(filename, declared) == expected
