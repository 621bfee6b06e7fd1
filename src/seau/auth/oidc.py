"""OpenID Connect access tokens: verification against the provider's published keys.

`OidcVerifier` reads ``{issuer}/.well-known/openid-configuration``, checks that its
``issuer`` is exactly the configured one, and fetches the JWKS at its ``jwks_uri``.
A token is accepted when it is a JWT signed with RS256, PS256, ES256 or EdDSA (never
``none``, never an HMAC algorithm) by the JWKS key its ``kid`` names, whose type fits
the algorithm (RSA for RS256/PS256, EC P-256 for ES256, OKP Ed25519 for EdDSA; a key
whose ``use`` is not ``sig`` is skipped), and when ``iss`` (exact), ``aud`` (the
audience, alone or in a list) and ``exp`` (required) and ``nbf`` hold, with a small
leeway. A token without ``kid`` is accepted only when the JWKS has exactly one key.

The keys are cached:

- `start` fetches them in the background; it never raises and never waits for the
  provider, so seau starts while the provider is down. Verifications that arrive
  before the first fetch has succeeded wait for it (at most ``http_timeout``).
- They are refreshed in the background every ``keys_ttl / 4`` (15 min by default), so
  rotations and removed keys are picked up; a failed fetch is retried with backoff
  (0.5 s, 1 s, 2 s ... up to ``refetch_interval``).
- A token whose ``kid`` is unknown triggers at most one fetch per ``refetch_interval``
  (any fetch, background or not, counts); concurrent verifications share the fetch
  in flight, and every fetch (discovery and JWKS together) is bounded by
  ``http_timeout``, so no verification waits longer than that.
- While the provider is unreachable or answers junk, the cached keys keep working for
  ``keys_ttl`` (1 h by default) after the last successful fetch; after that they are
  dropped and tokens are refused until the provider answers again. A provider outage
  shorter than ``keys_ttl`` breaks nothing; `status` reports it meanwhile.
- A fetched JWKS with no usable key counts as a failed fetch (the cache is kept);
  one with usable keys replaces the cache, so a key the provider removed is refused.

Only http and https URLs are fetched, no redirect is followed, and each response is
read up to 1 MiB. This module needs the `cryptography` package (PyJWT's asymmetric
algorithms) and httpx: import it only when OIDC is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from seau.auth.app_tokens import MAX_TOKEN_LENGTH, Identity, identity_from_claims
from seau.errors import InvalidToken, TokenExpired

__all__ = ["ALGORITHMS", "Identity", "OidcVerifier"]


def _load_pyjwt_with_cryptography() -> None:
    """Make the next ``import jwt`` a PyJWT with its asymmetric algorithms.

    PyJWT decides at its import whether `cryptography` is there; seau.auth.tokens
    imports it with `cryptography` hidden (to spare HS256-only processes 10 MiB). When
    that happened first, forget that PyJWT so the import below loads a complete one.
    Whoever imported the first keeps it (HS256 works the same with both) and nothing
    mixes the two: this module converts every PyJWT error into seau's own."""
    import cryptography  # noqa: F401  (OIDC needs it: fail here, loudly, if it is missing)

    loaded = sys.modules.get("jwt")
    algorithms = getattr(loaded, "algorithms", None)
    if loaded is not None and not getattr(algorithms, "has_crypto", False):
        for name in [name for name in sys.modules if name == "jwt" or name.startswith("jwt.")]:
            del sys.modules[name]


_load_pyjwt_with_cryptography()
import jwt  # noqa: E402

if not jwt.algorithms.has_crypto:  # pragma: no cover (cryptography was imported above)
    raise ImportError("PyJWT was loaded without cryptography; OIDC tokens cannot be verified")

log = logging.getLogger("seau")

# The algorithm a token may name -> the JWK key type (and curve) that must sign it.
ALGORITHMS: Mapping[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "PS256": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "EdDSA": ("OKP", "Ed25519"),
}
MIN_RSA_BITS = 2048
MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_KEYS = 100
DISCOVERY_PATH = "/.well-known/openid-configuration"
FIRST_RETRY_SECONDS = 0.5


class _FetchError(Exception):
    """Discovery or the JWKS could not be fetched or made no sense; the message says why."""


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str | None
    # One PyJWK per algorithm this key may verify (RSA keys without "alg": RS256 and PS256).
    by_algorithm: Mapping[str, jwt.PyJWK]


@dataclass(frozen=True, slots=True)
class _KeySet:
    keys: tuple[_Key, ...]
    by_kid: Mapping[str, _Key]
    fetched_at: float  # time.monotonic()
    fetched_wall: datetime


class OidcVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        subject_claim: str = "sub",
        leeway_seconds: float = 30.0,
        http_timeout_seconds: float = 5.0,
        refetch_interval_seconds: float = 10.0,
        keys_ttl_seconds: float = 3600.0,
    ) -> None:
        parts = urlsplit(issuer)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"the OIDC issuer must be an http(s) URL, not {issuer!r}")
        if not audience:
            raise ValueError("the OIDC audience must not be empty")
        self.issuer = issuer
        self.audience = audience
        self._subject_claim = subject_claim
        self._leeway = leeway_seconds
        self._http_timeout = http_timeout_seconds
        self._refetch_interval = refetch_interval_seconds
        self._keys_ttl = keys_ttl_seconds
        self._refresh_every = keys_ttl_seconds / 4
        self._discovery_url = issuer.rstrip("/") + DISCOVERY_PATH
        self._jwks_uri: str | None = None
        self._keys: _KeySet | None = None
        self._error: str | None = None  # why the last fetch failed; None once one succeeds
        self._failing_since: datetime | None = None
        self._last_attempt: float | None = None  # time.monotonic() of the last fetch's start
        self._client: httpx.AsyncClient | None = None
        self._inflight: asyncio.Task[None] | None = None
        self._background: asyncio.Task[None] | None = None
        self._fetch_failed = asyncio.Event()  # wakes the background refresh to retry
        self._closed = False

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Begin fetching discovery and the JWKS in the background; returns at once."""
        if self._background is None and not self._closed:
            self._background = asyncio.create_task(self._keep_fresh(), name="oidc-keys")

    async def close(self) -> None:
        self._closed = True
        for task in (self._background, self._inflight):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._background = self._inflight = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def status(self) -> tuple[bool, str]:
        """For /readyz: (ok, detail). Not ok while the last fetch failed, even when
        cached keys still verify tokens (the detail says so)."""
        keys = self._usable()
        if keys is None:
            why = self._error or "the first fetch is in progress"
            if self._keys is not None:
                age = time.monotonic() - self._keys.fetched_at
                return False, f"no keys: the last good fetch was {age:.0f} s ago; {why}"
            return False, f"no keys yet: {why}"
        age = time.monotonic() - keys.fetched_at
        if self._error is not None:
            since = self._failing_since.isoformat(timespec="seconds") if self._failing_since else ""
            return False, (
                f"provider unreachable since {since}: {self._error}; "
                f"using {len(keys.keys)} cached keys fetched {age:.0f} s ago"
            )
        return True, f"{len(keys.keys)} keys, fetched {age:.0f} s ago"

    # -- verification ----------------------------------------------------------------------

    async def verify(self, token: str) -> Identity:
        """The identity a valid access token names; `InvalidToken` or `TokenExpired`
        otherwise (nothing else escapes)."""
        try:
            return await self._verify(token)
        except InvalidToken:
            raise
        except Exception as exc:
            log.warning("OIDC token verification failed unexpectedly: %r", exc)
            raise InvalidToken("the token is not valid") from None

    async def _verify(self, token: str) -> Identity:
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("the token is not valid")
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise InvalidToken("the token is not a JWT") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
            raise InvalidToken("the token's signing algorithm is not accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("the token's key id is not valid")

        key = self._find(kid)
        if key is None and (kid is not None or self._usable() is None):
            await self._refetch_for_unknown_key()
            key = self._find(kid)
        if key is None:
            if self._usable() is None:
                raise InvalidToken("the identity provider's keys are not available")
            if kid is None:
                raise InvalidToken("the token names no key and the provider has several")
            raise InvalidToken("the token's signing key is unknown")
        verifier = key.by_algorithm.get(algorithm)
        if verifier is None:
            raise InvalidToken("the token's key does not fit its algorithm")
        try:
            claims = jwt.decode(
                token,
                verifier,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenExpired("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the token is not valid yet") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("the token is for another issuer") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("the token is for another audience") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"the token has no {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("the token's signature is not valid") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise InvalidToken("the token is not valid") from None
        return identity_from_claims(claims, self._subject_claim)

    def _usable(self) -> _KeySet | None:
        keys = self._keys
        if keys is None or time.monotonic() - keys.fetched_at > self._keys_ttl:
            return None
        return keys

    def _find(self, kid: str | None) -> _Key | None:
        keys = self._usable()
        if keys is None:
            return None
        if kid is None:
            return keys.keys[0] if len(keys.keys) == 1 else None
        return keys.by_kid.get(kid)

    async def _refetch_for_unknown_key(self) -> None:
        """Join the fetch in flight, or start one unless one started less than
        ``refetch_interval`` ago."""
        if self._closed:
            return
        inflight = self._inflight
        if inflight is None or inflight.done():
            recent = self._last_attempt is not None and (
                time.monotonic() - self._last_attempt < self._refetch_interval
            )
            if recent:
                return
        await self._fetch_shared()

    # -- fetching --------------------------------------------------------------------------

    async def _fetch_shared(self) -> None:
        """Run one fetch, or wait for the one in flight. Never raises (but cancellation)."""
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.create_task(self._fetch(), name="oidc-fetch")
        # A caller that goes away (a client disconnecting) does not cancel the fetch
        # others are waiting for.
        await asyncio.shield(self._inflight)

    async def _keep_fresh(self) -> None:
        failures = 0
        while not self._closed:
            await self._fetch_shared()
            if self._error is None:
                failures = 0
                self._fetch_failed.clear()
                # Until the next refresh, or until a fetch for an unknown kid fails.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._refresh_every):
                        await self._fetch_failed.wait()
            if self._error is not None:
                await asyncio.sleep(min(self._refetch_interval, FIRST_RETRY_SECONDS * 2**failures))
                failures += 1

    async def _fetch(self) -> None:
        self._last_attempt = time.monotonic()
        try:
            async with asyncio.timeout(self._http_timeout):
                keys = await self._fetch_keys()
        except (_FetchError, TimeoutError, httpx.HTTPError, OSError) as exc:
            self._failed(_describe(exc, self._http_timeout))
            return
        except Exception as exc:  # junk of a kind not foreseen: still no 500s
            self._failed(f"unexpected error: {exc!r}"[:300])
            return
        self._keys = keys
        if self._error is not None:
            log.info("OIDC provider %s answers again: %d keys", self.issuer, len(keys.keys))
        self._error = None
        self._failing_since = None

    def _failed(self, why: str) -> None:
        if self._error is None:
            log.warning("OIDC provider %s: %s", self.issuer, why)
            self._failing_since = datetime.now(UTC)
        self._error = why
        self._fetch_failed.set()
        # Rediscover next time: the JWKS may have moved.
        self._jwks_uri = None

    async def _fetch_keys(self) -> _KeySet:
        if self._jwks_uri is None:
            discovery = await self._get_json(self._discovery_url, "discovery")
            if not isinstance(discovery, dict):
                raise _FetchError("discovery is not a JSON object")
            if discovery.get("issuer") != self.issuer:
                raise _FetchError(
                    f"discovery names issuer {str(discovery.get('issuer'))[:200]!r}, "
                    f"not {self.issuer!r}"
                )
            self._jwks_uri = self._check_jwks_uri(discovery.get("jwks_uri"))
        document = await self._get_json(self._jwks_uri, "JWKS")
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise _FetchError("the JWKS is not a JSON object with a list of keys")
        keys = _parse_keys(document["keys"])
        if not keys:
            raise _FetchError("the JWKS has no usable signing key")
        by_kid: dict[str, _Key] = {}
        for key in keys:
            if key.kid is not None:
                by_kid.setdefault(key.kid, key)
        return _KeySet(
            keys=tuple(keys),
            by_kid=by_kid,
            fetched_at=time.monotonic(),
            fetched_wall=datetime.now(UTC),
        )

    def _check_jwks_uri(self, uri: object) -> str:
        if not isinstance(uri, str):
            raise _FetchError("discovery has no jwks_uri")
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise _FetchError(f"jwks_uri {uri[:200]!r} is not an http(s) URL")
        if urlsplit(self.issuer).scheme == "https" and parts.scheme != "https":
            raise _FetchError("jwks_uri is plain http for an https issuer")
        return uri

    async def _get_json(self, url: str, what: str) -> Any:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self._http_timeout),
                follow_redirects=False,
                headers={"Accept": "application/json"},
                limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
            )
        async with self._client.stream("GET", url) as response:
            if response.status_code != 200:
                raise _FetchError(f"{what} answered HTTP {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_DOCUMENT_BYTES:
                raise _FetchError(f"{what} is larger than {MAX_DOCUMENT_BYTES} bytes")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise _FetchError(f"{what} is larger than {MAX_DOCUMENT_BYTES} bytes")
        try:
            return json.loads(body)
        except ValueError:
            raise _FetchError(f"{what} is not JSON") from None


def _parse_keys(items: list[Any]) -> list[_Key]:
    """The usable signing keys of a JWKS ``keys`` list; the others are skipped."""
    keys: list[_Key] = []
    for item in items[:MAX_KEYS]:
        key = _parse_key(item)
        if key is not None:
            keys.append(key)
    return keys


def _parse_key(item: Any) -> _Key | None:
    if not isinstance(item, dict):
        return None
    kid = item.get("kid")
    use = item.get("use")
    if (kid is not None and not isinstance(kid, str)) or (use is not None and use != "sig"):
        return None
    if "d" in item:  # a private key published by mistake is not used
        return None
    declared = item.get("alg")
    candidates = [
        algorithm
        for algorithm, (kty, crv) in ALGORITHMS.items()
        if item.get("kty") == kty and (crv is None or item.get("crv") == crv)
    ]
    if declared is not None:
        candidates = [algorithm for algorithm in candidates if algorithm == declared]
    by_algorithm: dict[str, jwt.PyJWK] = {}
    for algorithm in candidates:
        try:
            pyjwk = jwt.PyJWK(item, algorithm=algorithm)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue
        if item.get("kty") == "RSA" and getattr(pyjwk.key, "key_size", 0) < MIN_RSA_BITS:
            continue
        by_algorithm[algorithm] = pyjwk
    if not by_algorithm:
        return None
    return _Key(kid=kid, by_algorithm=by_algorithm)


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, httpx.HTTPError | OSError):
        return f"unreachable ({type(exc).__name__})"
    return str(exc)[:300]
