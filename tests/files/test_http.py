from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import unquote

import pytest

from seau.files.http import (
    DOWNLOAD_SECURITY_HEADERS,
    SAFE_INLINE_TYPES,
    Conditions,
    DownloadPlan,
    content_disposition,
    disposition_for,
    if_none_match_matches,
    if_range_matches,
    plan_download,
    strong_etag,
)
from seau.files.names import sanitize_content_type

DIGEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
ETAG = f'"{DIGEST}"'

# --- Content-Disposition ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "inline", "expected"),
    [
        pytest.param(
            "report.pdf",
            False,
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf",
            id="ascii",
        ),
        pytest.param(
            "photo.png",
            True,
            "inline; filename=\"photo.png\"; filename*=UTF-8''photo.png",
            id="inline",
        ),
        pytest.param(
            "café.txt",
            False,
            "attachment; filename=\"cafe.txt\"; filename*=UTF-8''caf%C3%A9.txt",
            id="accents-fold",
        ),
        pytest.param(
            "日本 語.txt",
            False,
            'attachment; filename="__ _.txt"; '
            "filename*=UTF-8''%E6%97%A5%E6%9C%AC%20%E8%AA%9E.txt",
            id="cjk",
        ),
        pytest.param(
            'a"b\\c/d;e%f.txt',
            False,
            "attachment; filename=\"a_b_c_d_e_f.txt\"; filename*=UTF-8''a%22b%5Cc%2Fd%3Be%25f.txt",
            id="separators",
        ),
        pytest.param(
            "x\r\nSet-Cookie: a=b",
            False,
            'attachment; filename="x__Set-Cookie: a=b"; '
            "filename*=UTF-8''x%0D%0ASet-Cookie%3A%20a%3Db",
            id="header-injection",
        ),
        pytest.param(
            "!#$&+^`|~-._'()*",
            False,
            "attachment; filename=\"!#$&+^`|~-._'()*\"; filename*=UTF-8''!#$&+^`|~-._%27%28%29%2A",
            id="attr-chars",
        ),
        pytest.param("", False, "attachment; filename=\"download\"; filename*=UTF-8''", id="empty"),
    ],
)
def test_content_disposition_has_safe_fallback_and_exact_filename_star(
    filename: str, inline: bool, expected: str
) -> None:
    assert content_disposition(filename, inline=inline) == expected


HOSTILE_NAMES = [
    'evil"; filename="x.html',
    "a\r\nb",
    "\x00\x01\x7f\x85",
    "\\\\server\\share",
    "🎉👨‍👩‍👧 שלום مرحبا",
    "\u202etxt.exe",
    "%0d%0a.txt",
    "a" * 300,
]


@pytest.mark.parametrize("filename", HOSTILE_NAMES)
def test_content_disposition_never_lets_a_name_break_out(filename: str) -> None:
    value = content_disposition(filename, inline=False)
    match = re.fullmatch(r"attachment; filename=\"([\x20-\x7e]*)\"; filename\*=UTF-8''(\S*)", value)
    assert match is not None, value
    fallback, encoded = match.groups()
    assert '"' not in fallback
    assert "\\" not in fallback
    assert re.fullmatch(r"[A-Za-z0-9!#$&+^`|~%._-]*", encoded)
    assert unquote(encoded, errors="strict") == filename


# --- inline or attachment -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "want_inline", "inline"),
    [
        ("image/png", True, True),
        ("IMAGE/PNG; foo=bar", True, True),
        ("application/pdf", True, True),
        ("text/plain; charset=utf-8", True, True),
        ("video/mp4", True, True),
        ("image/png", False, False),
        ("text/html", True, False),
        ("image/svg+xml", True, False),
        ("application/xhtml+xml", True, False),
        ("text/xml", True, False),
        ("application/javascript", True, False),
        ("text/javascript", True, False),
        ("application/octet-stream", True, False),
        ("garbage", True, False),
        ("", True, False),
    ],
)
def test_inline_only_when_asked_and_type_is_safe(
    content_type: str, want_inline: bool, inline: bool
) -> None:
    assert disposition_for(content_type, want_inline=want_inline) is inline


