"""Accounts and tokens. Knows the database, not HTTP."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seau.auth.passwords import hash_password, verify_password
from seau.auth.tokens import TokenSigner
from seau.db.guard import DEFAULT_TIMEOUT_SECONDS, unit_of_work
from seau.db.models import User
from seau.errors import EmailTaken, InvalidCredentials, InvalidToken

T = TypeVar("T")

_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
_USERS = User.metadata.tables[User.__tablename__]
_USER_BY_ID = select(*_USERS.columns).where(_USERS.c.id == bindparam("id"))


class AuthService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        signer: TokenSigner,
        db_timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self._sessions = sessions
        self._db_timeout = db_timeout
        self.signer = signer

    async def _db(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        return await unit_of_work(self._sessions, work, limit_seconds=self._db_timeout)

    async def create_user(self, *, email: str, password: str, is_admin: bool = False) -> User:
        user = User(
            email=email.strip().lower(),
            password_hash=await hash_password(password),
            is_admin=is_admin,
            is_active=True,
            token_version=0,
        )

        async def insert(session: AsyncSession) -> None:
            session.add(user)
            try:
                await session.commit()
            except IntegrityError:
                raise EmailTaken() from None

        await self._db(insert)
        return user

    async def issue_token(self, *, email: str, password: str) -> str:
        email = email.strip().lower()
        user = None
        # No account's email holds a control character (sign-up refuses them), and
        # PostgreSQL would refuse NUL outright: skip the lookup, keep the timing.
        if not _CONTROL_CHARACTER.search(email):
            user = await self.find_user(email)
        valid = await verify_password(user.password_hash if user else None, password)
        if user is None or not valid or not user.is_active:
            raise InvalidCredentials()
        return self.signer.issue(user_id=user.id, version=user.token_version)

    async def user_for_token(self, token: str) -> User:
        claims = self.signer.verify(token)

        async def load(session: AsyncSession) -> User | None:
            # Every request runs this: a prepared Core select and a detached User
            # cost a fraction of `session.get` and its identity map.
            found = (await session.execute(_USER_BY_ID, {"id": claims.user_id})).first()
            return None if found is None else User(**found._asdict())

        user = await self._db(load)
        if user is None or not user.is_active or user.token_version != claims.version:
            raise InvalidToken("the token is not valid")
        return user

    async def list_users(self) -> list[User]:
        async def load(session: AsyncSession) -> list[User]:
            return list(await session.scalars(select(User).order_by(User.created_at)))

        return await self._db(load)

    async def find_user(self, email: str) -> User | None:
        async def load(session: AsyncSession) -> User | None:
            return await session.scalar(select(User).where(User.email == email.strip().lower()))

        return await self._db(load)

    async def set_active(self, user_id: uuid.UUID, *, active: bool) -> None:
        await self._update(user_id, is_active=active)

    async def revoke_tokens(self, user_id: uuid.UUID) -> None:
        await self._update(user_id, token_version=User.token_version + 1)

    async def _update(self, user_id: uuid.UUID, **values: object) -> None:
        async def run(session: AsyncSession) -> None:
            await session.execute(update(User).where(User.id == user_id).values(**values))
            await session.commit()

        await self._db(run)
