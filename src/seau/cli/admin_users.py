"""`seau user disable|delete`: server side, straight to the database and the store."""

from __future__ import annotations

from dataclasses import dataclass

from seau.auth.service import AuthService
from seau.db.models import User
from seau.errors import NoSuchUser, PreflightError
from seau.preflight import command_parts
from seau.settings import Settings
from seau.storage import StorageError


@dataclass(frozen=True, slots=True)
class Deleted:
    email: str
    files: int
    bytes: int


async def _lock_out(auth: AuthService, email: str) -> User:
    user = await auth.find_user(email)
    if user is None:
        raise NoSuchUser(f"no account with the email {email.strip().lower()}")
    await auth.set_active(user.id, active=False)
    await auth.revoke_tokens(user.id)
    return user


async def disable_user(settings: Settings, email: str) -> User:
    """No more logins, and every token already issued stops working at once."""
    async with command_parts(settings) as parts:
        return await _lock_out(parts.auth, email)


async def delete_user(settings: Settings, email: str) -> Deleted:
    """Remove the account, its files' rows and their objects.

    The account is locked out first, so nothing new arrives and nobody reads a file
    while its object goes; `FileService.purge_owner` says in which order the rest goes.
    """
    async with command_parts(settings) as parts:
        user = await _lock_out(parts.auth, email)
        try:
            purged = await parts.files.purge_owner(user.id)
        except StorageError as exc:
            raise PreflightError(
                f"cannot delete the files from the object store: {exc}; the account is "
                "disabled, run the command again to finish"
            ) from exc
        await parts.auth.delete_user(user.id)
        return Deleted(email=user.email or email, files=purged.files, bytes=purged.bytes)
