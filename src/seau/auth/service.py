"""Accounts and tokens. Knows the database, not HTTP."""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager, nullcontext

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seau.auth.emails import normalize_email
from seau.auth.owners import new_usage
from seau.auth.passwords import PasswordHashing, check_new_password
from seau.auth.throttle import SignInGuard, SignUpGuard, client_key
from seau.auth.tokens import TokenSigner
from seau.db.models import User
from seau.db.unit import DEFAULT_TIMEOUT_SECONDS, unit_of_work
from seau.errors import EmailTaken, InvalidCredentials, InvalidEmail

_USERS = User.metadata.tables[User.__tablename__]
_USER_BY_ID = select(*_USERS.columns).where(_USERS.c.id == bindparam("id"))


class AuthService:
    """Accounts, sign-up and sign-in. The throttles and the hashing executor are
    per process (docs/decisions.md); `create_user` is the unthrottled way in, for
    the server-side `seau user create`."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        signer: TokenSigner,
        passwords: PasswordHashing,
        sign_in: SignInGuard | None = None,
        sign_up: SignUpGuard | None = None,
        db_timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self._sessions = sessions
        self._db_timeout = db_timeout
        self.signer = signer
        self.passwords = passwords
        self.sign_in_guard = sign_in or SignInGuard()
        self.sign_up_guard = sign_up or SignUpGuard()

    def _unit(self) -> AbstractAsyncContextManager[AsyncSession]:
        return unit_of_work(self._sessions, timeout_seconds=self._db_timeout)

    async def sign_up(self, *, email: str, password: str, address: str) -> User:
        """A new account for anyone, within the sign-up rates of ``address`` and of
        the process (`TooManySignUps`)."""
        email = normalize_email(email)
        check_new_password(password)
        # Refused requests cost nothing: no hash, no allowance used.
        with self.passwords.slot() as hashing:
            self.sign_up_guard.admit(address)
            password_hash = await hashing.hash(password)
        return await self._insert(email=email, password_hash=password_hash, is_admin=False)

    async def create_user(self, *, email: str, password: str, is_admin: bool = False) -> User:
        email = normalize_email(email)
        check_new_password(password)
        with self.passwords.slot() as hashing:
            password_hash = await hashing.hash(password)
        return await self._insert(email=email, password_hash=password_hash, is_admin=is_admin)

    async def _insert(self, *, email: str, password_hash: str, is_admin: bool) -> User:
        user_id = uuid.uuid4()
        user = User(
            id=user_id,
            # What its tokens name; owners from other tokens have theirs.
            subject=str(user_id),
            email=email,
            password_hash=password_hash,
            is_admin=is_admin,
            is_active=True,
            token_version=0,
        )
        async with self._unit() as session:
            session.add(user)
            try:
                await session.flush()
                # Its quota usage row, with it: the first uploads need not make it.
                session.add(new_usage(user_id))
                await session.commit()
            except IntegrityError:
                raise EmailTaken() from None
        return user

    async def issue_token(self, *, email: str, password: str, address: str) -> str:
        """A token for the right email and password; `InvalidCredentials` otherwise,
        after the same work. `TooManyAttempts` while the address or the account is
        in its backoff or has its whole allowance in flight; `PasswordHashingBusy`
        when the hashing queue is full.

        The account is throttled under its canonical email, before anything costs
        (the lookup, the hash), and, once found, under the id the database resolved:
        however an email is spelled, every string that reaches one account shares
        that account's allowance.
        """
        try:
            canonical: str | None = normalize_email(email)
        except InvalidEmail:
            # No account has such an email (sign-up refuses it): no lookup; the
            # password is still verified, and the answer is a wrong password's.
            canonical = None
        accounts = self.sign_in_guard.accounts
        with (
            self.sign_in_guard.addresses.attempt(client_key(address), clear_on_success=False),
            accounts.attempt(f"email:{canonical or email}"),
            self.passwords.slot() as hashing,
        ):
            user = None if canonical is None else await self.find_user(canonical)
            with accounts.attempt(f"id:{user.id}") if user else nullcontext():
                valid = await hashing.verify(user.password_hash if user else None, password)
                if user is None or not valid or not user.is_active:
                    raise InvalidCredentials()
                return self.signer.issue(user_id=user.id, version=user.token_version)

    async def get_owner(self, owner_id: uuid.UUID) -> User | None:
        async with self._unit() as session:
            found = (await session.execute(_USER_BY_ID, {"id": owner_id})).first()
        return None if found is None else User(**found._asdict())

    async def list_users(self) -> list[User]:
        async with self._unit() as session:
            return list(await session.scalars(select(User).order_by(User.created_at)))

    async def find_user(self, email: str) -> User | None:
        """The account of ``email`` (any spelling of it); None for none or for an
        email no account can have."""
        try:
            canonical = normalize_email(email)
        except InvalidEmail:
            return None
        async with self._unit() as session:
            return await session.scalar(select(User).where(User.email == canonical))

    async def set_active(self, user_id: uuid.UUID, *, active: bool) -> None:
        await self._update(user_id, is_active=active)

    async def revoke_tokens(self, user_id: uuid.UUID) -> None:
        await self._update(user_id, token_version=User.token_version + 1)

    async def delete_user(self, user_id: uuid.UUID) -> None:
        """Remove the account row; its files must be gone first (`FileService.purge_owner`)."""
        async with self._unit() as session:
            await session.execute(delete(User).where(User.id == user_id))
            await session.commit()

    async def _update(self, user_id: uuid.UUID, **values: object) -> None:
        async with self._unit() as session:
            await session.execute(update(User).where(User.id == user_id).values(**values))
            await session.commit()
