"""Sign-in throttling: exponential backoff after repeated failures.

Failures are counted per account email and per client address. After
``free_attempts`` failures, each further attempt must wait ``base * 2**extra``
seconds (capped), and is refused with 429 until then. A success clears the
account's count. State is per process: with several instances an attacker gets
each instance's allowance, which still bounds guessing to a few tries a minute.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from seau.errors import SeauError


class TooManyAttempts(SeauError):
    status = 429
    code = "too_many_attempts"
    title = "Too many failed sign-in attempts"

    def __init__(self, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(f"try again in {seconds} s", headers={"Retry-After": str(seconds)})


@dataclass
class _Entry:
    failures: int
    blocked_until: float


class SignInThrottle:
    def __init__(
        self,
        *,
        free_attempts: int = 5,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._free = free_attempts
        self._base = base_delay
        self._max = max_delay
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def check(self, *keys: str) -> None:
        """Raise `TooManyAttempts` if any key is in its backoff period."""
        now = self._clock()
        waits = [e.blocked_until - now for k in keys if (e := self._entries.get(k)) is not None]
        longest = max(waits, default=0.0)
        if longest > 0:
            raise TooManyAttempts(longest)

    def failed(self, *keys: str) -> None:
        now = self._clock()
        for key in keys:
            entry = self._entries.pop(key, None) or _Entry(failures=0, blocked_until=0.0)
            entry.failures += 1
            extra = entry.failures - self._free
            if extra >= 0:
                entry.blocked_until = now + min(self._max, self._base * 2**extra)
            self._entries[key] = entry
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._entries.pop(key, None)


class SignInGuard:
    """Accounts get few free failures; an address, which many users may share
    behind one NAT, gets many more."""

    def __init__(self, *, account_free: int = 5, address_free: int = 50) -> None:
        self.accounts = SignInThrottle(free_attempts=account_free)
        self.addresses = SignInThrottle(free_attempts=address_free)

    def check(self, *, account: str, address: str) -> None:
        self.accounts.check(account)
        self.addresses.check(address)

    def failed(self, *, account: str, address: str) -> None:
        self.accounts.failed(account)
        self.addresses.failed(address)

    def succeeded(self, *, account: str) -> None:
        self.accounts.succeeded(account)
