"""Tokens the application signs itself (HS256 with a shared secret), and the
`Identity` every external token verifier returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# PyJWT as seau.auth.tokens loads it: without `cryptography`, which HS256 does not need.
from seau.auth.tokens import jwt
from seau.errors import InvalidToken, TokenExpired

if TYPE_CHECKING:
    from jwt.types import Options

ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32
MAX_SUBJECT_LENGTH = 255
# A bearer token is a header line; anything longer is not one of ours.
MAX_TOKEN_LENGTH = 16 * 1024


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a verified external token names."""

    subject: str
    email: str | None
    name: str | None


def identity_from_claims(claims: Mapping[str, Any], subject_claim: str) -> Identity:
    """The `Identity` of verified ``claims``; InvalidToken when the subject is missing,
    not a string, empty or longer than 255 characters."""
    subject = claims.get(subject_claim)
    if not isinstance(subject, str) or not 1 <= len(subject) <= MAX_SUBJECT_LENGTH:
        raise InvalidToken(f"the token's {subject_claim!r} claim is not a valid subject")
    email = claims.get("email")
    name = claims.get("name")
    if not isinstance(name, str):
        name = claims.get("preferred_username")
    return Identity(
        subject=subject,
        email=email if isinstance(email, str) else None,
        name=name if isinstance(name, str) else None,
    )


class AppTokenVerifier:
    """Verifies HS256 tokens minted by the application's backend with a shared secret.

    Only HS256 is accepted (``alg: none``, every asymmetric algorithm and the other HMAC
    sizes are refused); ``exp`` is required, ``nbf`` and ``iat`` are checked when present,
    ``iss`` and ``aud`` only when configured (then they are required)."""

    def __init__(
        self,
        *,
        secret: str,
        issuer: str | None = None,
        audience: str | None = None,
        subject_claim: str = "sub",
        leeway_seconds: float = 30.0,
    ) -> None:
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(
                f"the application's JWT secret must be at least {MIN_SECRET_BYTES} bytes"
            )
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self._subject_claim = subject_claim
        self._leeway = leeway_seconds
        required = ["exp", subject_claim]
        if issuer is not None:
            required.append("iss")
        if audience is not None:
            required.append("aud")
        self._options: Options = {
            "require": required,
            "verify_aud": audience is not None,
            "verify_iss": issuer is not None,
        }

    def verify(self, token: str) -> Identity:
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("the token is not valid")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                # Pinning the algorithm list is what stops "alg: none" and
                # algorithm-confusion tokens.
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options=self._options,
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
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise InvalidToken("the token is not valid") from None
        return identity_from_claims(claims, self._subject_claim)
