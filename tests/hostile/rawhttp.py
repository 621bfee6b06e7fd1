"""HTTP/1.1 over a bare socket, for requests no client library would agree to send.

httpx and friends normalise what they send: they refuse CR/LF in header values, pick
one framing, fix up `Content-Length`, encode the path. The hostile battery needs the
exact bytes on the wire, so requests are built by hand and responses parsed here.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

CRLF = b"\r\n"
# What a socket may say once the server has answered early and closed: the request
# is what failed to go through, the response may well be complete.
_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)

Header = tuple[str | bytes, str | bytes]


class IncompleteResponse(AssertionError):
    """The server did not send a whole response before the deadline or the close."""


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    elapsed: float
    # 1xx responses seen before the final one (e.g. 100 Continue).
    interim: list[int] = field(default_factory=list)
    # Bytes the client could not send because the server had stopped reading.
    unsent: int = 0

    def header(self, name: str) -> str | None:
        values = self.all(name)
        assert len(values) <= 1, f"{name} appears {len(values)} times"
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def media_type(self) -> str:
        return (self.header("content-type") or "").partition(";")[0].strip().lower()

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> dict[str, Any]:
        value = json.loads(self.body)
        assert isinstance(value, dict), value
        return value

    def raw_headers(self) -> str:
        return "\r\n".join(f"{k}: {v}" for k, v in self.headers)


def build(
    method: str,
    target: str | bytes,
    *,
    headers: Iterable[Header] = (),
    body: bytes = b"",
    length: bool = True,
    close: bool = True,
) -> bytes:
    """A request head (and body) exactly as given; ``length`` adds a matching Content-Length."""
    lines = [method.encode() + b" " + _bytes(target) + b" HTTP/1.1", b"Host: 127.0.0.1"]
    lines += [_bytes(k) + b": " + _bytes(v) for k, v in headers]
    if length and body:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    if close:
        lines.append(b"Connection: close")
    return CRLF.join(lines) + CRLF + CRLF + body


def exchange(
    port: int,
    request: bytes | Iterable[bytes],
    *,
    timeout: float = 10.0,
    head: bool = False,
    shut_write: bool = False,
) -> RawResponse:
    """Send ``request`` and read one final response.

    The body is sent from a thread while the response is read, because the point of many
    requests is that the server answers before it has read everything: a client that only
    reads after sending would block on a full socket buffer, or lose the answer to a reset.
    ``shut_write`` half-closes after sending, as a client that gives up mid-body does.
    """
    started = time.monotonic()
    deadline = started + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        unsent = [0]
        pieces = [request] if isinstance(request, bytes) else list(request)
        sender = threading.Thread(
            target=_send, args=(sock, pieces, unsent, shut_write), daemon=True
        )
        sender.start()
        try:
            response = _read_response(sock, deadline=deadline, head=head)
        finally:
            sender.join(timeout=timeout)
    response.elapsed = time.monotonic() - started
    response.unsent = unsent[0]
    return response


def send_and_close(port: int, request: bytes, *, linger: float = 0.2) -> bytes:
    """Send ``request``, half-close, wait a moment, and return whatever came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        time.sleep(linger)
        sock.settimeout(5)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, *_GONE):
            pass
        return received


def _send(sock: socket.socket, pieces: list[bytes], unsent: list[int], shut_write: bool) -> None:
    for index, piece in enumerate(pieces):
        try:
            sock.sendall(piece)
        except (*_GONE, TimeoutError, OSError):
            unsent[0] = sum(len(p) for p in pieces[index:])
            return
    if shut_write:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)


class _Reader:
    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buffer = bytearray()
        self.eof = False

    def fill(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise IncompleteResponse(f"no complete response in time; got {bytes(self.buffer)!r}")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(1 << 16)
        except TimeoutError:
            raise IncompleteResponse(
                f"no complete response in time; got {bytes(self.buffer[:2000])!r}"
            ) from None
        except _GONE:
            chunk = b""
        if not chunk:
            self.eof = True
        self.buffer += chunk

    def until(self, marker: bytes) -> bytes:
        while (index := self.buffer.find(marker)) < 0:
            if self.eof:
                raise IncompleteResponse(f"connection closed; got {bytes(self.buffer[:2000])!r}")
            self.fill()
        data = bytes(self.buffer[:index])
        del self.buffer[: index + len(marker)]
        return data

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if self.eof:
                raise IncompleteResponse(
                    f"connection closed after {len(self.buffer)} of {size} body bytes"
                )
            self.fill()
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def rest(self) -> bytes:
        while not self.eof:
            self.fill()
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


def _read_response(sock: socket.socket, *, deadline: float, head: bool) -> RawResponse:
    reader = _Reader(sock, deadline)
    interim: list[int] = []
    while True:
        head_bytes = reader.until(CRLF + CRLF)
        status_line, *header_lines = head_bytes.decode("latin-1").split("\r\n")
        version, _, rest = status_line.partition(" ")
        assert version.startswith("HTTP/1."), status_line
        code, _, reason = rest.partition(" ")
        status = int(code)
        headers = [
            (name.strip(), value.strip())
            for name, _, value in (line.partition(":") for line in header_lines)
        ]
        if 100 <= status < 200:
            interim.append(status)
            continue
        break
    response = RawResponse(
        status=status, reason=reason, headers=headers, body=b"", elapsed=0.0, interim=interim
    )
    if head or status in (204, 304):
        return response
    encoding = (response.header("transfer-encoding") or "").lower()
    length = response.header("content-length")
    if encoding == "chunked":
        body = bytearray()
        while True:
            size_line = reader.until(CRLF).split(b";")[0].strip()
            size = int(size_line, 16)
            if size == 0:
                reader.until(CRLF)  # no trailers from this server
                break
            body += reader.exactly(size)
            reader.until(CRLF)
        response.body = bytes(body)
    elif length is not None:
        response.body = reader.exactly(int(length))
    else:
        response.body = reader.rest()
    return response


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")
