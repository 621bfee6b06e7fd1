"""A TCP proxy that injects network faults between seau and a server it depends on.

Put it in front of S3 or the database (seau → proxy → server) and switch it
from the test while traffic flows:

- ``passthrough()``: forward everything (the initial mode); releases stalled bytes;
- ``stall()``: hold every byte of every connection, open or new; connections stay up;
- ``refuse()``: stop listening (new connections get ECONNREFUSED), reset open ones;
- ``cut_after(n, direction=...)``: after ``n`` more bytes one way, close (or reset)
  the connection that carried them; one-shot, later traffic passes;
- ``lose_reply_to(pattern)``: forward the next request containing ``pattern`` to
  the server, then drop its reply and reset the client, so the client cannot
  tell whether the server acted on it (a commit whose outcome is unknown);
  with ``after``, only on a connection that carried ``after`` first (the COMMIT
  of one given transaction);
- ``reset_all()``: send RST on every open connection now.

"upstream" is client → server, "downstream" server → client. The proxy runs an
asyncio loop in a thread of its own, so tests can drive it from plain threads;
every switch has taken effect when the call returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Literal, Self, TypeVar

Direction = Literal["upstream", "downstream"]
T = TypeVar("T")

_READ_SIZE = 64 * 1024
_LINGER_ZERO = struct.pack("ii", 1, 0)  # close sends RST, not FIN
_CALL_TIMEOUT = 10.0


@dataclass(eq=False)  # identity: links live in a set
class _Link:
    """One proxied connection: the client's socket and ours to the server."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    closed: bool = False
    ended: int = 0

    def close(self, *, reset: bool) -> None:
        if self.closed:
            return
        self.closed = True
        for writer in (self.client, self.server):
            if reset:
                _reset(writer)
            else:
                writer.close()
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()


@dataclass
class _Cut:
    remaining: int
    direction: Direction
    reset: bool


@dataclass
class _LoseReply:
    pattern: bytes
    then_refuse: bool
    delay: float
    after: bytes | None = None
    primed: set[_Link] = field(default_factory=set)
    """The connections that carried ``after``."""


