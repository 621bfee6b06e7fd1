"""An OpenID provider that misbehaves on purpose: discovery and a JWKS on 127.0.0.1.

`fake_provider` serves ``/.well-known/openid-configuration`` (pointing at its own
``/jwks``) and a JWKS, each answering as the test says; JWKS requests are counted and
can be held back (``jwks_delay``) to stand for a provider that answers slowly::

    with fake_provider() as fake:
        fake.serve_jwks(oidc_provider.jwks())  # a real provider's keys
        fake.jwks_delay = 30.0                 # ...which come too late
        fake.jwks = JUNK_JWKS["not-json"]      # or junk

Used by the verifier's tests (tests/auth/test_oidc.py) and through the app
(tests/api/test_identity.py).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["JUNK_JWKS", "FakeProvider", "fake_provider"]


class FakeProvider:
    """Discovery and a JWKS on 127.0.0.1, each answering as a test says, counted."""

    def __init__(self) -> None:
        self.jwks_requests = 0
        self.discovery: Callable[[str], tuple[int, dict[str, str], bytes]] = self._discovery
        self.jwks: tuple[int, dict[str, str], bytes] = (200, {}, b'{"keys": []}')
        self.jwks_delay = 0.0
        self.released = threading.Event()
        lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    status, headers, body = fake.discovery(fake.issuer)
                elif self.path == "/jwks":
                    with lock:
                        fake.jwks_requests += 1
                    if fake.jwks_delay:
                        fake.released.wait(fake.jwks_delay)
                    status, headers, body = fake.jwks
                else:
                    status, headers, body = 404, {}, b""
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _discovery(self, issuer: str) -> tuple[int, dict[str, str], bytes]:
        document = {"issuer": issuer, "jwks_uri": f"{issuer}/jwks"}
        return 200, {}, json.dumps(document).encode()

    def serve_jwks(self, jwks: dict[str, Any]) -> None:
        self.jwks = (200, {}, json.dumps(jwks).encode())


@contextmanager
def fake_provider() -> Iterator[FakeProvider]:
    fake = FakeProvider()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.released.set()
        fake.server.shutdown()
        fake.server.server_close()
        thread.join(timeout=5)


JUNK_JWKS = {
    "not-json": (200, {}, b"<html>hello</html>"),
    "no-keys-list": (200, {}, b'{"keys": "none"}'),
    "array": (200, {}, b"[1, 2, 3]"),
    "unusable-keys": (
        200,
        {},
        json.dumps(
            {
                "keys": [
                    {"kty": "RSA", "kid": "a", "n": "!!!", "e": "AQAB"},
                    {"kty": "oct", "kid": "b", "k": "c2VjcmV0"},
                    {"kty": "EC", "kid": "c", "crv": "P-384", "x": "AA", "y": "AA"},
                    {"kty": "OKP", "kid": "d", "crv": "X25519", "x": "AA"},
                    "a string",
                    {"kid": 5},
                ]
            }
        ).encode(),
    ),
    "server-error": (500, {}, b"{}"),
    "redirect": (302, {"Location": "http://127.0.0.1:1/jwks"}, b""),
    "too-large": (200, {}, b'{"keys": [], "pad": "' + b"x" * (1024 * 1024 + 10) + b'"}'),
}
