"""Hostile uploads over a raw socket: multipart built to hurt, framing that lies, names
meant to escape or inject. Each is refused promptly, stores nothing, leaks nothing, and
the server keeps serving with its memory back where it was."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, unquote

import pytest

from tests.hostile.conftest import (
    MAX_FILES,
    MAX_UPLOAD,
    MiB,
    Target,
    assert_memory_back_to_baseline,
)
from tests.hostile.rawhttp import build, send_and_close

BOUNDARY = "hostile-boundary"
UPLOAD = "/api/v1/files"


def part_head(
    *,
    boundary: str = BOUNDARY,
    name: str = "file",
    filename: str | None = "f.bin",
    extra: bytes = b"",
) -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    return (
        f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        + extra
        + b"Content-Type: application/octet-stream\r\n\r\n"
    )


def part(
    content: bytes = b"content",
    *,
    boundary: str = BOUNDARY,
    name: str = "file",
    filename: str | None = "f.bin",
    extra: bytes = b"",
) -> bytes:
    head = part_head(boundary=boundary, name=name, filename=filename, extra=extra)
    return head + content + b"\r\n"


def closing(boundary: str = BOUNDARY) -> bytes:
    return f"--{boundary}--\r\n".encode()


@dataclass(frozen=True)
class MultipartCase:
    content_type: str
    body: Callable[[], list[bytes]]
    status: int
    code: str
    because: str  # in the problem's detail: the defence that is meant to catch it


def _near_miss_content() -> list[bytes]:
    # A boundary of 70 `a`, then content that is nothing but almost-boundaries: a parser
    # that backtracks re-scans each one. No closing boundary, so nothing may be kept.
    boundary = "a" * 70
    near_miss = b"\r\n--" + b"a" * 69 + b"b"
    return [part_head(boundary=boundary), near_miss * (MAX_UPLOAD // len(near_miss) - 1)]


def _near_miss_preamble() -> list[bytes]:
    return [(b"--" + b"a" * 69 + b"\r\n") * 20_000]


def _many_parts(*, files: bool, count: int = 5000) -> list[bytes]:
    one = part(b"x", name="file" if files else "note", filename="t.txt" if files else None)
    return [b"".join(one.replace(b"t.txt", f"t{i}.txt".encode()) for i in range(count)), closing()]


MULTIPART_CASES: dict[str, MultipartCase] = {
    "boundary-of-70-with-near-miss-content": MultipartCase(
        f"multipart/form-data; boundary={'a' * 70}",
        _near_miss_content,
        400,
        "malformed_multipart",
        "before the closing boundary",
    ),
    "near-miss-boundaries-before-the-first": MultipartCase(
        f"multipart/form-data; boundary={'a' * 70}",
        _near_miss_preamble,
        400,
        "malformed_multipart",
        "expected a multipart boundary",
    ),
    "4-mib-of-crlf-before-the-first-boundary": MultipartCase(
        f"multipart/form-data; boundary={BOUNDARY}",
        lambda: [b"\r\n" * (2 * MiB), part(), closing()],
        400,
        "malformed_multipart",
        "before the first boundary",
    ),
    "a-part-with-100k-header-bytes": MultipartCase(
        f"multipart/form-data; boundary={BOUNDARY}",
        lambda: [part(extra=b"X-Long: " + b"h" * 100_000 + b"\r\n"), closing()],
        400,
        "malformed_multipart",
        "part headers are larger",
    ),
    "a-part-with-10k-header-lines": MultipartCase(
        f"multipart/form-data; boundary={BOUNDARY}",
        lambda: [part(extra=b"X-H: v\r\n" * 10_000), closing()],
        400,
        "malformed_multipart",
        "more than 16 headers",
    ),
    "5000-tiny-fields": MultipartCase(
        f"multipart/form-data; boundary={BOUNDARY}",
        lambda: _many_parts(files=False),
        413,
        "too_many_files",
        "parts in one request",
    ),
    "5000-tiny-files": MultipartCase(
        f"multipart/form-data; boundary={BOUNDARY}",
        lambda: _many_parts(files=True),
        413,
        "too_many_files",
        "files per request",
    ),
    "one-file-more-than-allowed": MultipartCase(
        f"multipart/form-data; boundary={BOUNDARY}",
        lambda: _many_parts(files=True, count=MAX_FILES + 1),
        413,
        "too_many_files",
        "files per request",
    ),
    "a-10-mib-non-file-field": MultipartCase(
        f"multipart/form-data; boundary={BOUNDARY}",
        lambda: [part(b"v" * (10 * MiB), name="note", filename=None), part(), closing()],
        422,
        "validation_error",
        "form field 'note' is larger",
    ),
    "missing-closing-boundary": MultipartCase(
        f"multipart/form-data; boundary={BOUNDARY}",
        lambda: [part(b"complete content")],
        400,
        "malformed_multipart",
        "before the closing boundary",
    ),
    "a-good-file-then-garbage": MultipartCase(
        f"multipart/form-data; boundary={BOUNDARY}",
        lambda: [part(b"fine"), b"--" + BOUNDARY.encode() + b"\r\nnot a header line\r\n\r\nx"],
        400,
        "malformed_multipart",
        "malformed part headers",
    ),
    "a-file-over-the-limit": MultipartCase(
        f"multipart/form-data; boundary={BOUNDARY}",
        lambda: [part(b"x" * (MAX_UPLOAD + 1)), closing()],
        413,
        "file_too_large",
        "exceeds the limit",
    ),
    "a-good-file-then-one-over-the-limit": MultipartCase(
        f"multipart/form-data; boundary={BOUNDARY}",
        lambda: [part(b"fine"), part(b"x" * (MAX_UPLOAD + 1), filename="big.bin"), closing()],
        413,
        "file_too_large",
        "exceeds the limit",
    ),
    "no-content-disposition": MultipartCase(
        f"multipart/form-data; boundary={BOUNDARY}",
        lambda: [f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nx\r\n".encode(), closing()],
        400,
        "malformed_multipart",
        "no Content-Disposition",
    ),
    "two-content-dispositions": MultipartCase(
        f"multipart/form-data; boundary={BOUNDARY}",
        lambda: [
            part(extra=b'Content-Disposition: form-data; name="file"; filename="b.html"\r\n'),
            closing(),
        ],
        400,
        "malformed_multipart",
        "more than one Content-Disposition",
    ),
    "two-filename-parameters": MultipartCase(
        f"multipart/form-data; boundary={BOUNDARY}",
        lambda: [part(filename='a.txt"; filename="b.html'), closing()],
        400,
        "malformed_multipart",
        "malformed Content-Disposition",
    ),
    "a-nul-in-a-part-header": MultipartCase(
        f"multipart/form-data; boundary={BOUNDARY}",
        lambda: [part(extra=b"X-Evil: a\x00b\r\n"), closing()],
        400,
        "malformed_multipart",
        "control characters",
    ),
    "filename-star-decoding-to-crlf": MultipartCase(
        f"multipart/form-data; boundary={BOUNDARY}",
        lambda: [
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            f"filename*=UTF-8''x%0D%0ASet-Cookie%3A%20a%3Db\r\n\r\nx\r\n".encode(),
            closing(),
        ],
        400,
        "malformed_multipart",
        "undecodable filename*",
    ),
    "no-file-part": MultipartCase(
        f"multipart/form-data; boundary={BOUNDARY}",
        lambda: [part(b"just a note", name="note", filename=None), closing()],
        400,
        "no_file",
        "at least one part",
    ),
    "an-empty-body": MultipartCase(
        f"multipart/form-data; boundary={BOUNDARY}",
        list,
        400,
        "malformed_multipart",
        "before the closing boundary",
    ),
    "no-boundary-parameter": MultipartCase(
        "multipart/form-data",
        lambda: [part(), closing()],
        400,
        "malformed_multipart",
        "no multipart boundary",
    ),
    "a-boundary-of-71-characters": MultipartCase(
        f"multipart/form-data; boundary={'b' * 71}",
        lambda: [part(boundary="b" * 71), closing("b" * 71)],
        400,
        "malformed_multipart",
        "boundary is invalid",
    ),
    "an-unterminated-quoted-boundary-of-escapes": MultipartCase(
        'multipart/form-data; boundary="' + "\\a" * 20_000,
        lambda: [part(), closing()],
        400,
        "malformed_multipart",
        "malformed Content-Type",
    ),
    "20000-empty-parameters-and-no-boundary": MultipartCase(
        "multipart/form-data" + "; " * 20_000,
        lambda: [part(), closing()],
        400,
        "malformed_multipart",
        "no multipart boundary",
    ),
    "multipart-mixed": MultipartCase(
        f"multipart/mixed; boundary={BOUNDARY}",
        lambda: [part(), closing()],
        415,
        "unsupported_media_type",
        "expected a multipart/form-data",
    ),
}


@pytest.mark.parametrize("case", MULTIPART_CASES.values(), ids=MULTIPART_CASES.keys())
def test_hostile_multipart_is_refused_and_stores_nothing(
    target: Target, case: MultipartCase
) -> None:
    before = target.snapshot()
    body = case.body()
    head = build(
        "POST",
        UPLOAD,
        headers=[
            target.victim.auth,
            ("Content-Type", case.content_type),
            ("Content-Length", str(sum(map(len, body)))),
        ],
    )
    response = target.send([head, *body])
    problem = target.refused(response, case.status, case.code, before=before)
    assert case.because in str(problem["detail"])


def test_declared_multipart_length_over_the_limit_is_413_before_any_byte_is_read(
    target: Target,
) -> None:
    before = target.snapshot()
    head = build(
        "POST",
        UPLOAD,
        headers=[
            target.victim.auth,
            ("Content-Type", f"multipart/form-data; boundary={BOUNDARY}"),
            ("Content-Length", str(MAX_UPLOAD * MAX_FILES + 10 * MiB)),
        ],
    )
    response = target.send(head)
    target.refused(response, 413, "file_too_large", before=before)


# -- raw uploads and framing ----------------------------------------------------------


def test_expect_100_continue_over_the_limit_is_413_without_asking_for_the_body(
    target: Target,
) -> None:
    before = target.snapshot()
    head = build(
        "POST",
        f"{UPLOAD}?name=big.bin",
        headers=[
            target.victim.auth,
            ("Content-Length", str(50 * MiB)),
            ("Expect", "100-continue"),
        ],
    )
    response = target.send(head)
    assert response.interim == []
    target.refused(response, 413, "file_too_large", before=before)


def test_expect_100_continue_without_a_token_is_401_without_asking_for_the_body(
    target: Target,
) -> None:
    before = target.snapshot()
    head = build(
        "POST",
        f"{UPLOAD}?name=f.bin",
        headers=[("Content-Length", "1000"), ("Expect", "100-continue")],
    )
    response = target.send(head)
    assert response.interim == []
    target.refused(response, 401, "token_invalid", before=before)


def test_a_chunked_raw_body_over_the_limit_is_413(target: Target) -> None:
    before = target.snapshot()
    chunk = b"%x\r\n" % (256 * 1024) + b"c" * (256 * 1024) + b"\r\n"
    head = build(
        "POST",
        f"{UPLOAD}?name=big.bin",
        headers=[target.victim.auth, ("Transfer-Encoding", "chunked")],
    )
    response = target.send([head, *[chunk] * 8, b"0\r\n\r\n"])
    target.refused(response, 413, "file_too_large", before=before)


def test_a_raw_body_without_a_name_is_400(target: Target) -> None:
    before = target.snapshot()
    request = build("POST", UPLOAD, headers=[target.victim.auth], body=b"data")
    target.refused(target.send(request), 400, "bad_request", before=before)


def _raw(target: Target, framing: bytes, body: bytes) -> bytes:
    return (
        f"POST {UPLOAD}?name=smuggled.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {target.victim.token}\r\n".encode()
        + framing
        + b"Connection: close\r\n\r\n"
        + body
    )


FRAMING_CASES: dict[str, tuple[bytes, bytes]] = {
    "content-length-and-chunked": (
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        b"5\r\nhello\r\n0\r\n\r\n",
    ),
    "chunked-and-content-length": (
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        b"5\r\nhello\r\n0\r\n\r\n",
    ),
    "two-different-content-lengths": (b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"),
    "a-content-length-list": (b"Content-Length: 5, 6\r\n", b"hello!"),
    "a-negative-content-length": (b"Content-Length: -1\r\n", b"hello"),
    "a-non-numeric-content-length": (b"Content-Length: five\r\n", b"hello"),
    "an-overflowing-content-length": (b"Content-Length: " + b"9" * 40 + b"\r\n", b"hello"),
    "space-before-the-colon": (b"Content-Length : 5\r\n", b"hello"),
    "an-invalid-chunk-size": (b"Transfer-Encoding: chunked\r\n", b"zz\r\nhello\r\n0\r\n\r\n"),
    "an-overflowing-chunk-size": (
        b"Transfer-Encoding: chunked\r\n",
        b"f" * 40 + b"\r\nhello\r\n0\r\n\r\n",
    ),
    "chunk-data-longer-than-its-size": (
        b"Transfer-Encoding: chunked\r\n",
        b"2\r\nhello\r\n0\r\n\r\n",
    ),
    "a-transfer-coding-other-than-chunked-last": (
        b"Transfer-Encoding: chunked, gzip\r\n",
        b"5\r\nhello\r\n0\r\n\r\n",
    ),
    "a-nul-in-a-header": (b"X-Evil: a\x00b\r\nContent-Length: 5\r\n", b"hello"),
    "an-obsolete-folded-header": (b"X-Folded: a\r\n  b\r\nContent-Length: 5\r\n", b"hello"),
}


@pytest.mark.parametrize(("framing", "body"), FRAMING_CASES.values(), ids=FRAMING_CASES.keys())
def test_conflicting_or_malformed_framing_is_400_and_stores_nothing(
    target: Target, framing: bytes, body: bytes
) -> None:
    # uvicorn's parser (httptools) refuses these itself, with a plain-text 400, before
    # the application sees a request: that is the right place for framing errors.
    before = target.snapshot()
    response = target.send(_raw(target, framing, body))
    target.refused(response, 400, before=before, by_server=True)


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    ],
    ids=["cl-te", "te-cl"],
)
def test_a_request_smuggled_behind_conflicting_framing_is_never_answered(
    target: Target, framing: bytes
) -> None:
    # A proxy that reads the other length than the server would forward the tail as a
    # second request of its own client: the server must answer the first and stop.
    before = target.snapshot()
    smuggled = (
        b"GET /api/v1/users/me HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer " + target.victim.token.encode() + b"\r\n\r\n"
    )
    request = (
        f"POST {UPLOAD}?name=smuggled.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {target.victim.token}\r\n".encode()
        + framing
        + b"\r\n0\r\n\r\n"
        + smuggled
    )
    received = send_and_close(target.port, request)
    assert received.count(b"HTTP/1.1 ") == 1, received
    assert received.startswith(b"HTTP/1.1 400 "), received
    assert target.victim.email.encode() not in received
    target.assert_stored_nothing(before, wait=2.0)
    target.assert_serving()


def test_an_unknown_method_token_is_400_from_the_server(target: Target) -> None:
    before = target.snapshot()
    response = target.send(build("BREW", UPLOAD, headers=[target.victim.auth]))
    target.refused(response, 400, before=before, by_server=True)


@pytest.mark.parametrize("method", ["PUT", "PROPFIND", "TRACE"])
@pytest.mark.parametrize(
    ("path", "allowed"),
    [(UPLOAD, "GET, POST"), (f"{UPLOAD}/some-id", "DELETE, GET, PATCH")],
    ids=["collection", "item"],
)
def test_an_unrouted_method_is_405_listing_every_allowed_method(
    target: Target, method: str, path: str, allowed: str
) -> None:
    before = target.snapshot()
    response = target.send(build(method, path, headers=[target.victim.auth]))
    target.refused(response, 405, "method_not_allowed", before=before)
    # RFC 9110 section 15.5.6: all of the resource's methods, not one route's.
    assert response.header("allow") == allowed


ABANDONED: dict[str, Callable[[Target], bytes]] = {
    "raw-body-shorter-than-content-length": lambda t: build(
        "POST",
        f"{UPLOAD}?name=short.bin",
        headers=[t.victim.auth, ("Content-Length", str(MAX_UPLOAD))],
        body=b"s" * 300_000,
        length=False,
    ),
    "multipart-second-file-cut-short": lambda t: build(
        "POST",
        UPLOAD,
        headers=[
            t.victim.auth,
            ("Content-Type", f"multipart/form-data; boundary={BOUNDARY}"),
            ("Content-Length", str(2 * MAX_UPLOAD)),
        ],
        body=part(b"a" * 1000) + part_head(filename="second.bin") + b"b" * 300_000,
        length=False,
    ),
    "chunked-body-cut-mid-chunk": lambda t: build(
        "POST",
        f"{UPLOAD}?name=cut.bin",
        headers=[t.victim.auth, ("Transfer-Encoding", "chunked")],
        body=b"%x\r\n" % 500_000 + b"c" * 200_000,
        length=False,
    ),
}


@pytest.mark.parametrize("make", ABANDONED.values(), ids=ABANDONED.keys())
def test_a_client_that_stops_sending_and_closes_leaves_nothing_behind(
    target: Target, make: Callable[[Target], bytes]
) -> None:
    before = target.snapshot()
    send_and_close(target.port, make(target))
    # The server learns of the close asynchronously; it then has to clean up.
    target.assert_stored_nothing(before, wait=5.0)
    target.assert_serving()


# -- names ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NameCase:
    name: str
    # The stored name when the name is accepted after cleaning, else (status, code) for a
    # raw upload's `?name=` and for a multipart filename (which carries raw bytes in a
    # header, so controls there are a malformed part rather than an invalid name).
    stored: str | None
    query: tuple[int, str] = (422, "invalid_file_name")
    multipart: tuple[int, str] = (422, "invalid_file_name")


MALFORMED_PART = (400, "malformed_multipart")
NAME_CASES: dict[str, NameCase] = {
    "dot-dot-slash": NameCase("../../etc/passwd", "passwd"),
    "slash": NameCase("a/b", "b"),
    "backslash": NameCase("a\\b", "b"),
    "windows-path": NameCase("C:\\Users\\x\\report.pdf", "report.pdf"),
    "nul": NameCase("\x00", None, multipart=MALFORMED_PART),
    "soh": NameCase("\x01", None, multipart=MALFORMED_PART),
    "del": NameCase("\x7f", None, multipart=MALFORMED_PART),
    "nul-inside": NameCase("a\x00.txt", None, multipart=MALFORMED_PART),
    "c1-control": NameCase("a\x85.txt", None),
    "dot-dot": NameCase("..", None),
    "dot": NameCase(".", None),
    "trailing-slash": NameCase("dir/", None),
    "blank": NameCase("   ", None),
    "10-kb": NameCase("n" * 10_240, None, query=(422, "validation_error")),
    "quote-and-second-filename": NameCase('"; filename="evil.html', '"; filename="evil.html'),
    "crlf-set-cookie": NameCase("x\r\nSet-Cookie: a=b", None, multipart=MALFORMED_PART),
    "encoded-crlf-taken-literally": NameCase("x%0D%0ASet-Cookie: a=b", "x%0D%0ASet-Cookie: a=b"),
    "bidi-override": NameCase("evil\u202etxt.exe", None),
    "semicolon-and-equals": NameCase("a; b=c.txt", "a; b=c.txt"),
}


def _multipart_filename(name: str) -> bytes:
    """The Content-Disposition parameters that carry ``name``: quoted with escapes where
    it is ASCII, as RFC 8187 ``filename*`` where it is not."""
    if name.isascii():
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'filename="{escaped}"'.encode()
    return f"filename*=UTF-8''{quote(name, safe='')}".encode()


def _upload_named(target: Target, name: str, channel: str) -> bytes:
    auth = ("Authorization", f"Bearer {target.namer.token}")
    if channel == "query":
        return build("POST", f"{UPLOAD}?name={quote(name, safe='')}", headers=[auth], body=b"n")
    body = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '.encode()
        + _multipart_filename(name)
        + b"\r\n\r\nn\r\n"
        + closing()
    )
    return build(
        "POST",
        UPLOAD,
        headers=[auth, ("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")],
        body=body,
    )


# `attachment; filename="ASCII fallback"; filename*=UTF-8''percent-encoded`, nothing else:
# one value of each, no quote or backslash inside the fallback, no CR/LF anywhere.
_DISPOSITION_RE = re.compile(
    r"attachment; filename=\"([\x20\x21\x23-\x5b\x5d-\x7e]*)\"; "
    r"filename\*=UTF-8''([A-Za-z0-9!#$&+.^_`|~%-]*)"
)


@pytest.mark.parametrize("channel", ["query", "multipart"])
@pytest.mark.parametrize("case", NAME_CASES.values(), ids=NAME_CASES.keys())
def test_hostile_file_names_are_refused_or_cleaned_and_never_inject_headers(
    target: Target, case: NameCase, channel: str
) -> None:
    before = target.snapshot()
    response = target.send(_upload_named(target, case.name, channel))
    if case.stored is None:
        status, code = case.query if channel == "query" else case.multipart
        target.refused(response, status, code, before=before)
        return
    assert response.status == 201, response.text
    target.assert_no_leak(response)
    created = response.json()
    stored = created if channel == "query" else created["files"][0]
    assert stored["name"] == case.stored
    auth = ("Authorization", f"Bearer {target.namer.token}")
    download = target.send(build("GET", f"{UPLOAD}/{stored['id']}/content", headers=[auth]))
    assert download.status == 200
    assert download.all("set-cookie") == []
    disposition = download.header("content-disposition")
    assert disposition is not None
    match = _DISPOSITION_RE.fullmatch(disposition)
    assert match is not None, disposition
    assert unquote(match.group(2)) == case.stored
    assert download.header("x-content-type-options") == "nosniff"
    deleted = target.send(build("DELETE", f"{UPLOAD}/{stored['id']}", headers=[auth]))
    assert deleted.status == 204
    target.assert_stored_nothing(before)


def test_memory_is_back_to_baseline_after_the_upload_battery(target: Target) -> None:
    assert_memory_back_to_baseline(target)
