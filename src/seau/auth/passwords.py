"""Argon2id password hashing, run off the event loop (a hash costs tens of ms)."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP's argon2id profile (19 MiB, 2 passes, 1 lane) rather than argon2-cffi's
# default (64 MiB): each sign-in allocates the whole memory cost, so concurrent
# sign-ins would otherwise dominate the server's memory (docs/decisions.md).
# The parameters live in each hash, so older hashes keep verifying.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

# Verified when the email is unknown, so a wrong email costs as much time as a
# wrong password and response times do not reveal which accounts exist.
_DUMMY_HASH = _hasher.hash("seau-dummy-password")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and (
                password_hash is not None
            )
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)
