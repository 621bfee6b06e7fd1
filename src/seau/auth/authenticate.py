"""One bearer token in, one `Principal` out: whichever of the trusted kinds it is.

- ``seau_pat_…`` / ``seau_sk_…``: a personal access token or a service key,
  looked up by hash.
- A JWT whose (unverified) ``iss`` says which verifier may check it: ``seau``
  (seau's own sign-in, HS256 with the server's key), the identity provider's
  issuer (OpenID Connect, JWKS), or, when the application signs its own tokens,
  any other. The unverified issuer only picks the verifier; that verifier checks
  everything, the issuer included, so a token cannot choose a weaker check.

Knows the database, not HTTP.
"""

from __future__ import annotations

import base64
import binascii
import json
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seau.auth.keys import AccessKeys, is_access_key
from seau.auth.owner_check import CONDITIONS, USERS, OwnerCheck
from seau.auth.owners import check_subject, owner_for
from seau.auth.principal import SIGN_IN_SCOPES, Principal, Scope, Via
from seau.auth.tokens import ISSUER as SEAU_ISSUER
from seau.auth.tokens import TokenSigner
from seau.db.engine import READ_HERE
from seau.db.models import AccessKeyKind
from seau.db.unit import DEFAULT_TIMEOUT_SECONDS, unit_of_work
from seau.errors import InsufficientScope, InvalidToken, TokenExpired

if TYPE_CHECKING:
    from seau.auth.app_tokens import AppTokenVerifier, Identity
    from seau.auth.oidc import OidcVerifier

_SESSION_OWNER = (
    select(USERS.c.subject, USERS.c.is_admin)
    .where(*CONDITIONS)
    .execution_options(**{READ_HERE: True})  # by its key: no trip on SQLite
)
# A JWT's payload is small; a longer one is not a token anyone trusted issued.
_MAX_TOKEN_LENGTH = 16 * 1024


def unverified_issuer(token: str) -> str | None:
    """The ``iss`` a JWT claims, unverified: only to choose who verifies it."""
    if len(token) > _MAX_TOKEN_LENGTH:
        raise InvalidToken("the token is not valid")
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("the token is not valid")
    payload = parts[1]
    try:
        claims: Any = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidToken("the token is not valid") from None
    if not isinstance(claims, dict):
        raise InvalidToken("the token is not valid")
    issuer = claims.get("iss")
    return issuer if isinstance(issuer, str) else None


class Authenticator:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        signer: TokenSigner,
        keys: AccessKeys,
        local_accounts: bool = True,
        oidc: OidcVerifier | None = None,
        oidc_issuer: str | None = None,
        app: AppTokenVerifier | None = None,
        db_timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self._sessions = sessions
        self._signer = signer
        self._keys = keys
        self._local_accounts = local_accounts
        self._oidc = oidc
        self._oidc_issuer = oidc_issuer
        self._app = app
        self._db_timeout = db_timeout

    def _unit(self) -> AbstractAsyncContextManager[AsyncSession]:
        return unit_of_work(self._sessions, timeout_seconds=self._db_timeout)

    async def authenticate(
        self, token: str, *, act_as: str | None = None, fold: bool = False
    ) -> Principal:
        """The caller ``token`` names; with ``act_as`` (the `Seau-Subject` header),
        the subject a service key acts for. `InvalidToken` / `TokenExpired` for a
        token that is not good; `InsufficientScope` for ``act_as`` without
        the ``act-as`` scope.

        With ``fold``, a seau sign-in's owner check is not made here but handed
        over as `Principal.pending`, for the caller's first statement to fold in
        (`seau.auth.owner_check`); every other kind of token is checked in full."""
        if is_access_key(token):
            principal = await self._access_key(token)
        else:
            # With act_as, the 401 of a bad sign-in must come before the 403.
            principal = await self._jwt(token, fold=fold and act_as is None)
        if act_as is None:
            return principal
        if principal.via is not Via.SERVICE or Scope.ACT_AS not in principal.scopes:
            raise InsufficientScope(Scope.ACT_AS, "only a service key may name a Seau-Subject")
        subject = check_subject(act_as)
        async with self._unit() as session:
            owner = await owner_for(session, subject)
        if not owner.is_active:
            raise InvalidToken("the subject is disabled")
        return Principal(
            via=Via.SERVICE,
            scopes=principal.scopes,
            owner_id=owner.id,
            subject=subject,
            is_admin=False,
            key_id=principal.key_id,
            acting_for=True,
        )

    async def _jwt(self, token: str, *, fold: bool) -> Principal:
        # A seau sign-in verified before: no need to parse it for its issuer.
        if self._signer.knows(token):
            return await self._session(token, fold=fold)
        issuer = unverified_issuer(token)
        if issuer == SEAU_ISSUER:
            return await self._session(token, fold=fold)
        identity: Identity
        if self._oidc is not None and issuer == self._oidc_issuer:
            identity = await self._oidc.verify(token)
            via = Via.OIDC
        elif self._app is not None:
            identity = self._app.verify(token)
            via = Via.APP
        else:
            raise InvalidToken("the token's issuer is not trusted here")
        async with self._unit() as session:
            owner = await owner_for(
                session, identity.subject, email=identity.email, name=identity.name
            )
        if not owner.is_active:
            raise InvalidToken("the account is disabled")
        return Principal(
            via=via,
            scopes=SIGN_IN_SCOPES,
            owner_id=owner.id,
            subject=identity.subject,
            is_admin=owner.is_admin,
        )

    async def _session(self, token: str, *, fold: bool) -> Principal:
        if not self._local_accounts:
            raise InvalidToken("seau's own accounts are turned off here")
        claims = self._signer.verify(token)
        check = OwnerCheck(user_id=claims.user_id, version=claims.version)
        if fold:
            # Whether the owner is an admin is not known without the row: a folding
            # route reaches the owner's files and nothing else. The subject of a
            # seau account is its id (`AuthService._insert`, migration 0005).
            return Principal(
                via=Via.SESSION,
                scopes=SIGN_IN_SCOPES,
                owner_id=claims.user_id,
                subject=str(claims.user_id),
                pending=check,
            )
        async with self._unit() as session:
            # Every request runs this: a prepared Core select, no ORM identity map.
            found = (await session.execute(_SESSION_OWNER, check.params())).first()
        if found is None:
            raise InvalidToken("the token is not valid")
        return Principal(
            via=Via.SESSION,
            scopes=SIGN_IN_SCOPES,
            owner_id=claims.user_id,
            subject=found.subject,
            is_admin=bool(found.is_admin),
        )

    async def _access_key(self, token: str) -> Principal:
        found = await self._keys.find(token)
        if found is None:
            raise InvalidToken("the token is not valid (revoked, or never issued)")
        if found.expires_at is not None and found.expires_at <= datetime.now(UTC):
            raise TokenExpired("the token has expired")
        if found.kind is AccessKeyKind.PERSONAL:
            if not found.owner_active:
                raise InvalidToken("the account is disabled")
            return Principal(
                via=Via.PERSONAL,
                scopes=found.scopes,
                owner_id=found.owner_id,
                subject=found.subject,
                is_admin=False,
                key_id=found.id,
            )
        return Principal(
            via=Via.SERVICE,
            scopes=found.scopes,
            owner_id=None,
            subject=None,
            is_admin=Scope.ADMIN in found.scopes,
            key_id=found.id,
        )