class FaultProxy:
    """Listens on 127.0.0.1 and forwards to ``upstream_host:upstream_port``."""

    def __init__(self, upstream_host: str, upstream_port: int, *, port: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = "127.0.0.1"
        self.port = port
        self.bytes_upstream = 0
        self.bytes_downstream = 0
        self.connections_accepted = 0
        self._links: set[_Link] = set()
        # Accepted clients still waiting for their connection to the server.
        self._connecting: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._listener: socket.socket | None = None
        self._accepting: set[asyncio.Future[None]] = set()
        self._flowing: asyncio.Event | None = None
        self._cut: _Cut | None = None
        self._lose_reply: _LoseReply | None = None

    # -- life cycle ---------------------------------------------------------

    def start(self) -> Self:
        self._thread.start()
        self._call(self._start)
        return self

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_CALL_TIMEOUT)
        self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def address(self) -> str:
        """``host:port`` to give the client instead of the server's."""
        return f"{self.host}:{self.port}"

    # -- faults -------------------------------------------------------------

    def passthrough(self) -> None:
        """Forward everything again, listening if needed, releasing held bytes."""

        async def run() -> None:
            self._cut = None
            self._lose_reply = None
            await self._listen()
            self._event().set()

        self._call(run)

    def stall(self) -> None:
        """Hold every byte in both directions, on open and new connections."""

        async def run() -> None:
            self._event().clear()

        self._call(run)

    def refuse(self, *, reset_open: bool = True) -> None:
        """New connections are refused; open ones are reset unless ``reset_open`` is false."""

        async def run() -> None:
            await self._stop_listening()
            if reset_open:
                self._reset_links()

        self._call(run)

    def reset_all(self) -> None:
        """Reset (RST) every open connection now; new ones are accepted as before."""

        async def run() -> None:
            self._reset_links()

        self._call(run)

    def cut_after(self, n: int, *, direction: Direction, reset: bool = False) -> None:
        """After ``n`` more bytes going ``direction`` (counted over all connections),
        close the connection that carried the last of them, with RST if ``reset``."""

        async def run() -> None:
            self._cut = _Cut(remaining=n, direction=direction, reset=reset)

        self._call(run)

    def lose_reply_to(
        self, pattern: bytes, *, then_refuse: bool, delay: float = 0.3, after: bytes | None = None
    ) -> None:
        """Forward the next upstream data containing ``pattern``, give the server
        ``delay`` seconds to act on it, then reset that connection without
        relaying any reply; with ``then_refuse``, refuse new connections from then on.
        With ``after``, only data on a connection that carried ``after`` before counts."""

        async def run() -> None:
            self._lose_reply = _LoseReply(
                pattern=pattern, then_refuse=then_refuse, delay=delay, after=after
            )

        self._call(run)

    @property
    def armed(self) -> bool:
        """A one-shot fault (``cut_after``, ``lose_reply_to``) has not fired yet."""
        return self._cut is not None or self._lose_reply is not None

    # -- the loop's side ----------------------------------------------------

    def _call(self, work: Callable[[], Coroutine[object, object, T]]) -> T:
        return asyncio.run_coroutine_threadsafe(work(), self._loop).result(_CALL_TIMEOUT)

    def _event(self) -> asyncio.Event:
        if self._flowing is None:
            self._flowing = asyncio.Event()
            self._flowing.set()
        return self._flowing

    async def _start(self) -> None:
        self._event()
        await self._listen()

    async def _close(self) -> None:
        await self._stop_listening()
        self._reset_links()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _listen(self) -> None:
        # A listening socket of our own rather than asyncio's Server: closing a
        # Server can strand a connection it accepted but had not handed over
        # yet, which then hangs instead of being refused.
        if self._listener is not None:
            return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(128)
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        self._listener = listener
        asyncio.get_running_loop().add_reader(listener, self._accept_pending, listener)

    async def _stop_listening(self) -> None:
        listener, self._listener = self._listener, None
        if listener is None:
            return
        asyncio.get_running_loop().remove_reader(listener)
        # Connections the kernel completed but nobody accepted yet would hang
        # once the listener closes: accept and reset them, as a refusal.
        while (connection := _accept_one(listener)) is not None:
            _reset_socket(connection)
        listener.close()

    def _accept_pending(self, listener: socket.socket) -> None:
        while (connection := _accept_one(listener)) is not None:
            self.connections_accepted += 1
            task = asyncio.ensure_future(self._accept(connection))
            self._accepting.add(task)
            task.add_done_callback(self._accepting.discard)

    def _reset_links(self) -> None:
        for link in list(self._links):
            link.close(reset=True)
        self._links.clear()
        for writer in self._connecting:
            _reset(writer)

    async def _accept(self, connection: socket.socket) -> None:
        reader, writer = await asyncio.open_connection(sock=connection)
        if self._listener is None:
            # Accepted just before the proxy stopped listening: refused all the same.
            _reset(writer)
            return
        self._connecting.add(writer)
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            _reset(writer)
            return
        finally:
            self._connecting.discard(writer)
        if writer.is_closing() or self._listener is None:
            # Reset (or refused) while connecting: the server side goes too.
            _reset(writer)
            _reset(server_writer)
            return
        link = _Link(client=writer, server=server_writer)
        self._links.add(link)
        link.tasks = [
            asyncio.create_task(self._pump(link, reader, server_writer, "upstream")),
            asyncio.create_task(self._pump(link, server_reader, writer, "downstream")),
        ]

    async def _pump(
        self,
        link: _Link,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        direction: Direction,
    ) -> None:
        flowing = self._event()
        tail = b""
        try:
            while True:
                await flowing.wait()
                data = await source.read(_READ_SIZE)
                await flowing.wait()
                if link.closed:
                    return
                if not data:
                    # A half-close passes on as a half-close; the link ends
                    # once both directions have.
                    if sink.can_write_eof():
                        sink.write_eof()
                    link.ended += 1
                    if link.ended == 2:
                        link.close(reset=False)
                        self._links.discard(link)
                    return
                lose = self._lose_reply
                if lose is not None and direction == "upstream":
                    if lose.after is not None and link not in lose.primed:
                        if lose.after in tail + data:
                            lose.primed.add(link)
                    elif lose.pattern in tail + data:
                        self._lose_reply = None
                        await self._forward(sink, data, direction)
                        await self._swallow_reply(link, lose)
                        return
                keep = max(len(lose.pattern), len(lose.after or b"")) - 1 if lose is not None else 0
                tail = data[-keep:] if keep else b""
                cut = self._cut
                if cut is not None and cut.direction == direction and len(data) >= cut.remaining:
                    self._cut = None
                    await self._forward(sink, data[: cut.remaining], direction)
                    link.close(reset=cut.reset)
                    self._links.discard(link)
                    return
                if cut is not None and cut.direction == direction:
                    cut.remaining -= len(data)
                await self._forward(sink, data, direction)
        except (ConnectionError, OSError):
            link.close(reset=True)
            self._links.discard(link)
        except asyncio.CancelledError:
            return

    async def _forward(self, sink: asyncio.StreamWriter, data: bytes, direction: Direction) -> None:
        if not data:
            return
        if direction == "upstream":
            self.bytes_upstream += len(data)
        else:
            self.bytes_downstream += len(data)
        sink.write(data)
        await sink.drain()

    async def _swallow_reply(self, link: _Link, lose: _LoseReply) -> None:
        # The downstream pump must not relay the reply meanwhile: hold every
        # link still, then let the others go once this one is gone.
        flowing = self._event()
        flowing.clear()
        try:
            await asyncio.sleep(lose.delay)
            if lose.then_refuse:
                await self._stop_listening()
                self._reset_links()
            else:
                link.close(reset=True)
                self._links.discard(link)
        finally:
            flowing.set()


def _accept_one(listener: socket.socket) -> socket.socket | None:
    try:
        connection, _ = listener.accept()
    except OSError:  # nothing pending (BlockingIOError), or the listener is gone
        return None
    connection.setblocking(False)
    return connection


def _reset_socket(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
    sock.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN: SO_LINGER on with a zero timeout."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
    writer.transport.abort()
