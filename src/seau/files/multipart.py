"""Incremental ``multipart/form-data`` reader.

An upload must reach object storage without ever being held whole in memory (FastAPI's
``UploadFile`` spools every part to disk before the handler runs). This reader wraps
python-multipart's callback parser and hands out parts one at a time; a part's content is
an async iterator that pulls more of the request body only when its consumer asks, so at
most one body chunk is in flight.

Errors are seau errors: a malformed body is `MalformedMultipart` (400), more than
``max_parts`` parts is `TooManyFiles` (413) and a field over its `Part.read_all` limit is
`ValidationFailed` (422). Oversized part headers are `MalformedMultipart` too: they are a
property of the body, and seau has no 431 class. Using the reader wrongly (iterating a part
twice, reading a part after `MultipartReader.next_part` skipped it, two tasks reading at
once) is a `RuntimeError`, because that is a bug in the caller, not in the request.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import unquote_to_bytes

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser

from seau.errors import (
    MalformedMultipart,
    SeauError,
    TooManyFiles,
    UnsupportedMediaType,
    ValidationFailed,
)

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

__all__ = ["MultipartLimits", "MultipartReader", "Part", "parse_boundary"]

# RFC 2046 section 5.1.1: 1 to 70 of these, the last one not a space.
_BOUNDARY_RE: Final = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")

# `type *( OWS ";" OWS name "=" value )` as RFC 9110 section 5.6.6 writes parameters. The
# quoted-string alternatives cannot overlap, so matching stays linear on hostile input.
_TYPE_RE: Final = re.compile(r"[ \t]*([^ \t;]*)[ \t]*")
_PARAM_RE: Final = re.compile(
    r";[ \t]*(?:([!#$%&'*+.^_`|~0-9A-Za-z-]+)[ \t]*=[ \t]*(\"(?:[^\"\\]|\\.)*\"|[^;\"]*))?[ \t]*",
    re.DOTALL,
)
# Browsers on Windows once sent `filename="C:\dir\f.txt"` unescaped, so only `\"` and `\\`
# are escapes; any other backslash is kept for `validate_file_name` to split paths on.
_QUOTED_PAIR_RE: Final = re.compile(r"\\([\"\\])")
# RFC 8187 ext-value: charset'language'pct-encoded.
_EXT_VALUE_RE: Final = re.compile(r"([^']*)'[^']*'(.*)", re.DOTALL)
_EXT_CHARSETS: Final = {"utf-8": "utf-8", "iso-8859-1": "latin-1"}
# RFC 9110 section 5.5: field values carry no controls but HTAB; CR, LF and NUL in
# particular must never reach a file name or a response header.
_HEADER_CTL_RE: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def parse_boundary(content_type: str) -> bytes:
    """Return the boundary of a ``multipart/form-data`` Content-Type header value.

    Raises `UnsupportedMediaType` for any other media type and `MalformedMultipart` for a
    missing, duplicated or invalid boundary.
    """
    parsed = _parse_parameters(content_type)
    if parsed is None:
        raise MalformedMultipart("malformed Content-Type header")
    media_type, params = parsed
    if media_type != "multipart/form-data":
        raise UnsupportedMediaType("expected a multipart/form-data body")
    boundary = params.get("boundary")
    if not boundary:
        raise MalformedMultipart("the Content-Type header has no multipart boundary")
    if _BOUNDARY_RE.fullmatch(boundary) is None:
        raise MalformedMultipart("the multipart boundary is invalid (RFC 2046)")
    return boundary.encode("ascii")


@dataclass(frozen=True, slots=True, kw_only=True)
class MultipartLimits:
    """Per-request bounds; each one caps memory or work an anonymous client can cause."""

    max_part_header_bytes: int = 16 * 1024
    max_part_headers: int = 16
    max_parts: int = 1000
    max_field_bytes: int = 64 * 1024
    max_preamble_bytes: int = 64 * 1024


class Part:
    """One part of the body: its headers now, its content as you iterate it.

    ``headers`` keeps every header in order with lowercased names. ``filename`` is None
    when the part has no ``filename`` parameter (a plain form field) and may be ``""``
    (what browsers send for an empty file input); it is decoded but not validated, so pass
    it through `seau.files.names.validate_file_name`. ``content_type`` is the raw header
    value; pass it through `seau.files.names.guess_content_type`.
    """

    __slots__ = (
        "_done",
        "_iterated",
        "_reader",
        "_skipped",
        "content_type",
        "filename",
        "headers",
        "name",
    )

    def __init__(
        self,
        reader: MultipartReader,
        *,
        name: str | None,
        filename: str | None,
        content_type: str | None,
        headers: list[tuple[str, str]],
    ) -> None:
        self.name = name
        self.filename = filename
        self.content_type = content_type
        self.headers = headers
        self._reader = reader
        self._iterated = False
        self._done = False
        self._skipped = False

    def __repr__(self) -> str:
        return (
            f"Part(name={self.name!r}, filename={self.filename!r}, "
            f"content_type={self.content_type!r})"
        )

    def __aiter__(self) -> AsyncIterator[bytes]:
        """Iterate the content once; each chunk is at most what one body chunk carried."""
        if self._iterated:
            raise RuntimeError("a part's content can be iterated only once")
        if self._skipped:
            raise RuntimeError("this part was skipped by next_part() before it was read")
        self._iterated = True
        return _PartContent(self)

    async def read_all(self, *, limit: int | None = None) -> bytes:
        """Read a small field whole; over ``limit`` bytes is `ValidationFailed`.

        ``limit`` defaults to the reader's ``max_field_bytes``. Reading stops at the first
        chunk past the limit, so an oversized field is never buffered.
        """
        if limit is None:
            limit = self._reader.limits.max_field_bytes
        chunks: list[bytes] = []
        total = 0
        async for chunk in self:
            total += len(chunk)
            if total > limit:
                raise ValidationFailed(f"form field {self.name!r} is larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


class _PartContent:
    # A class rather than an async generator: a generator abandoned mid-way is finalised
    # by the event loop at some later point, and this object has nothing to finalise.
    __slots__ = ("_part",)

    def __init__(self, part: Part) -> None:
        self._part = part

    def __aiter__(self) -> _PartContent:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._part._reader._read_content(self._part)
        if chunk is None:
            raise StopAsyncIteration
        return chunk


# Parser events, queued by the synchronous callbacks and replayed to the async consumer
# in order, so an error is raised where it occurred in the body, whatever the chunking.
@dataclass(frozen=True, slots=True)
class _Headers:
    headers: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class _Data:
    chunk: bytes


@dataclass(frozen=True, slots=True)
class _PartEnd:
    pass


@dataclass(frozen=True, slots=True)
class _End:
    pass


@dataclass(frozen=True, slots=True)
class _Failure:
    error: SeauError


_Event = _Headers | _Data | _PartEnd | _End | _Failure


class _Stop(Exception):
    # Control flow out of a parser callback: `write` has no other way to stop early.

    def __init__(self, error: SeauError) -> None:
        super().__init__(error.detail)
        self.error = error


class MultipartReader:
    """Read the parts of a ``multipart/form-data`` body, streaming each part's content.

    ``body`` is the request body stream (any chunk sizes). Only one coroutine may use the
    reader at a time, but which one may change: a route can hand a part to a storage
    ``put`` running in another task, await it, then ask for the next part. After the
    closing boundary the rest of the body (the epilogue) is left unread.
    """

    def __init__(
        self, body: AsyncIterator[bytes], *, boundary: bytes, limits: MultipartLimits
    ) -> None:
        if _BOUNDARY_RE.fullmatch(boundary.decode("latin-1")) is None:
            raise MalformedMultipart("the multipart boundary is invalid (RFC 2046)")
        self.limits = limits
        self._body = body
        self._events: deque[_Event] = deque()
        self._current: Part | None = None
        self._error: SeauError | None = None
        self._finished = False
        self._busy = False
        # Body bytes before the first boundary line, plus the line itself.
        self._preamble_allowance = limits.max_preamble_bytes + len(boundary) + 4
        self._preamble_fed = 0
        self._phase = "preamble"
        self._part_count = 0
        self._header_bytes = 0
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: list[tuple[str, str]] = []
        self._pending: list[tuple[bytes, int, int]] = []
        callbacks: MultipartCallbacks = {
            "on_part_begin": self._on_part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_end": self._on_end,
        }
        self._parser = MultipartParser(
            boundary,
            callbacks,
            max_header_count=limits.max_part_headers,
            # A single header line can never be longer than all of them together.
            max_header_size=limits.max_part_header_bytes,
        )

    def __aiter__(self) -> MultipartReader:
        return self

    async def __anext__(self) -> Part:
        part = await self.next_part()
        if part is None:
            raise StopAsyncIteration
        return part

    async def next_part(self) -> Part | None:
        """Return the next part, or None after the closing boundary.

        Content of the previous part that was not read is read and discarded first.
        """
        with self._exclusive():
            current = self._current
            if current is not None:
                # Whoever holds this part's iterator must get an error, not a clean end.
                current._skipped = True
                while await self._next_chunk(current) is not None:
                    pass
            if self._finished:
                return None
            event = await self._next_event()
            if isinstance(event, _End):
                self._finished = True
                return None
            if not isinstance(event, _Headers):
                raise RuntimeError(f"unexpected multipart event {event!r} between parts")
            try:
                part = self._make_part(event.headers)
            except MalformedMultipart as exc:
                self._error = exc
                raise
            self._current = part
            return part

    async def _read_content(self, part: Part) -> bytes | None:
        with self._exclusive():
            if part._skipped:
                raise RuntimeError("this part was skipped by next_part() before it was read")
            return await self._next_chunk(part)

    async def _next_chunk(self, part: Part) -> bytes | None:
        if part._done:
            return None
        event = await self._next_event()
        if isinstance(event, _Data):
            return event.chunk
        if isinstance(event, _PartEnd):
            part._done = True
            self._current = None
            return None
        raise RuntimeError(f"unexpected multipart event {event!r} inside a part")

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        if self._error is not None:
            # A fresh traceback each time, rather than one that grows with every call.
            raise self._error.with_traceback(None)
        if self._busy:
            raise RuntimeError("the multipart reader is already in use by another coroutine")
        self._busy = True
        try:
            yield
        finally:
            self._busy = False

    async def _next_event(self) -> _Event:
        while not self._events:
            await self._pump()
        event = self._events[0]
        if isinstance(event, _Failure):
            # Left in the queue: the reader stays failed.
            self._error = event.error
            raise event.error
        return self._events.popleft()

    async def _pump(self) -> None:
        try:
            chunk = await anext(self._body)
        except StopAsyncIteration:
            self._events.append(
                _Failure(MalformedMultipart("body ended before the closing boundary"))
            )
            return
        if not chunk:
            return
        if not isinstance(chunk, bytes):
            # A reused bytearray would change under the chunks handed out without copies.
            chunk = bytes(chunk)
        if self._phase != "preamble":
            self._feed(chunk)
            return
        # Feed at most the allowance before the first boundary, so megabytes of junk in
        # one chunk are rejected after the same number of bytes as in many small chunks.
        allowed = self._preamble_allowance - self._preamble_fed
        head, rest = (chunk, b"") if len(chunk) <= allowed else (chunk[:allowed], chunk[allowed:])
        self._preamble_fed += len(head)
        if not self._feed(head):
            return
        if self._phase == "preamble":
            if self._preamble_fed >= self._preamble_allowance:
                limit = self.limits.max_preamble_bytes
                self._fail(MalformedMultipart(f"more than {limit} bytes before the first boundary"))
            return
        if rest:
            self._feed(rest)

    def _feed(self, data: bytes) -> bool:
        failure: SeauError | None = None
        try:
            self._parser.write(data)
        except _Stop as stop:
            failure = stop.error
        except FormParserError as exc:
            failure = self._translate(exc)
            failure.__cause__ = exc
        self._flush()
        if failure is not None:
            self._fail(failure)
            return False
        return True

    def _fail(self, error: SeauError) -> None:
        self._events.append(_Failure(error))

    def _translate(self, exc: FormParserError) -> SeauError:
        # The parser's messages name offsets and byte values; clients get a stable text.
        message = str(exc)
        if message.startswith("Maximum header size"):
            return MalformedMultipart(
                f"part headers are larger than {self.limits.max_part_header_bytes} bytes"
            )
        if message.startswith("Maximum header count"):
            return MalformedMultipart(
                f"a part has more than {self.limits.max_part_headers} headers"
            )
        if self._phase == "headers":
            return MalformedMultipart("malformed part headers")
        return MalformedMultipart("expected a multipart boundary")

    def _flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        if len(pending) == 1:
            data, start, end = pending[0]
            chunk = data if start == 0 and end == len(data) else data[start:end]
        else:
            # Several callbacks in one write happen when a partial boundary held back from
            # the previous chunk turns out to be content: join them into one chunk.
            chunk = b"".join(memoryview(data)[start:end] for data, start, end in pending)
        pending.clear()
        self._events.append(_Data(chunk))

    def _on_part_begin(self) -> None:
        self._part_count += 1
        if self._part_count > self.limits.max_parts:
            raise _Stop(TooManyFiles(f"more than {self.limits.max_parts} parts in one request"))
        self._phase = "headers"
        self._header_bytes = 0
        self._headers = []

    def _count_header_bytes(self, amount: int) -> None:
        self._header_bytes += amount
        if self._header_bytes > self.limits.max_part_header_bytes:
            raise _Stop(
                MalformedMultipart(
                    f"part headers are larger than {self.limits.max_part_header_bytes} bytes"
                )
            )

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header_bytes(end - start)
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header_bytes(end - start)
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        # ": " and CRLF, so many short headers cannot slip under the byte limit.
        self._count_header_bytes(4)
        # The parser already rejected non-token bytes in names, so ASCII cannot fail.
        name = self._header_name.decode("ascii").lower()
        raw = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            value = raw.decode("latin-1")
        if _HEADER_CTL_RE.search(value):
            raise _Stop(MalformedMultipart(f"part header {name!r} contains control characters"))
        self._headers.append((name, value.strip(" \t")))

    def _on_headers_finished(self) -> None:
        self._phase = "data"
        self._events.append(_Headers(self._headers))

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._pending.append((data, start, end))

    def _on_part_end(self) -> None:
        self._flush()
        self._events.append(_PartEnd())

    def _on_end(self) -> None:
        self._phase = "end"
        self._events.append(_End())

    def _make_part(self, headers: list[tuple[str, str]]) -> Part:
        dispositions = [value for name, value in headers if name == "content-disposition"]
        if not dispositions:
            raise MalformedMultipart("a part has no Content-Disposition header")
        if len(dispositions) > 1:
            # Two parsers picking different ones is how request smuggling starts.
            raise MalformedMultipart("a part has more than one Content-Disposition header")
        parsed = _parse_parameters(dispositions[0])
        if parsed is None:
            raise MalformedMultipart("a part has a malformed Content-Disposition header")
        kind, params = parsed
        if kind != "form-data":
            raise MalformedMultipart("a part's Content-Disposition is not form-data")
        content_types = [value for name, value in headers if name == "content-type"]
        if len(content_types) > 1:
            raise MalformedMultipart("a part has more than one Content-Type header")
        return Part(
            self,
            name=params.get("name"),
            filename=_filename(params),
            content_type=content_types[0] if content_types else None,
            headers=headers,
        )


def _parse_parameters(value: str) -> tuple[str, dict[str, str]] | None:
    """Split ``type; a=b; c="d"`` into the lowercased type and parameters; None if malformed.

    Parameter names are lowercased; a repeated name is malformed, as two readers of the
    same header could otherwise see two different values.
    """
    match = _TYPE_RE.match(value)
    if match is None or not match.group(1):
        return None
    kind = match.group(1).lower()
    params: dict[str, str] = {}
    pos = match.end()
    while pos < len(value):
        match = _PARAM_RE.match(value, pos)
        if match is None:
            return None
        pos = match.end()
        name, raw = match.group(1, 2)
        if name is None:
            continue
        name = name.lower()
        if name in params:
            return None
        if raw.startswith('"'):
            params[name] = _QUOTED_PAIR_RE.sub(r"\1", raw[1:-1])
        else:
            params[name] = raw.rstrip(" \t")
    return kind, params


def _filename(params: dict[str, str]) -> str | None:
    plain = params.get("filename")
    # RFC 7578 section 4.2: form data does not use `filename*`, so when a part carries
    # both, the plain `filename` is the name (the one a proxy or filter may have checked).
    if plain is not None:
        return plain
    extended = params.get("filename*")
    if extended is None:
        return None
    # A part with `filename*` alone (some non-browser clients send it) is still read.
    decoded = _decode_ext_value(extended)
    if decoded is None:
        raise MalformedMultipart("a part has an undecodable filename* parameter")
    return decoded


def _decode_ext_value(value: str) -> str | None:
    match = _EXT_VALUE_RE.fullmatch(value)
    if match is None:
        return None
    codec = _EXT_CHARSETS.get(match.group(1).lower())
    if codec is None:
        return None
    try:
        decoded = unquote_to_bytes(match.group(2)).decode(codec)
    except UnicodeDecodeError:
        return None
    # Percent-encoding must not smuggle in what the raw header could not carry.
    if _HEADER_CTL_RE.search(decoded):
        return None
    return decoded
