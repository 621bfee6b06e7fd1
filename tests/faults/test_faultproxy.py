"""The fault proxy does what the scenarios rely on, against a plain echo server."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.faultproxy import FaultProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.server.received += data  # type: ignore[attr-defined]
            self.request.sendall(data)


@pytest.fixture
def echo() -> Iterator[socketserver.ThreadingTCPServer]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    server.received = b""  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(echo: socketserver.ThreadingTCPServer) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", echo.server_address[1]) as proxy:
        yield proxy


def _connect(proxy: FaultProxy) -> socket.socket:
    return socket.create_connection((proxy.host, proxy.port), timeout=2)


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_passthrough_relays_both_ways(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        sock.sendall(b"hello")
        assert _read(sock, 5) == b"hello"
    assert proxy.bytes_upstream == 5
    assert proxy.bytes_downstream == 5


def test_stall_holds_bytes_until_passthrough(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        proxy.stall()
        sock.sendall(b"held")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(10)
        proxy.passthrough()
        sock.settimeout(2)
        assert _read(sock, 4) == b"held"


def test_refuse_resets_open_connections_and_refuses_new_ones(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        proxy.refuse()
        with pytest.raises(ConnectionResetError):
            sock.recv(10)
    with pytest.raises(ConnectionRefusedError):
        _connect(proxy)
    proxy.passthrough()
    with _connect(proxy) as sock:
        sock.sendall(b"back")
        assert _read(sock, 4) == b"back"


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_cut_after_forwards_exactly_n_bytes_then_closes_once(
    proxy: FaultProxy, echo: socketserver.ThreadingTCPServer, reset: bool
) -> None:
    with _connect(proxy) as sock:
        proxy.cut_after(3, direction="downstream", reset=reset)
        sock.sendall(b"abcdef")
        if reset:
            with pytest.raises(ConnectionResetError):
                _read(sock, 6)
        else:
            assert _read(sock, 6) == b"abc"
    assert not proxy.armed
    with _connect(proxy) as sock:
        sock.sendall(b"again")
        assert _read(sock, 5) == b"again"


def test_lose_reply_delivers_the_request_but_never_the_answer(
    proxy: FaultProxy, echo: socketserver.ThreadingTCPServer
) -> None:
    with _connect(proxy) as sock:
        proxy.lose_reply_to(b"COMMIT", then_refuse=True, delay=0.2)
        sock.sendall(b"COMMIT;")
        with pytest.raises(ConnectionResetError):
            _read(sock, 7)
    deadline = time.monotonic() + 2
    while echo.received != b"COMMIT;" and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.01)
    assert echo.received == b"COMMIT;"  # type: ignore[attr-defined]
    with pytest.raises(ConnectionRefusedError):
        _connect(proxy)
