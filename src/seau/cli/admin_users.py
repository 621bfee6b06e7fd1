"""`seau user disable|delete`: server side, straight to the database and the store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seau.auth.service import AuthService
from seau.auth.tokens import TokenSigner
from seau.db.engine import create_engine, create_sessionmaker
from seau.db.models import FileState, User, UserFile
from seau.preflight import PreflightError, migrate
from seau.settings import Settings
from seau.storage import StorageError, Store

# Object deletions in flight at once; S3 answers each in tens of milliseconds.
DELETE_CONCURRENCY = 16


class NoSuchUser(Exception):
    """No account has this email."""


@dataclass(frozen=True, slots=True)
class Deleted:
    email: str
    files: int
    bytes: int


@dataclass(frozen=True, slots=True)
class _Access:
    auth: AuthService
    sessions: async_sessionmaker[AsyncSession]
    store: Store


@asynccontextmanager
async def _access(settings: Settings) -> AsyncIterator[_Access]:
    from seau.app import s3_options
    from seau.storage.factory import open_store

    await migrate(settings)
    engine = create_engine(settings.effective_database_url)
    try:
        store = open_store(settings.effective_storage_url, s3=s3_options(settings))
    except ValueError as exc:
        await engine.dispose()
        raise PreflightError(f"invalid SEAU_STORAGE_URL: {exc}") from exc
    try:
        sessions = create_sessionmaker(engine)
        signer = TokenSigner(secret=settings.load_secret_key(), ttl=timedelta(seconds=60))
        yield _Access(
            auth=AuthService(sessions=sessions, signer=signer), sessions=sessions, store=store
        )
    finally:
        await store.close()
        await engine.dispose()


async def _lock_out(auth: AuthService, email: str) -> User:
    user = await auth.find_user(email)
    if user is None:
        raise NoSuchUser(f"no account with the email {email.strip().lower()}")
    await auth.set_active(user.id, active=False)
    await auth.revoke_tokens(user.id)
    return user


async def disable_user(settings: Settings, email: str) -> User:
    """No more logins, and every token already issued stops working at once."""
    async with _access(settings) as access:
        return await _lock_out(access.auth, email)


async def delete_user(settings: Settings, email: str) -> Deleted:
    """Remove the account, its files' rows and their objects.

    The account is locked out first, so nothing new arrives and nobody reads a file
    while its object goes. Objects go before rows: if the store fails part way, the
    rows still name every object left, and running the command again finishes.
    """
    async with _access(settings) as access:
        user = await _lock_out(access.auth, email)
        async with access.sessions() as session:
            keys = set(
                await session.scalars(
                    select(UserFile.object_key).where(UserFile.owner_id == user.id)
                )
            )
            size = await session.scalar(
                select(func.coalesce(func.sum(UserFile.size), 0)).where(
                    UserFile.owner_id == user.id, UserFile.state == FileState.READY
                )
            )
        await _delete_objects(access.store, keys)
        async with access.sessions() as session:
            # An upload that had passed authentication before the lock-out may have
            # added a row since; its object goes too, after the rows.
            late = (
                set(
                    await session.scalars(
                        select(UserFile.object_key).where(UserFile.owner_id == user.id)
                    )
                )
                - keys
            )
            await session.execute(delete(UserFile).where(UserFile.owner_id == user.id))
            await session.execute(delete(User).where(User.id == user.id))
            await session.commit()
        await _delete_objects(access.store, late)
        return Deleted(email=user.email, files=len(keys | late), bytes=int(size or 0))


async def _delete_objects(store: Store, keys: set[str]) -> None:
    limit = asyncio.Semaphore(DELETE_CONCURRENCY)

    async def one(key: str) -> None:
        async with limit:
            await store.delete(key)

    try:
        await asyncio.gather(*(one(k) for k in sorted(keys)))
    except StorageError as exc:
        raise PreflightError(
            f"cannot delete the files from the object store: {exc}; the account is "
            "disabled, run the command again to finish"
        ) from exc