def test_safe_inline_types_contain_nothing_that_runs_script() -> None:
    for media_type in SAFE_INLINE_TYPES:
        assert sanitize_content_type(media_type) == media_type
        assert not re.search(r"html|xml|svg|script|ecmascript", media_type), media_type


def test_download_security_headers_forbid_sniffing_and_scripts() -> None:
    assert DOWNLOAD_SECURITY_HEADERS["X-Content-Type-Options"] == "nosniff"
    csp = DOWNLOAD_SECURITY_HEADERS["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "sandbox" in csp
    assert DOWNLOAD_SECURITY_HEADERS["Cross-Origin-Resource-Policy"] == "same-origin"
    with pytest.raises(TypeError):
        DOWNLOAD_SECURITY_HEADERS["X-Content-Type-Options"] = "sniff"  # type: ignore[index]


# --- ETags --------------------------------------------------------------------------------


def test_strong_etag_quotes_the_digest() -> None:
    assert strong_etag(DIGEST) == ETAG
    assert strong_etag(DIGEST.upper()) == ETAG


@pytest.mark.parametrize("digest", ["", "abc", DIGEST + "0", DIGEST[:-1] + "g", f'"{DIGEST}"'])
def test_strong_etag_rejects_anything_but_a_sha256_digest(digest: str) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        strong_etag(digest)


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (None, False),
        ("", False),
        ("*", True),
        (" * ", True),
        (ETAG, True),
        (f"W/{ETAG}", True),
        (f'"other", {ETAG}', True),
        (f'"other",W/{ETAG} , "x"', True),
        (f'"a,b", {ETAG}', True),
        ('"other"', False),
        (DIGEST, False),
        (f"{ETAG}x", False),
        (f"garbage, {ETAG}", True),
        (f"garbage {ETAG}", False),
        (f'"unterminated, {ETAG}', True),
        (f"*, {ETAG}", True),
        ('*, "other"', False),
        (f"w/{ETAG}", False),
        (",,,", False),
    ],
)
def test_if_none_match_uses_weak_comparison_and_ignores_garbage(
    header: str | None, matches: bool
) -> None:
    assert if_none_match_matches(header, ETAG) is matches


def test_if_none_match_compares_weakly_against_a_weak_etag() -> None:
    assert if_none_match_matches(ETAG, f"W/{ETAG}")
    assert not if_none_match_matches(ETAG, "not-an-etag")


@pytest.mark.parametrize(
    ("header", "honor_range"),
    [
        (None, True),
        (ETAG, True),
        (f" {ETAG} ", True),
        (f"W/{ETAG}", False),
        ('"other"', False),
        ("Wed, 21 Oct 2015 07:28:00 GMT", False),
        ("", False),
        (f"{ETAG}, {ETAG}", False),
        ("*", False),
        (DIGEST, False),
    ],
)
def test_if_range_honors_range_only_for_the_same_strong_etag(
    header: str | None, honor_range: bool
) -> None:
    assert if_range_matches(header, ETAG) is honor_range


def test_if_range_never_matches_our_weak_etag() -> None:
    assert not if_range_matches(ETAG, f"W/{ETAG}")


def test_plan_download_answers_304_206_or_200_with_the_safe_headers() -> None:
    digest = "ab" * 32

    def plan(conditions: Conditions) -> DownloadPlan:
        return plan_download(
            name="a.txt",
            size=10,
            sha256=digest,
            updated_at=datetime(2026, 12, 5, tzinfo=UTC),
            inline=False,
            conditions=conditions,
        )

    whole = plan(Conditions())
    assert (whole.status, whole.start, whole.end) == (200, 0, 10)
    assert whole.headers["Content-Length"] == "10"
    assert whole.headers["X-Content-Type-Options"] == "nosniff"
    assert whole.headers["Content-Disposition"].startswith("attachment;")
    part = plan(Conditions(range="bytes=2-"))
    assert (part.status, part.start, part.end) == (206, 2, 10)
    assert part.headers["Content-Range"] == "bytes 2-9/10"
    cached = plan(Conditions(if_none_match=f'"{digest}"'))
    assert cached.status == 304
    assert "Content-Length" not in cached.headers
    assert plan(Conditions(range="bytes=2-", if_range='"other"')).status == 200
