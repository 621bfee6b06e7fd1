"""Signed bearer tokens (JWT, HS256) that expire and carry a revocable version."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from seau.errors import InvalidToken

ALGORITHM = "HS256"
AUDIENCE = "seau"


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
                options={"require": ["sub", "exp", "iat", "aud", "ver"]},
            )
            return TokenClaims(user_id=uuid.UUID(claims["sub"]), version=int(claims["ver"]))
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise InvalidToken("the token is not valid") from None
