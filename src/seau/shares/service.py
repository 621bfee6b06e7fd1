"""Share links: made and revoked by their owner, opened by anyone with the URL.

A link's secret is 256 random bits, shown once; only its SHA-256 is stored, looked up
on every request, so a revoked link (or one whose file was deleted: the row goes
with the file) is refused by every instance from the next request. Downloads are
counted by one conditional UPDATE (`repository.count_download`). Knows the
database and the files service, not HTTP.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
import uuid
from collections import OrderedDict
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seau.auth.keys import hash_token
from seau.auth.passwords import PasswordHashing
from seau.auth.throttle import SignInThrottle
from seau.db.base import utcnow
from seau.db.models import Share, UserFile
from seau.db.unit import DEFAULT_TIMEOUT_SECONDS, InCommit, unit_of_work
from seau.errors import (
    FileNotFound,
    InvalidShare,
    ShareExhausted,
    ShareExpired,
    ShareNotFound,
    SharePasswordRequired,
    WrongSharePassword,
)
from seau.files.service import FileService
from seau.shares import repository
from seau.storage import ByteStream

# `secrets.token_urlsafe(32)`: 43 characters of the URL-safe alphabet.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
# A password that verified is remembered this long per process, so that resuming,
# ranged and parallel downloads cost one argon2 hash, not one each (and are not
# taken for guessing by the throttle, which counts verifications in flight).
_VERIFIED_SECONDS = 600.0
_VERIFIED_MAX = 10_000


@dataclass(frozen=True, slots=True)
class ShareView:
    """A share as its owner sees it (never its secret)."""

    id: uuid.UUID
    file_id: uuid.UUID
    file_name: str
    created_at: datetime
    expires_at: datetime
    max_downloads: int | None
    downloads: int
    has_password: bool

    @classmethod
    def of(cls, share: Share, *, file_name: str) -> ShareView:
        return cls(
            id=share.id,
            file_id=share.file_id,
            file_name=file_name,
            created_at=share.created_at,
            expires_at=share.expires_at,
            max_downloads=share.max_downloads,
            downloads=share.downloads,
            has_password=share.password_hash is not None,
        )


@dataclass(frozen=True, slots=True)
class NewShare:
    view: ShareView
    token: str
    """The only time the secret is seen: it is not stored."""


@dataclass(frozen=True, slots=True)
class Opened:
    """A share anyone may download now, and its ready file."""

    share_id: uuid.UUID
    file: UserFile


class ShareService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        files: FileService,
        passwords: PasswordHashing,
        default_ttl: timedelta,
        max_ttl: timedelta,
        db_timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self._sessions = sessions
        self._files = files
        self._passwords = passwords
        self._max_ttl = max_ttl
        self._default_ttl = min(default_ttl, max_ttl)
        self._db_timeout = db_timeout
        # Wrong passwords, per share: five free, then a doubling wait (per process).
        self._guesses = SignInThrottle(free_attempts=5, base_delay=1.0, decay_seconds=60.0)
        # Keyed by an HMAC under a key that never leaves the process: what is kept
        # in memory cannot be turned back into passwords offline.
        self._verified_key = secrets.token_bytes(32)
        self._verified: OrderedDict[bytes, float] = OrderedDict()

    def _unit(self) -> AbstractAsyncContextManager[AsyncSession]:
        return unit_of_work(self._sessions, timeout_seconds=self._db_timeout)

    # -- the owner's side ----------------------------------------------------

    async def create(
        self,
        *,
        owner_id: uuid.UUID,
        file_id: str,
        expires_in: int | None = None,
        password: str | None = None,
        max_downloads: int | None = None,
        in_commit: InCommit[NewShare] | None = None,
    ) -> NewShare:
        """A new link to the owner's ready file ``file_id`` (404 `file_not_found`).
        ``in_commit`` runs in the transaction that makes the share, before its commit
        (a retry's answer is stored with the share: `seau.idempotent`)."""
        longest = int(self._max_ttl.total_seconds())
        if expires_in is not None and not 0 < expires_in <= longest:
            # Compared as integers first: a huge one would not even make a timedelta.
            raise InvalidShare(f"expires_in is between 1 and {longest} seconds")
        ttl = self._default_ttl if expires_in is None else timedelta(seconds=expires_in)
        if max_downloads is not None and max_downloads < 1:
            raise InvalidShare("max_downloads is at least 1")
        file = await self._files.get(owner_id=owner_id, file_id=file_id)
        password_hash = None
        if password is not None:
            if not password:
                raise InvalidShare("a password is at least one character")
            with self._passwords.slot() as hashing:
                password_hash = await hashing.hash(password)
        token = secrets.token_urlsafe(32)
        now = utcnow()
        share = Share(
            id=uuid.uuid4(),
            file_id=file.id,
            owner_id=owner_id,
            token_hash=hash_token(token),
            password_hash=password_hash,
            expires_at=now + ttl,
            max_downloads=max_downloads,
            downloads=0,
            created_at=now,
        )
        made = NewShare(view=ShareView.of(share, file_name=file.name), token=token)
        try:
            async with self._unit() as session:
                await repository.insert(session, share)
                if in_commit is not None:
                    await in_commit(session, made)
                await session.commit()
        except IntegrityError:
            # The file was deleted meanwhile (the foreign key refused the row).
            raise FileNotFound() from None
        return made

    async def list(self, *, owner_id: uuid.UUID, file_id: str | None = None) -> list[ShareView]:
        """The owner's shares, newest first; of one of their files when ``file_id``
        (404 `file_not_found` when it is not theirs)."""
        parsed = None
        if file_id is not None:
            parsed = (await self._files.get(owner_id=owner_id, file_id=file_id)).id
        async with self._unit() as session:
            rows = await repository.listing(session, owner_id=owner_id, file_id=parsed)
        return [ShareView.of(share, file_name=name) for share, name in rows]

    async def revoke(self, *, owner_id: uuid.UUID, share_id: str) -> None:
        """Delete the share: every instance refuses its link from the next request.
        Another owner's share is not found (404), as if it did not exist."""
        try:
            parsed = uuid.UUID(share_id)
        except ValueError:
            raise ShareNotFound() from None
        async with self._unit() as session:
            removed = await repository.remove(session, owner_id=owner_id, share_id=parsed)
            await session.commit()
        if not removed:
            raise ShareNotFound()

    # -- anyone with the link ------------------------------------------------

    async def open(self, token: str, *, password: str | None) -> Opened:
        """The share ``token`` names, if it may be downloaded now by someone who gives
        ``password``: 404 `share_not_found`, 410 `share_expired` or `share_exhausted`,
        401 `share_password_required` or `share_password_invalid`, 429 after too
        many wrong passwords."""
        if _TOKEN.fullmatch(token) is None:
            raise ShareNotFound()
        async with self._unit() as session:
            found = await repository.by_token_hash(session, hash_token(token))
        if found is None:
            raise ShareNotFound()
        share = found.share
        _check_usable(share)
        if share.password_hash is not None:
            await self._check_password(share.id, share.password_hash, password)
        return Opened(share_id=share.id, file=found.file)

    async def count_download(self, opened: Opened) -> None:
        """Count a download that starts now, or raise why the share no longer allows
        one (another request, maybe on another instance, took the last one)."""
        async with self._unit() as session:
            counted = await repository.count_download(
                session, share_id=opened.share_id, now=utcnow()
            )
            await session.commit()
            if counted:
                return
            share = await repository.by_id(session, opened.share_id)
        if share is None:
            raise ShareNotFound()
        _check_usable(share)
        raise ShareExhausted()

    async def open_content(self, opened: Opened, *, start: int, end: int) -> ByteStream:
        return await self._files.open_content(opened.file, start=start, end=end)

    async def _check_password(
        self, share_id: uuid.UUID, password_hash: str, password: str | None
    ) -> None:
        if password is None:
            raise SharePasswordRequired("give the share's password (HTTP Basic, any user name)")
        key = hmac.digest(
            self._verified_key, share_id.bytes + password.encode("utf-8", "surrogatepass"), "sha256"
        )
        now = time.monotonic()
        if self._verified.get(key, 0.0) > now:
            return
        with self._guesses.attempt(str(share_id)), self._passwords.slot() as hashing:
            if not await hashing.verify(password_hash, password):
                raise WrongSharePassword("wrong password for this share")
        self._verified[key] = now + _VERIFIED_SECONDS
        self._verified.move_to_end(key)
        while len(self._verified) > _VERIFIED_MAX:
            self._verified.popitem(last=False)


def _check_usable(share: Share) -> None:
    if share.expires_at <= utcnow():
        raise ShareExpired()
    if share.max_downloads is not None and share.downloads >= share.max_downloads:
        raise ShareExhausted()
