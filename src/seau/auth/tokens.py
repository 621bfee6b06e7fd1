"""Signed bearer tokens (JWT, HS256) that expire and carry a revocable version."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class TokenSigner:
    secret: str
    ttl: timedelta

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

    def verify(self, token: str) -> TokenClaims:
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
            return TokenClaims(user_id=uuid.UUID(claims["sub"]), version=int(claims["ver"]))
        except jwt.ExpiredSignatureError:
            raise TokenExpired("the token has expired") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise InvalidToken("the token is not valid") from None
