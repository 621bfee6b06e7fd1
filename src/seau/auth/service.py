"""Accounts and tokens. Knows the database, not HTTP."""

from __future__ import annotations

import re
import uuid

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seau.auth.passwords import hash_password, verify_password
from seau.auth.tokens import TokenSigner
from seau.db.models import User
from seau.errors import EmailTaken, InvalidCredentials, InvalidToken

_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


class AuthService:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], signer: TokenSigner) -> None:
        self._sessions = sessions
        self.signer = signer

    async def create_user(self, *, email: str, password: str, is_admin: bool = False) -> User:
        email = email.strip().lower()
        user = User(
            email=email,
            password_hash=await hash_password(password),
            is_admin=is_admin,
            is_active=True,
            token_version=0,
        )
        async with self._sessions() as session:
            session.add(user)
            try:
                await session.commit()
            except IntegrityError:
                raise EmailTaken() from None
        return user

    async def issue_token(self, *, email: str, password: str) -> str:
        email = email.strip().lower()
        user = None
        # No account's email holds a control character (sign-up refuses them), and
        # PostgreSQL would refuse NUL outright: skip the lookup, keep the timing.
        if not _CONTROL_CHARACTER.search(email):
            async with self._sessions() as session:
                user = await session.scalar(select(User).where(User.email == email))
        valid = await verify_password(user.password_hash if user else None, password)
        if user is None or not valid or not user.is_active:
            raise InvalidCredentials()
        return self.signer.issue(user_id=user.id, version=user.token_version)

    async def user_for_token(self, token: str) -> User:
        claims = self.signer.verify(token)
        async with self._sessions() as session:
            user = await session.get(User, claims.user_id)
        if user is None or not user.is_active or user.token_version != claims.version:
            raise InvalidToken("the token is not valid")
        return user

    async def list_users(self) -> list[User]:
        async with self._sessions() as session:
            return list(await session.scalars(select(User).order_by(User.created_at)))

    async def find_user(self, email: str) -> User | None:
        async with self._sessions() as session:
            return await session.scalar(select(User).where(User.email == email.strip().lower()))

    async def set_active(self, user_id: uuid.UUID, *, active: bool) -> None:
        async with self._sessions() as session:
            await session.execute(update(User).where(User.id == user_id).values(is_active=active))
            await session.commit()

    async def revoke_tokens(self, user_id: uuid.UUID) -> None:
        async with self._sessions() as session:
            await session.execute(
                update(User).where(User.id == user_id).values(token_version=User.token_version + 1)
            )
            await session.commit()
