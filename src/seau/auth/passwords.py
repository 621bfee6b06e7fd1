"""Passwords: the policy for new ones, and argon2id on a small executor of its own.

A hash costs ~64 ms of CPU and 19 MiB, and anyone may ask for one (sign-up, and a
sign-in verifies even for an unknown email). On the default thread pool, which the
local store uses for every read, write and fsync, a flood of them queued file
transfers behind it (a 5-byte download took 21.7 s during 300 sign-ups). Hashing
therefore runs on `PasswordHashing`'s own few threads, and a request that would
wait behind more than ``queue`` others is refused at once (503
`password_hashing_busy`, Retry-After) instead of piling up.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from importlib import resources
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from seau.errors import PasswordHashingBusy, WeakPassword

T = TypeVar("T")

MIN_LENGTH = 10

# OWASP's argon2id profile (19 MiB, 2 passes, 1 lane) rather than argon2-cffi's
# default (64 MiB): each sign-in allocates the whole memory cost, so concurrent
# sign-ins would otherwise dominate the server's memory (docs/decisions.md).
# The parameters live in each hash, so older hashes keep verifying.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

# Verified when the email is unknown, so a wrong email costs as much time as a
# wrong password and response times do not reveal which accounts exist.
_DUMMY_HASH = _hasher.hash("seau-dummy-password")


def hash_password(password: str) -> str:
    """Blocking: call it through `PasswordHashing`."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Blocking: call it through `PasswordHashing`. None (no such account) verifies
    against a dummy hash, so that it costs the same, and is never true."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and (
            password_hash is not None
        )
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _common_passwords() -> frozenset[str]:
    # Loaded on the first sign-up, not at import: ~0.2 MiB a process that never
    # signs anyone up (the CLI's client commands) does not need.
    text = resources.files("seau.auth").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(text.split("\n")) - {""}


def check_new_password(password: str) -> None:
    """Raise `WeakPassword` saying why ``password`` may not be set.

    No composition rules (NIST SP 800-63B): length, and not one of the most common
    passwords. Surrounding spaces do not count towards the length.
    """
    core = password.strip()
    if len(core) < MIN_LENGTH:
        raise WeakPassword(f"the password must have at least {MIN_LENGTH} characters")
    if core.lower() in _common_passwords():
        raise WeakPassword("the password is one of the most commonly used; choose another")


class PasswordHashing:
    """argon2id on ``workers`` threads, with at most ``queue`` requests waiting.

    Work goes through a `slot`, taken before anything else the request does (such as
    looking up the account), so a refused request has cost nothing.
    """

    def __init__(self, *, workers: int = 1, queue: int = 16) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="seau-argon2")
        self._capacity = workers + queue
        # Touched only on the event loop's thread: no lock needed.
        self._taken = 0

    @property
    def in_use(self) -> int:
        return self._taken

    @contextmanager
    def slot(self) -> Iterator[HashingSlot]:
        """A place in line, or `PasswordHashingBusy` at once when there is none."""
        if self._taken >= self._capacity:
            raise PasswordHashingBusy(
                "the server is hashing as many passwords as it can; try again shortly"
            )
        self._taken += 1
        try:
            yield HashingSlot(self)
        finally:
            self._taken -= 1

    async def _run(self, function: Callable[[], T]) -> T:
        # A request cancelled while its work is still queued cancels that work too
        # (wrap_future cancels the executor's future, which then never runs).
        return await asyncio.wrap_future(self._executor.submit(function))

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


class HashingSlot:
    """What a slot of `PasswordHashing` allows: hash and verify."""

    def __init__(self, owner: PasswordHashing) -> None:
        self._owner = owner

    async def hash(self, password: str) -> str:
        return await self._owner._run(lambda: hash_password(password))

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return await self._owner._run(lambda: verify_password(password_hash, password))
