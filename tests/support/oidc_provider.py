"""A real OpenID provider for tests: oauth2-mock-server (npm, unmodified) in a subprocess.

``tests/support/oidc/provider.mjs`` starts the package on 127.0.0.1; `OidcProvider`
runs it, waits until its discovery document answers, and asks its own token endpoint
for access tokens (client-credentials grant; the launcher's beforeTokenSigning hook
merges the claims the test names), so every token is signed by the provider::

    def test_something(oidc_provider: OidcProvider) -> None:
        token = oidc_provider.token("user-1", audience="seau", alg="ES256")
        new_kid = oidc_provider.rotate("RS256")      # a new key in the JWKS
        oidc_provider.sign_in_as("user-2", expires_in=8)  # who a browser signs in as
        oidc_provider.stop(); oidc_provider.start()  # same port, same keys

The package comes from ``tests/support/oidc/package-lock.json`` (``make test`` runs
``npm ci`` there). Without node or the package the fixture fails in CI (``CI`` set)
and skips elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

PACKAGE_DIR = Path(__file__).parent / "oidc"
LAUNCHER = PACKAGE_DIR / "provider.mjs"
START_TIMEOUT_SECONDS = 30.0
DEFAULT_AUDIENCE = "seau"


class ProviderUnavailable(RuntimeError):
    """node or oauth2-mock-server is missing, or the provider did not answer in time."""


class OidcProvider:
    """One provider process on a fixed local port; stop and start keep the port and keys."""

    def __init__(
        self, *, algorithms: tuple[str, ...] = ("RS256", "ES256"), port: int | None = None
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port if port is not None else _free_port(self.host)
        self.algorithms = algorithms
        self._dir = Path(tempfile.mkdtemp(prefix="seau-oidc-"))
        self._keys_file = self._dir / "keys.json"
        self._log = self._dir / "provider.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        """The issuer URL, exactly as the provider writes it in ``iss`` and discovery."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, *, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Start the provider and wait for its discovery document; raises `ProviderUnavailable`."""
        if self.running:
            return
        node = shutil.which("node")
        if node is None:
            raise ProviderUnavailable("node is not installed")
        if not (PACKAGE_DIR / "node_modules" / "oauth2-mock-server").is_dir():
            raise ProviderUnavailable(
                f"oauth2-mock-server is not installed: run `npm ci --prefix {PACKAGE_DIR}`"
            )
        command = [node, str(LAUNCHER), "--port", str(self.port), "--host", self.host]
        command += ["--keys", str(self._keys_file), "--algs", ",".join(self.algorithms)]
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.running:
            try:
                answer = httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=1.0)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            if answer.status_code == 200 and answer.json().get("issuer") == self.issuer:
                return
            time.sleep(0.05)
        tail = self._log_tail()
        self.stop()
        raise ProviderUnavailable(
            f"the OpenID provider did not answer on {self.issuer} within {timeout:.0f}s; "
            f"log tail: {tail!r}"
        )

    def stop(self) -> None:
        """Terminate the provider (killing it if it lingers); a no-op when stopped."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    def close(self) -> None:
        """Stop and forget the keys."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    # -- keys ---------------------------------------------------------------------------

    def keys(self) -> list[dict[str, str]]:
        """``[{"kid", "alg"}]``, oldest first."""
        listed: list[dict[str, str]] = self._request("GET", "/_test/keys").json()
        return listed

    def kid(self, alg: str = "RS256") -> str:
        """The newest key of ``alg`` (the one `token` signs with by default)."""
        for key in reversed(self.keys()):
            if key["alg"] == alg:
                return key["kid"]
        raise LookupError(f"the provider has no {alg} key")

    def rotate(self, alg: str = "RS256") -> str:
        """Add a new ``alg`` key (a new kid) to the JWKS; new tokens of ``alg`` use it."""
        created = self._request("POST", "/_test/keys", params={"alg": alg})
        kid: str = created.json()["kid"]
        return kid

    def jwks(self) -> dict[str, Any]:
        """The public JWKS, as the provider serves it."""
        jwks: dict[str, Any] = self._request("GET", "/jwks").json()
        return jwks

    def public_jwk(self, kid: str) -> dict[str, Any]:
        for key in self.jwks()["keys"]:
            if key.get("kid") == kid:
                return dict(key)
        raise LookupError(f"no key {kid} in the JWKS")

    # -- tokens -------------------------------------------------------------------------

    def token(
        self,
        subject: str | None = "user-1",
        *,
        audience: str | list[str] | None = DEFAULT_AUDIENCE,
        alg: str = "RS256",
        kid: str | None = None,
        expires_in: int | None = 300,
        scope: str | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> str:
        """An access token signed by the provider through its token endpoint.

        ``kid`` (default: the newest ``alg`` key) picks the signing key; ``claims`` are
        merged last (a None value removes the claim: ``{"exp": None}``). The provider
        sets ``iss``, ``iat``, ``exp`` and ``nbf`` itself."""
        payload: dict[str, Any] = {}
        if subject is not None:
            payload["sub"] = subject
        if audience is not None:
            payload["aud"] = audience
        if expires_in is not None:
            payload["exp"] = int(time.time()) + expires_in
        payload.update(claims or {})
        form = {"grant_type": "client_credentials", "claims": json.dumps(payload)}
        if scope is not None:
            form["scope"] = scope
        answer = self._request("POST", "/token", params={"kid": kid or self.kid(alg)}, data=form)
        token: str = answer.json()["access_token"]
        return token

    def sign_in_as(
        self,
        subject: str,
        *,
        audience: str = DEFAULT_AUDIENCE,
        expires_in: int = 300,
        claims: Mapping[str, Any] | None = None,
    ) -> None:
        """Who signs in next through ``/authorize`` (the provider asks nobody): the
        access tokens of the authorization_code and refresh_token grants name
        ``subject`` for ``audience``, carry ``claims`` and expire after ``expires_in``
        seconds. The provider then insists on PKCE (S256) and on refresh tokens it
        issued, each used once."""
        person = {"sub": subject, "aud": audience, **(claims or {})}
        self._request("POST", "/_test/person", json={"claims": person, "expires_in": expires_in})

    # -- internals ----------------------------------------------------------------------

    def _request(self, method: str, path: str, **options: Any) -> httpx.Response:
        with httpx.Client(base_url=self.issuer, timeout=10.0) as http:
            return http.request(method, path, **options).raise_for_status()

    def _log_tail(self) -> str:
        try:
            return self._log.read_text(errors="replace")[-800:]
        except OSError:
            return ""


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


def _unavailable(message: str) -> None:
    """The provider cannot run: a failure in CI, a skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI requires it)", pytrace=False)
    pytest.skip(message)


@contextmanager
def running_oidc_provider(
    *, algorithms: tuple[str, ...] = ("RS256", "ES256")
) -> Iterator[OidcProvider]:
    """A private provider for one test or fixture, stopped (and its keys deleted) on exit."""
    provider = OidcProvider(algorithms=algorithms)
    try:
        provider.start()
    except ProviderUnavailable as exc:
        provider.close()
        _unavailable(str(exc))
    try:
        yield provider
    finally:
        provider.close()


@pytest.fixture
def oidc_provider() -> Iterator[OidcProvider]:
    """A provider of its own for each test (with one RS256 and one ES256 key): a test
    may rotate its keys or stop and start it."""
    with running_oidc_provider() as provider:
        yield provider
