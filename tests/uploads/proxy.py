"""A throttling TCP proxy, so tests can interrupt an upload in the middle of a request.

Clients talk to the proxy's fixed address; the proxy forwards to a server whose
address can change (a restarted server gets a new port). Bytes towards the
server trickle at ``rate`` bytes per second, and the proxy counts them, so a
test can kill the client or the server once a request is well under way.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.server import free_port

_PIECE = 64 * 1024


class ThrottlingProxy:
    def __init__(self, upstream_port: int, *, rate: float) -> None:
        self.port = free_port()
        self.upstream_port = upstream_port
        self._rate = rate
        self._forwarded = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def forwarded(self) -> int:
        """Bytes sent towards servers so far, over every connection."""
        with self._lock:
            return self._forwarded

    def wait_forwarded(self, count: int, *, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.forwarded < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.forwarded} of {count} bytes went through")
            time.sleep(0.02)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", self.port)
        )
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._relay(reader, writer)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        towards = asyncio.create_task(self._pump(reader, up_writer, throttle=True))
        back = asyncio.create_task(self._pump(up_reader, writer, throttle=False))
        try:
            # Either side closing ends the exchange, like a real connection dying.
            await asyncio.wait([towards, back], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (towards, back):
                task.cancel()
            for stream in (writer, up_writer):
                with contextlib.suppress(Exception):
                    stream.close()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, throttle: bool
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(_PIECE):
                writer.write(data)
                await writer.drain()
                if throttle:
                    with self._lock:
                        self._forwarded += len(data)
                    await asyncio.sleep(len(data) / self._rate)
        # A half-closed side (EOF) is passed on, so responses still arrive.
        with contextlib.suppress(Exception):
            writer.write_eof()


@contextmanager
def throttling_proxy(upstream_port: int, *, rate: float) -> Iterator[ThrottlingProxy]:
    proxy = ThrottlingProxy(upstream_port, rate=rate)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
