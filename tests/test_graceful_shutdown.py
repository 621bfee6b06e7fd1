"""SIGTERM does not drop a request a proxy has written but the server not yet read.

Found by bench/scale.py (issue 16, point 5): during a rolling restart with SIGTERM,
nginx answered 502 to POSTs it had written onto a connection the server then closed
or reset: an idle kept-alive connection (uvicorn closed them all at once), a
connection the kernel completed after the workers stopped accepting (the supervisor
kept the port open), or one completed but not yet accepted when the server closed
its port (`seau.graceful`). Now each of them is answered, with `Connection: close`.
"""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from seau import graceful
from seau.server_protocol import BoundedHttpToolsProtocol
from tests.support.server import seau_server

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: seau.test\r\n\r\n"


def _response(sock: socket.socket) -> bytes:
    """One HTTP response with a Content-Length body; b"" if the server closed."""
    received = b""
    while b"\r\n\r\n" not in received:
        piece = sock.recv(65536)
        if not piece:
            return received
        received += piece
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        piece = sock.recv(65536)
        if not piece:
            break
        body += piece
    return head + b"\r\n\r\n" + body


def test_a_request_on_an_idle_connection_after_sigterm_is_answered(tmp_path: Path) -> None:
    with seau_server({"SEAU_DATA_DIR": str(tmp_path / "data")}, cwd=tmp_path) as server:
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(REQUEST)
            first = _response(sock)
            assert first.startswith(b"HTTP/1.1 200"), first
            assert b"connection: close" not in first.lower()

            server.process.send_signal(signal.SIGTERM)
            # Shutting down: no new connection is accepted...
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                except OSError:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the server still accepts connections after SIGTERM")
            time.sleep(0.3)
            # ...but the request a proxy writes onto its idle connection is answered.
            sock.sendall(REQUEST)
            second = _response(sock)
            assert second.startswith(b"HTTP/1.1 200"), second
            assert b"connection: close" in second.lower()
            assert sock.recv(1) == b""
        assert server.process.wait(30) == 0


def test_with_workers_the_port_refuses_once_they_stop_accepting(tmp_path: Path) -> None:
    """uvicorn's supervisor kept the listening socket open while its workers finished:
    the kernel still completed connections that nobody would accept, and reset them
    when the supervisor exited (nginx: 502 for the POST it had written on one)."""
    env = {"SEAU_DATA_DIR": str(tmp_path / "data")}
    with seau_server(env, cwd=tmp_path, args=["--workers", "2"]) as server:
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as held:
            # A kept-alive connection: its worker waits for it before it exits.
            held.sendall(REQUEST)
            assert _response(held).startswith(b"HTTP/1.1 200")
            server.process.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            assert server.process.poll() is None, "gone before its connection closed"
            try:
                late = socket.create_connection(("127.0.0.1", port), timeout=2)
            except ConnectionRefusedError:
                pass
            else:
                late.close()
                pytest.fail("a connection was accepted that no worker will ever serve")
        assert server.process.wait(30) == 0


async def _answer_ok(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


async def test_connections_waiting_to_be_accepted_at_shutdown_are_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Connections the kernel completed and a proxy wrote a request onto, which the
    event loop had not accepted yet when the shutdown began: uvicorn closed the port
    under them, resetting each (nginx: 502 for a POST)."""
    # Put back what `install` replaces once the test is over.
    monkeypatch.setattr(uvicorn.Server, "shutdown", uvicorn.Server.shutdown)
    graceful.install()
    config = uvicorn.Config(
        _answer_ok,
        host="127.0.0.1",
        port=0,
        http=BoundedHttpToolsProtocol,
        log_level="warning",
        timeout_keep_alive=1,
    )
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    await server.startup()
    port = server.servers[0].sockets[0].getsockname()[1]
    # The loop does not turn between these connections and the shutdown: none of
    # them is accepted before it begins.
    clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(5)]
    try:
        for client in clients:
            client.sendall(REQUEST)
        await server.shutdown()
        for client in clients:
            answer = _response(client)
            assert answer.startswith(b"HTTP/1.1 200"), answer
            # Then closed, at the latest when its keep-alive runs out.
            assert client.recv(1) == b""
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        for client in clients:
            client.close()
