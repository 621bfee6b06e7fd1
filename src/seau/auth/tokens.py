"""Signed bearer tokens (JWT, HS256) that expire and carry a revocable version."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from seau.errors import InvalidToken, TokenExpired


@contextmanager
def _as_if_not_installed(package: str) -> Iterator[None]:
    """``import package`` fails inside, as if it were not installed (unless it
    is loaded already); it imports normally again afterwards."""
    if package in sys.modules:
        yield
        return
    # None in sys.modules is the documented way to make an import raise
    # ModuleNotFoundError.
    sys.modules[package] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if sys.modules.get(package, False) is None:
            del sys.modules[package]


# PyJWT imports `cryptography`, an optional dependency of its RSA and EC
# algorithms, whenever it is installed: 10 MiB resident (mostly a 7 MiB Rust
# library) in every server process, for HS256 tokens that need only hmac.
# Loaded this way, PyJWT runs as it does where `cryptography` is absent.
# seau.auth.app_tokens (HS256 too) takes PyJWT from here for the same reason;
# seau.auth.oidc, which needs the asymmetric algorithms, loads its own (see there).
with _as_if_not_installed("cryptography"):
    import jwt as jwt  # re-exported for seau.auth.app_tokens

ALGORITHM = "HS256"
AUDIENCE = "seau"
# Checked on verification: a token seau did not issue for itself (another service
# sharing the key by mistake, say) is refused even with the right audience.
ISSUER = "seau"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: uuid.UUID
    version: int


VERIFIED_KEPT = 4096
"""Tokens whose signature and claims a `TokenSigner` has verified and keeps, until
they expire: a client sends the same token with every request, and PyJWT's decoding
was about 5 % of a small download's event-loop time. Past this many, it forgets them
all and starts again (a bound, not a policy: it only costs a verification each)."""


@dataclass(frozen=True, slots=True)
class TokenSigner:
    secret: str
    ttl: timedelta
    _verified: dict[str, tuple[TokenClaims, float]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """Verified tokens: their claims and ``exp`` (seconds since the epoch). Only what
    the signature covers is kept; whether the owner still accepts the token (its
    version, the account's state) is checked against the database on every request."""

    def issue(self, *, user_id: uuid.UUID, version: int, now: datetime | None = None) -> str:
        issued = now or datetime.now(UTC)
        claims = {
            "sub": str(user_id),
            "ver": version,
            "aud": AUDIENCE,
            "iss": ISSUER,
            "iat": issued,
            "exp": issued + self.ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def knows(self, token: str) -> bool:
        """Whether ``token`` was verified here before (and may not have expired)."""
        return token in self._verified

    def verify(self, token: str) -> TokenClaims:
        known = self._verified.get(token)
        if known is not None:
            kept, expires = known
            # As PyJWT decides, without leeway: expired from `exp` on.
            if time.time() < expires:
                return kept
            del self._verified[token]
            raise TokenExpired("the token has expired")
        try:
            # Pinning the algorithm list is what stops "alg: none" and
            # algorithm-confusion tokens.
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["sub", "exp", "iat", "aud", "iss", "ver"]},
            )
            verified = TokenClaims(user_id=uuid.UUID(claims["sub"]), version=int(claims["ver"]))
            expires = float(claims["exp"])
        except jwt.ExpiredSignatureError:
            raise TokenExpired("the token has expired") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise InvalidToken("the token is not valid") from None
        if len(self._verified) >= VERIFIED_KEPT:
            self._verified.clear()
        self._verified[token] = (verified, expires)
        return verified
