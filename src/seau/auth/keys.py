"""Long-lived bearer tokens: personal access tokens and service keys.

A token is ``seau_pat_`` or ``seau_sk_`` and 256 random bits; only its SHA-256 is
stored, looked up on every request (so a revoked token is refused by every
instance at once). Knows the database, not HTTP.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seau.auth.principal import PERSONAL_SCOPES, SERVICE_SCOPES
from seau.db.base import utcnow
from seau.db.engine import READ_HERE
from seau.db.models import AccessKey, AccessKeyKind, User
from seau.db.unit import DEFAULT_TIMEOUT_SECONDS, unit_of_work
from seau.errors import InvalidScopes, TokenNotFound

PREFIXES = {AccessKeyKind.PERSONAL: "seau_pat_", AccessKeyKind.SERVICE: "seau_sk_"}
MAX_NAME_LENGTH = 100
MAX_LIFETIME = timedelta(days=366 * 5)
# `last_used_at` is written at most this often per key and process: a write per
# request would cost more than the lookup.
_LAST_USED_EVERY_SECONDS = 60.0

_KEYS = AccessKey.metadata.tables[AccessKey.__tablename__]
_USERS = User.metadata.tables[User.__tablename__]
_BY_HASH = (
    select(
        _KEYS.c.id,
        _KEYS.c.kind,
        _KEYS.c.owner_id,
        _KEYS.c.scopes,
        _KEYS.c.expires_at,
        _USERS.c.subject,
        _USERS.c.is_active,
        _USERS.c.is_admin,
    )
    .select_from(_KEYS.outerjoin(_USERS, _USERS.c.id == _KEYS.c.owner_id))
    .where(_KEYS.c.secret_hash == bindparam("secret_hash"))
    .execution_options(**{READ_HERE: True})  # by a unique key: no trip on SQLite
)


def is_access_key(token: str) -> bool:
    return token.startswith(tuple(PREFIXES.values()))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True, slots=True)
class FoundKey:
    id: uuid.UUID
    kind: AccessKeyKind
    scopes: frozenset[str]
    expires_at: datetime | None
    owner_id: uuid.UUID | None
    subject: str | None
    owner_active: bool
    owner_admin: bool


@dataclass(frozen=True, slots=True)
class NewKey:
    key: AccessKey
    token: str
    """The only time the token is seen: it is not stored."""


def parse_scopes(scopes: Iterable[str], *, allowed: frozenset[str]) -> frozenset[str]:
    given = frozenset(s.strip() for s in scopes if s.strip())
    if not given:
        raise InvalidScopes("give at least one scope")
    unknown = sorted(given - allowed)
    if unknown:
        raise InvalidScopes(
            f"not allowed here: {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})"
        )
    return given


class AccessKeys:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        db_timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self._sessions = sessions
        self._db_timeout = db_timeout
        self._last_used: dict[uuid.UUID, float] = {}

    def _unit(self) -> AbstractAsyncContextManager[AsyncSession]:
        return unit_of_work(self._sessions, timeout_seconds=self._db_timeout)

    async def create(
        self,
        *,
        kind: AccessKeyKind,
        name: str,
        scopes: Iterable[str],
        expires_in: timedelta | None,
        owner_id: uuid.UUID | None = None,
    ) -> NewKey:
        """A new token of ``kind``; personal tokens belong to ``owner_id``."""
        name = name.strip()
        if not 0 < len(name) <= MAX_NAME_LENGTH:
            raise InvalidScopes(f"a name is 1 to {MAX_NAME_LENGTH} characters long")
        allowed = PERSONAL_SCOPES if kind is AccessKeyKind.PERSONAL else SERVICE_SCOPES
        granted = parse_scopes(scopes, allowed=allowed)
        if expires_in is not None and not timedelta(0) < expires_in <= MAX_LIFETIME:
            raise InvalidScopes("expires_in is between 1 second and 5 years")
        if (kind is AccessKeyKind.PERSONAL) != (owner_id is not None):
            raise ValueError("personal tokens have an owner; service keys do not")
        token = PREFIXES[kind] + secrets.token_urlsafe(32)
        now = utcnow()
        key = AccessKey(
            id=uuid.uuid4(),
            kind=kind,
            owner_id=owner_id,
            name=name,
            scopes=" ".join(sorted(granted)),
            secret_hash=hash_token(token),
            created_at=now,
            expires_at=None if expires_in is None else now + expires_in,
        )
        async with self._unit() as session:
            session.add(key)
            await session.commit()
        return NewKey(key=key, token=token)

    async def find(self, token: str) -> FoundKey | None:
        """The key ``token`` is, or None; notes when it was last used."""
        async with self._unit() as session:
            row = (await session.execute(_BY_HASH, {"secret_hash": hash_token(token)})).first()
            if row is None:
                return None
            now = time.monotonic()
            if now - self._last_used.get(row.id, -_LAST_USED_EVERY_SECONDS) >= (
                _LAST_USED_EVERY_SECONDS
            ):
                self._last_used[row.id] = now
                if len(self._last_used) > 10_000:
                    self._last_used.clear()
                await session.execute(
                    update(AccessKey).where(AccessKey.id == row.id).values(last_used_at=utcnow())
                )
                await session.commit()
        return FoundKey(
            id=row.id,
            kind=AccessKeyKind(row.kind),
            scopes=frozenset(row.scopes.split()),
            expires_at=row.expires_at,
            owner_id=row.owner_id,
            subject=row.subject,
            owner_active=bool(row.is_active) if row.owner_id is not None else True,
            owner_admin=bool(row.is_admin) if row.owner_id is not None else False,
        )

    async def list(
        self, *, kind: AccessKeyKind, owner_id: uuid.UUID | None = None
    ) -> list[AccessKey]:
        query = select(AccessKey).where(AccessKey.kind == kind)
        if owner_id is not None:
            query = query.where(AccessKey.owner_id == owner_id)
        async with self._unit() as session:
            return list(await session.scalars(query.order_by(AccessKey.created_at)))

    async def revoke(
        self, key_id: str | uuid.UUID, *, kind: AccessKeyKind, owner_id: uuid.UUID | None = None
    ) -> None:
        """Delete the key: every instance refuses it from the next request. Another
        owner's key is not found (404), as if it did not exist."""
        try:
            parsed = key_id if isinstance(key_id, uuid.UUID) else uuid.UUID(key_id)
        except ValueError:
            raise TokenNotFound() from None
        condition = [AccessKey.id == parsed, AccessKey.kind == kind]
        if owner_id is not None:
            condition.append(AccessKey.owner_id == owner_id)
        async with self._unit() as session:
            result = await session.execute(delete(AccessKey).where(*condition))
            await session.commit()
        if getattr(result, "rowcount", 0) == 0:
            raise TokenNotFound()
