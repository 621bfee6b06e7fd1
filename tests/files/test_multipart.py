from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

import pytest

from seau.errors import MalformedMultipart, TooManyFiles, UnsupportedMediaType, ValidationFailed
from seau.files.multipart import MultipartLimits, MultipartReader, Part, parse_boundary

BOUNDARY = b"----seauFormBoundary7MA4YWxkTrZu0gW"
KIB = 1024
MIB = 1024 * KIB


class Body:
    """A request body stream that records how much of it the reader has pulled."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self.pulled_chunks = 0
        self.pulled_bytes = 0

    def __aiter__(self) -> Body:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = next(self._chunks)
        except StopIteration:
            raise StopAsyncIteration from None
        self.pulled_chunks += 1
        self.pulled_bytes += len(chunk)
        return chunk


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def part(headers: Sequence[bytes | str], content: bytes) -> tuple[list[bytes], bytes]:
    return [h.encode() if isinstance(h, str) else h for h in headers], content


def field(name: str, value: bytes) -> tuple[list[bytes], bytes]:
    return part([f'Content-Disposition: form-data; name="{name}"'], value)


def file(
    name: str, filename: str, content: bytes, content_type: str = "text/plain"
) -> tuple[list[bytes], bytes]:
    return part(
        [
            f'Content-Disposition: form-data; name="{name}"; filename="{filename}"',
            f"Content-Type: {content_type}",
        ],
        content,
    )


def build(
    parts: Sequence[tuple[list[bytes], bytes]],
    *,
    boundary: bytes = BOUNDARY,
    preamble: bytes = b"",
    epilogue: bytes = b"\r\n",
) -> bytes:
    out = [preamble]
    for headers, content in parts:
        out.append(b"--" + boundary + b"\r\n")
        out.extend(h + b"\r\n" for h in headers)
        out.append(b"\r\n" + content + b"\r\n")
    out.append(b"--" + boundary + b"--" + epilogue)
    return b"".join(out)


@dataclass(frozen=True)
class Seen:
    name: str | None
    filename: str | None
    content_type: str | None
    content: bytes


def make_reader(
    chunks: Iterable[bytes], *, limits: MultipartLimits | None = None
) -> tuple[MultipartReader, Body]:
    body = Body(chunks)
    return MultipartReader(body, boundary=BOUNDARY, limits=limits or MultipartLimits()), body


async def collect(reader: MultipartReader) -> list[Seen]:
    seen = []
    async for p in reader:
        content = b"".join([chunk async for chunk in p])
        seen.append(Seen(p.name, p.filename, p.content_type, content))
    return seen


async def read_into(content: AsyncIterator[bytes] | Part, out: list[bytes]) -> None:
    async for chunk in content:
        out.append(chunk)


async def read_body(
    chunks: Iterable[bytes], *, limits: MultipartLimits | None = None
) -> list[Seen]:
    reader, _ = make_reader(chunks, limits=limits)
    return await collect(reader)


# A body with a field, two files (one empty) and non-ASCII names, used by the chunking tests.
SAMPLE_PARTS = [
    field("title", "Vacances d'été".encode()),
    file("upload", "résumé 日本.txt", b"hello\r\nworld\r\n--not-a-boundary\r\n"),
    file("upload", "empty.bin", b"", "application/octet-stream"),
    part(
        [
            # `filename*` alone is still read (with `filename` beside it, `filename` wins).
            'Content-Disposition: form-data; name="upload"; '
            "filename*=UTF-8''%F0%9F%93%84%20report.pdf",
            "Content-Type: application/pdf",
        ],
        b"%PDF-1.7\n" + bytes(range(256)),
    ),
]
SAMPLE = build(SAMPLE_PARTS)
SAMPLE_SEEN = [
    Seen("title", None, None, "Vacances d'été".encode()),
    Seen("upload", "résumé 日本.txt", "text/plain", b"hello\r\nworld\r\n--not-a-boundary\r\n"),
    Seen("upload", "empty.bin", "application/octet-stream", b""),
    Seen("upload", "📄 report.pdf", "application/pdf", b"%PDF-1.7\n" + bytes(range(256))),
]


# --- parse_boundary ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"multipart/form-data; boundary={BOUNDARY.decode()}", BOUNDARY),
        ('multipart/form-data; boundary="abc"', b"abc"),
        ("Multipart/Form-Data; BOUNDARY=abc", b"abc"),
        ("multipart/form-data;boundary=abc", b"abc"),
        ("multipart/form-data ; charset=utf-8 ; boundary=abc ", b"abc"),
        ('multipart/form-data; boundary="a\'()+_,-./:=? z"', b"a'()+_,-./:=? z"),
        ("multipart/form-data; boundary=" + "x" * 70, b"x" * 70),
    ],
)
def test_parse_boundary_accepts_rfc2046_boundaries(header: str, expected: bytes) -> None:
    assert parse_boundary(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        "multipart/form-data",
        "multipart/form-data; boundary=",
        'multipart/form-data; boundary=""',
        "multipart/form-data; boundary=" + "x" * 71,
        "multipart/form-data; boundary=a!b",
        'multipart/form-data; boundary="ab "',
        'multipart/form-data; boundary="a\\\\b"',
        'multipart/form-data; boundary="é"',
        "multipart/form-data; boundary=a; boundary=b",
        'multipart/form-data; boundary="abc',
        "multipart/form-data; boundary",
        "",
    ],
)
def test_parse_boundary_rejects_missing_or_invalid_boundaries(header: str) -> None:
    with pytest.raises(MalformedMultipart):
        parse_boundary(header)


@pytest.mark.parametrize(
    "header",
    ["application/json", "multipart/mixed; boundary=abc", "application/x-www-form-urlencoded"],
)
def test_parse_boundary_rejects_other_media_types(header: str) -> None:
    with pytest.raises(UnsupportedMediaType):
        parse_boundary(header)


def test_reader_rejects_an_invalid_boundary() -> None:
    with pytest.raises(MalformedMultipart):
        MultipartReader(Body([]), boundary=b"bad boundary ", limits=MultipartLimits())


# --- well-formed bodies, however they are chunked -----------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 4096, len(SAMPLE)])
async def test_reader_yields_every_part_for_any_chunk_size(size: int) -> None:
    assert await read_body(chunked(SAMPLE, size)) == SAMPLE_SEEN


async def test_reader_yields_every_part_when_split_at_any_byte() -> None:
    for cut in range(len(SAMPLE) + 1):
        assert await read_body([SAMPLE[:cut], SAMPLE[cut:]]) == SAMPLE_SEEN, cut


async def test_reader_ignores_empty_body_chunks() -> None:
    chunks = [b"", *(c for piece in chunked(SAMPLE, 5) for c in (piece, b""))]
    assert await read_body(chunks) == SAMPLE_SEEN


# Content that starts like a delimiter but is not one: the parser must hand these bytes back
# as content, including when the look-alike straddles two body chunks.
LOOKALIKES = [
    b"--" + BOUNDARY,
    b"\r\n--" + BOUNDARY[:-1],
    b"\r\n--" + BOUNDARY + b"X",
    b"\r\n--" + BOUNDARY + b"-X",
    b"\r\n--" + BOUNDARY + b"\rX",
    b"\r\n--" + BOUNDARY + b"\r",
    b"\r\n--" + BOUNDARY + b"-",
    b"\r\r\n\r\n-\r\n--\r\n--" + BOUNDARY[:5],
    b"x\r\n--" + BOUNDARY[:-1] + b"\r\n--" + BOUNDARY + b"z",
]


@pytest.mark.parametrize("content", LOOKALIKES)
async def test_boundary_lookalikes_in_content_are_content(content: bytes) -> None:
    body = build([file("f", "a.bin", content), field("after", b"ok")])
    expected = [
        Seen("f", "a.bin", "text/plain", content),
        Seen("after", None, None, b"ok"),
    ]
    for size in (1, 7, len(body)):
        assert await read_body(chunked(body, size)) == expected, size
    for cut in range(len(body) + 1):
        assert await read_body([body[:cut], body[cut:]]) == expected, cut


async def test_random_contents_and_chunkings_round_trip() -> None:
    rng = random.Random(20240601)
    alphabet = [b"\r", b"\n", b"-", b"--", b"a", BOUNDARY[:3], BOUNDARY, b"\r\n--" + BOUNDARY]
    for _ in range(1000):
        contents = [
            b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
            for _ in range(rng.randrange(1, 4))
        ]
        # A delimiter line in the content would really end the part; skip those bodies.
        if any(_has_delimiter(c) for c in contents):
            continue
        body = build([file(f"f{i}", f"{i}.bin", c) for i, c in enumerate(contents)])
        cuts = sorted(rng.sample(range(len(body) + 1), k=min(6, len(body))))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        seen = await read_body(pieces)
        assert [s.content for s in seen] == contents


def _has_delimiter(content: bytes) -> bool:
    # The content is followed by CRLF in the body, so a trailing "\r\n--BOUNDARY" plus that
    # CRLF, or a delimiter followed by transport padding, would be a real delimiter.
    framed = content + b"\r\n"
    marker = b"\r\n--" + BOUNDARY
    start = framed.find(marker)
    while start != -1:
        tail = framed[start + len(marker) :]
        if tail.lstrip(b" \t").startswith(b"\r\n") or tail.startswith(b"--"):
            return True
        start = framed.find(marker, start + 1)
    return False


async def test_empty_form_has_no_parts() -> None:
    reader, _ = make_reader([b"--" + BOUNDARY + b"--\r\n"])
    assert await reader.next_part() is None
    assert await reader.next_part() is None


async def test_epilogue_after_the_closing_boundary_is_left_unread() -> None:
    body = build([field("a", b"1")], epilogue=b"\r\n")
    reader, source = make_reader([body, b"epilogue junk " * 1000, b"more"])
    assert [s.content for s in await collect(reader)] == [b"1"]
    assert source.pulled_chunks == 1


@pytest.mark.parametrize(
    "preamble",
    [b"\r\n", b"\r\n\r\n\r\n", b"\n", b"\r\nThis is a preamble.\r\n"],
    ids=["crlf", "crlfs", "lf", "text-after-crlf"],
)
async def test_short_preamble_starting_with_a_newline_is_accepted(preamble: bytes) -> None:
    assert await read_body([build([field("a", b"1")], preamble=preamble)]) == [
        Seen("a", None, None, b"1")
    ]


async def test_transport_padding_after_a_delimiter_is_accepted() -> None:
    body = (
        b"--" + BOUNDARY + b"\r\n"
        b'Content-Disposition: form-data; name="a"\r\n\r\n1'
        b"\r\n--" + BOUNDARY + b" \t \r\n"
        b'Content-Disposition: form-data; name="b"\r\n\r\n2'
        b"\r\n--" + BOUNDARY + b"--"
    )
    assert [s.content for s in await read_body(chunked(body, 3))] == [b"1", b"2"]


async def test_reader_is_an_async_iterator_of_parts() -> None:
    reader, _ = make_reader([SAMPLE])
    names = [p.name async for p in reader]
    assert names == ["title", "upload", "upload", "upload"]


async def test_part_headers_keep_order_with_lowercased_names() -> None:
    body = build(
        [part(['Content-Disposition: form-data; name="a"', "X-Custom:  spaced value \t"], b"")]
    )
    reader, _ = make_reader([body])
    first = await reader.next_part()
    assert first is not None
    assert first.headers == [
        ("content-disposition", 'form-data; name="a"'),
        ("x-custom", "spaced value"),
    ]


# --- names and file names -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("disposition", "name", "filename"),
    [
        pytest.param('form-data; name="f"; filename="a.txt"', "f", "a.txt", id="ascii"),
        pytest.param(
            'form-data; name="f"; filename="résumé 日本 🎉.txt"',
            "f",
            "résumé 日本 🎉.txt",
            id="utf8-quoted",
        ),
        pytest.param(
            'form-data; name="f"; filename="a.txt"; filename*=UTF-8\'\'%E6%97%A5%E6%9C%AC.txt',
            "f",
            "a.txt",
            id="plain-filename-wins-over-filename-star",
        ),
        pytest.param(
            "form-data; name=\"f\"; filename*=utf-8'en'na%C3%AFve%20file.txt",
            "f",
            "naïve file.txt",
            id="filename-star-only",
        ),
        pytest.param(
            "form-data; name=\"f\"; filename*=ISO-8859-1''caf%E9.txt",
            "f",
            "café.txt",
            id="filename-star-latin1",
        ),
        pytest.param(
            'form-data; name="f"; filename="plain.txt"; filename*=Shift_JIS\'\'%82%A0',
            "f",
            "plain.txt",
            id="unsupported-charset-falls-back",
        ),
        pytest.param(
            'form-data; name="f"; filename="plain.txt"; filename*=UTF-8\'\'%FF',
            "f",
            "plain.txt",
            id="invalid-utf8-falls-back",
        ),
        pytest.param(
            'form-data; name="f"; filename="plain.txt"; filename*=UTF-8\'\'a%0Ab',
            "f",
            "plain.txt",
            id="encoded-newline-falls-back",
        ),
        pytest.param(
            'form-data; name="f"; filename="say \\"hi\\".txt"', "f", 'say "hi".txt', id="escapes"
        ),
        pytest.param(
            'form-data; name="f"; filename="C:\\Users\\me\\x.txt"',
            "f",
            "C:\\Users\\me\\x.txt",
            id="windows-path-kept",
        ),
        pytest.param('form-data; name="f"; filename=""', "f", "", id="empty-file-input"),
        pytest.param('form-data; name="field"', "field", None, id="no-filename"),
        pytest.param("form-data; name=bare; filename=bare.txt", "bare", "bare.txt", id="tokens"),
        pytest.param('FORM-DATA; NAME="x"; FILENAME="y"', "x", "y", id="case-insensitive"),
        pytest.param('form-data; name="a;b"; filename="c;d"', "a;b", "c;d", id="semicolons"),
        pytest.param("form-data", None, None, id="no-name"),
        pytest.param('form-data; name="x";', "x", None, id="trailing-semicolon"),
    ],
)
async def test_part_names_and_filenames_are_decoded(
    disposition: str, name: str | None, filename: str | None
) -> None:
    body = build([part([f"Content-Disposition: {disposition}"], b"x")])
    (seen,) = await read_body([body])
    assert (seen.name, seen.filename) == (name, filename)


async def test_header_values_that_are_not_utf8_are_read_as_latin1() -> None:
    body = build([part([b'Content-Disposition: form-data; name="f"; filename="caf\xe9.txt"'], b"")])
    (seen,) = await read_body([body])
    assert seen.filename == "café.txt"


@pytest.mark.parametrize(
    "disposition",
    [
        pytest.param(
            'form-data; name="f"; filename="report.pdf"; filename*=UTF-8\'\'evil.exe',
            id="plain-first",
        ),
        pytest.param(
            'form-data; name="f"; filename*=UTF-8\'\'evil.exe; filename="report.pdf"',
            id="star-first",
        ),
    ],
)
async def test_plain_filename_is_the_name_when_both_are_given(disposition: str) -> None:
    """RFC 7578 section 4.2: a filter that checked `filename` must not be bypassed."""
    body = build([part([f"Content-Disposition: {disposition}"], b"x")])
    (seen,) = await read_body([body])
    assert seen.filename == "report.pdf"


async def test_undecodable_filename_star_without_fallback_is_malformed() -> None:
    body = build([part(["Content-Disposition: form-data; name=\"f\"; filename*=UTF-8''%FF"], b"")])
    with pytest.raises(MalformedMultipart, match="filename"):
        await read_body([body])


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        pytest.param(["Content-Type: text/plain"], "no Content-Disposition", id="missing"),
        pytest.param(
            ['Content-Disposition: attachment; filename="a"'], "not form-data", id="attachment"
        ),
        pytest.param(
            [
                'Content-Disposition: form-data; name="a"',
                'Content-Disposition: form-data; name="b"',
            ],
            "more than one Content-Disposition",
            id="duplicate",
        ),
        pytest.param(
            ['Content-Disposition: form-data; name="a'], "malformed Content-Disposition", id="quote"
        ),
        pytest.param(
            ['Content-Disposition: form-data; name="a"; name="b"'],
            "malformed Content-Disposition",
            id="repeated-parameter",
        ),
        pytest.param(
            ["Content-Disposition: form-data; name"],
            "malformed Content-Disposition",
            id="parameter-without-value",
        ),
        pytest.param(
            ['Content-Disposition: form-data; name="a"', "Content-Type: a/b", "Content-Type: c/d"],
            "more than one Content-Type",
            id="duplicate-content-type",
        ),
        pytest.param(
            [b'Content-Disposition: form-data; name="a"; filename="x\x00.txt"'],
            "control characters",
            id="nul",
        ),
        pytest.param(
            [b'Content-Disposition: form-data; name="a"; filename="x\n.txt"'],
            "control characters",
            id="bare-lf",
        ),
        pytest.param(
            [b"Content Disposition: form-data", b"X: y"], "malformed part headers", id="bad-name"
        ),
        pytest.param([b": form-data"], "malformed part headers", id="empty-name"),
        pytest.param([b"X: a\rb"], "malformed part headers", id="bare-cr"),
    ],
)
async def test_bad_part_headers_are_malformed(headers: list[bytes | str], detail: str) -> None:
    body = build([field("ok", b"first"), part(headers, b"x")])
    for size in (1, len(body)):
        reader, _ = make_reader(chunked(body, size))
        first = await reader.next_part()
        assert first is not None
        assert await first.read_all() == b"first"
        with pytest.raises(MalformedMultipart, match=detail):
            await reader.next_part()


# --- truncated and garbage bodies ---------------------------------------------------------


async def test_every_truncation_of_a_body_is_malformed() -> None:
    closing = SAMPLE.rindex(b"--" + BOUNDARY + b"--") + len(BOUNDARY) + 4
    for cut in range(closing):
        with pytest.raises(MalformedMultipart, match="body ended before the closing boundary"):
            await read_body(chunked(SAMPLE[:cut], 5))


async def test_truncation_is_raised_from_the_part_content() -> None:
    body = build([file("f", "a.bin", b"x" * 100)])[:-30]
    reader, _ = make_reader(chunked(body, 16))
    p = await reader.next_part()
    assert p is not None
    received: list[bytes] = []
    with pytest.raises(MalformedMultipart, match="body ended"):
        await read_into(p, received)
    assert b"".join(received) == b"x" * sum(map(len, received))


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"garbage", id="garbage"),
        pytest.param(b"-", id="lone-hyphen-then-end"),
        pytest.param(b"--wrong-boundary\r\n", id="other-boundary"),
        pytest.param(b"--" + BOUNDARY + b"X\r\n", id="junk-after-boundary"),
        pytest.param(b"--" + BOUNDARY + b"\rX", id="cr-without-lf"),
        pytest.param(b"--" + BOUNDARY + b"-X", id="half-closing"),
        pytest.param(b"preamble\r\n--" + BOUNDARY + b"\r\n", id="text-preamble"),
        pytest.param(b" --" + BOUNDARY + b"\r\n", id="leading-space"),
        pytest.param(
            b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="a"\r\n\r\n1'
            b"\r\n--" + BOUNDARY + b" x\r\n",
            id="junk-after-padding",
        ),
    ],
)
async def test_garbage_where_a_boundary_is_expected_is_malformed(body: bytes) -> None:
    for size in (1, len(body)):
        with pytest.raises(MalformedMultipart, match=r"^expected a multipart boundary$"):
            await read_body([*chunked(body, size), *[b"more"] * 3])


async def test_errors_are_sticky() -> None:
    reader, _ = make_reader([b"garbage"])
    with pytest.raises(MalformedMultipart):
        await reader.next_part()
    with pytest.raises(MalformedMultipart):
        await reader.next_part()


# --- limits -------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [64 * KIB, 8 * MIB, 1000])
async def test_megabytes_of_newlines_before_the_first_boundary_are_rejected_quickly(
    chunk_size: int,
) -> None:
    limits = MultipartLimits()
    junk = b"\r\n" * (4 * MIB)
    started = time.perf_counter()
    reader, body = make_reader([*chunked(junk, chunk_size), SAMPLE], limits=limits)
    with pytest.raises(MalformedMultipart, match="before the first boundary"):
        await reader.next_part()
    assert time.perf_counter() - started < 2
    assert body.pulled_bytes <= limits.max_preamble_bytes + len(BOUNDARY) + 4 + chunk_size


async def test_preamble_exactly_at_the_limit_is_accepted() -> None:
    limits = MultipartLimits(max_preamble_bytes=100)
    ok = build([field("a", b"1")], preamble=b"\r\n" * 50)
    too_long = build([field("a", b"1")], preamble=b"\r\n" * 50 + b"\n")
    for size in (1, 7, len(ok)):
        assert len(await read_body(chunked(ok, size), limits=limits)) == 1
        with pytest.raises(MalformedMultipart, match="more than 100 bytes before"):
            await read_body(chunked(too_long, size), limits=limits)


def endless(prefix: bytes, filler: bytes, *, total: int, chunk: int = 64 * KIB) -> Iterable[bytes]:
    yield prefix
    piece = filler * (chunk // len(filler))
    for _ in range(total // len(piece)):
        yield piece


OPENING = b"--" + BOUNDARY + b"\r\n"


@pytest.mark.parametrize(
    ("stream", "detail"),
    [
        pytest.param(
            endless(OPENING + b"X-Long: ", b"a", total=16 * MIB),
            "part headers are larger than 16384 bytes",
            id="endless-value",
        ),
        pytest.param(
            endless(OPENING, b"a", total=16 * MIB),
            "part headers are larger than 16384 bytes",
            id="endless-name",
        ),
        pytest.param(
            endless(OPENING, b"X-Many: value\r\n", total=16 * MIB),
            "more than 16 headers",
            id="endless-headers",
        ),
    ],
)
async def test_endless_part_headers_are_rejected_early(
    stream: Iterable[bytes], detail: str
) -> None:
    started = time.perf_counter()
    reader, body = make_reader(stream)
    with pytest.raises(MalformedMultipart, match=detail):
        await reader.next_part()
    assert time.perf_counter() - started < 2
    assert body.pulled_bytes <= 2 * 64 * KIB + len(OPENING)


@pytest.mark.parametrize("size", [1, 5, 10_000])
async def test_many_short_headers_count_towards_the_header_byte_limit(size: int) -> None:
    limits = MultipartLimits(max_part_header_bytes=200, max_part_headers=1000)
    headers = ['Content-Disposition: form-data; name="a"'] + ["X: y"] * 40
    body = build([part(headers, b"")])
    with pytest.raises(MalformedMultipart, match="larger than 200 bytes"):
        await read_body(chunked(body, size), limits=limits)
    fits = build([part(headers[:10], b"")])
    assert len(await read_body(chunked(fits, size), limits=limits)) == 1


@pytest.mark.parametrize("size", [1, 7, 100_000])
async def test_more_parts_than_max_parts_is_too_many_files(size: int) -> None:
    limits = MultipartLimits(max_parts=3)
    body = build([field(f"f{i}", b"v") for i in range(5)])
    reader, _ = make_reader(chunked(body, size), limits=limits)
    for _ in range(3):
        p = await reader.next_part()
        assert p is not None
        assert await p.read_all() == b"v"
    with pytest.raises(TooManyFiles):
        await reader.next_part()
    assert (
        len(await read_body([build([field(f"f{i}", b"v") for i in range(3)])], limits=limits)) == 3
    )


async def test_too_many_parts_stops_reading_the_body() -> None:
    limits = MultipartLimits(max_parts=10)
    one = b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="a"\r\n\r\nv\r\n'
    stream = endless(b"", one, total=64 * MIB, chunk=len(one) * 100)
    reader, body = make_reader(stream, limits=limits)
    with pytest.raises(TooManyFiles):
        await collect(reader)
    assert body.pulled_bytes == len(one) * 100


async def test_read_all_returns_a_small_field() -> None:
    reader, _ = make_reader(chunked(SAMPLE, 3))
    first = await reader.next_part()
    assert first is not None
    assert (await first.read_all(limit=100)).decode() == "Vacances d'été"


async def test_read_all_over_its_limit_is_validation_failed_without_reading_on() -> None:
    content = b"x" * (4 * MIB)
    reader, body = make_reader(chunked(build([field("big", content)]), 64 * KIB))
    big = await reader.next_part()
    assert big is not None
    with pytest.raises(ValidationFailed, match="'big' is larger than 1000 bytes"):
        await big.read_all(limit=1000)
    assert body.pulled_chunks == 1


async def test_read_all_defaults_to_max_field_bytes() -> None:
    limits = MultipartLimits(max_field_bytes=4)
    reader, _ = make_reader([build([field("a", b"1234"), field("b", b"12345")])], limits=limits)
    a = await reader.next_part()
    assert a is not None
    assert await a.read_all() == b"1234"
    b = await reader.next_part()
    assert b is not None
    with pytest.raises(ValidationFailed):
        await b.read_all()


# --- streaming ----------------------------------------------------------------------------


async def test_a_20_mib_part_streams_without_the_reader_running_ahead() -> None:
    chunk = 64 * KIB
    size = 20 * MIB
    pattern = bytes(range(256)) * (chunk // 256)
    head = OPENING + b'Content-Disposition: form-data; name="f"; filename="big.bin"\r\n\r\n'
    chunks = [head, *[pattern] * (size // chunk), b"\r\n--" + BOUNDARY + b"--\r\n"]
    reader, body = make_reader(chunks)
    big = await reader.next_part()
    assert big is not None
    received = 0
    largest = 0
    async for data in big:
        assert data == pattern[: len(data)] or len(data) < chunk
        received += len(data)
        largest = max(largest, len(data))
        # What the reader pulled but did not hand out yet is at most one chunk plus a
        # partial boundary it is holding back.
        assert body.pulled_bytes - len(head) - received <= chunk + len(BOUNDARY) + 4
    assert received == size
    assert largest <= chunk
    assert await reader.next_part() is None


async def test_content_chunks_are_one_per_body_chunk_even_with_many_lookalikes() -> None:
    # Every "\r\n-" is a partial delimiter, so the parser calls back many times per chunk.
    content = b"\r\n-" * 50_000
    body = build([file("f", "a.bin", content)])
    reader, source = make_reader(chunked(body, 4096))
    p = await reader.next_part()
    assert p is not None
    before = source.pulled_chunks
    pieces = [chunk async for chunk in p]
    assert b"".join(pieces) == content
    assert len(pieces) <= source.pulled_chunks - before + 1


@pytest.mark.parametrize(
    "lookalike",
    [b"\r\n--" + BOUNDARY[:-1], b"\r\n--" + BOUNDARY + b"X", b"\r\n--" + BOUNDARY + b"\rX", b"\r"],
    ids=["prefix", "whole-then-junk", "whole-then-cr", "cr"],
)
async def test_a_flood_of_delimiter_lookalikes_is_parsed_in_linear_time(lookalike: bytes) -> None:
    content = lookalike * (4 * MIB // len(lookalike))
    body = build([file("f", "a.bin", content)])
    started = time.perf_counter()
    (seen,) = await read_body(chunked(body, 64 * KIB))
    assert seen.content == content
    assert time.perf_counter() - started < 2


async def test_part_content_can_be_consumed_by_another_task() -> None:
    stored: dict[str, bytes] = {}

    async def put(key: str, data: AsyncIterator[bytes]) -> None:
        out = bytearray()
        async for chunk in data:
            out += chunk
            await asyncio.sleep(0)
        stored[key] = bytes(out)

    async def upload() -> list[str]:
        reader, _ = make_reader(chunked(SAMPLE, 11))
        keys: list[str] = []
        async for p in reader:
            key = f"{len(keys)}-{p.filename}"
            await asyncio.create_task(put(key, aiter(p)))
            keys.append(key)
        return keys

    keys = await asyncio.create_task(upload())
    assert [stored[k] for k in keys] == [s.content for s in SAMPLE_SEEN]


async def test_part_content_can_cross_tasks_through_a_queue() -> None:
    queue: asyncio.Queue[Part | None] = asyncio.Queue()
    done: asyncio.Queue[bytes] = asyncio.Queue()

    async def consumer() -> None:
        while (p := await queue.get()) is not None:
            await done.put(b"".join([c async for c in p]))

    task = asyncio.create_task(consumer())
    reader, _ = make_reader(chunked(SAMPLE, 13))
    results = []
    async for p in reader:
        await queue.put(p)
        results.append(await done.get())
    await queue.put(None)
    await task
    assert results == [s.content for s in SAMPLE_SEEN]


async def test_next_part_skips_the_rest_of_a_partly_read_part() -> None:
    body = build([file("f", "a.bin", b"a" * 10_000), field("after", b"ok")])
    reader, _ = make_reader(chunked(body, 100))
    first = await reader.next_part()
    assert first is not None
    content = aiter(first)
    head = await anext(content)
    assert head == b"a" * len(head)
    after = await reader.next_part()
    assert after is not None
    assert (after.name, await after.read_all()) == ("after", b"ok")
    with pytest.raises(RuntimeError, match="skipped"):
        await anext(content)
    assert await reader.next_part() is None


async def test_a_skipped_part_cannot_be_iterated_later() -> None:
    reader, _ = make_reader(chunked(SAMPLE, 7))
    first = await reader.next_part()
    assert first is not None
    await reader.next_part()
    with pytest.raises(RuntimeError, match="skipped"):
        aiter(first)


async def test_a_fully_read_part_is_not_reported_as_skipped() -> None:
    reader, _ = make_reader(chunked(SAMPLE, 7))
    first = await reader.next_part()
    assert first is not None
    content = aiter(first)
    assert b"".join([c async for c in content]) == SAMPLE_SEEN[0].content
    assert await reader.next_part() is not None
    with pytest.raises(StopAsyncIteration):
        await anext(content)


async def test_part_content_can_be_iterated_only_once() -> None:
    reader, _ = make_reader([SAMPLE])
    first = await reader.next_part()
    assert first is not None
    aiter(first)
    with pytest.raises(RuntimeError, match="only once"):
        aiter(first)


async def test_two_coroutines_reading_at_once_is_a_runtime_error() -> None:
    gate = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield OPENING + b'Content-Disposition: form-data; name="f"\r\n\r\nstart'
        await gate.wait()
        yield b"\r\n--" + BOUNDARY + b"--"

    reader = MultipartReader(slow_body(), boundary=BOUNDARY, limits=MultipartLimits())
    p = await reader.next_part()
    assert p is not None
    content = aiter(p)
    assert await anext(content) == b"start"
    rest: list[bytes] = []
    waiting = asyncio.create_task(read_into(content, rest))
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="already in use"):
        await reader.next_part()
    gate.set()
    await waiting
    assert rest == []
    assert await reader.next_part() is None
