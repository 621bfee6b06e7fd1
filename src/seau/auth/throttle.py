"""Throttles of the anonymous routes: sign-in backoff and sign-up rates.

Sign-in: failures are counted per account and per client address. An attempt
*reserves* its place before the password is verified, and failures plus
attempts in flight count against the allowance: ``free_attempts`` concurrent
guesses get at most ``free_attempts`` verifications, the rest 429 at once.
After ``free_attempts`` failures, each further attempt must wait
``base * 2**extra`` seconds (capped), one at a time. A success clears the
account's count. Failures decay: one is forgotten every ``decay`` seconds, so a
burst of failures from one address (a proxy's, a NAT's) does not lock it out for
good, while a steady guesser gets no more than one try per ``decay``.
The address is the real client's: behind a proxy in ``SEAU_TRUSTED_PROXIES``,
the one it forwards (seau.proxy).

Sign-up: a token bucket per address and one for the whole process.

An IPv6 client is counted by its /64 network (`client_key`): one host commonly
holds a whole /64 and can send from any of its 2**64 addresses, so counting single
IPv6 addresses would give it unlimited allowances. IPv4 addresses (also when
IPv4-mapped) count one by one.

State is per process: with several instances an attacker gets each instance's
allowance, which still bounds guessing to a few tries a minute per account.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network, ip_address

from seau.errors import InvalidCredentials, TooManyAttempts, TooManySignUps

# What to answer while the allowance is all in flight: those attempts end within
# a hash's time, well under a second.
_IN_FLIGHT_RETRY_SECONDS = 1.0


IPV6_PREFIX_LENGTH = 64


def client_key(address: str) -> str:
    """Whom a throttle counts for ``address``: the address itself for IPv4 (or an
    IPv4-mapped IPv6 address), the /64 network for IPv6, the string as it is when it
    is no IP address (a Unix socket's peer, "unknown")."""
    try:
        parsed = ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(IPv6Network((parsed, IPV6_PREFIX_LENGTH), strict=False))
    return str(parsed)


@dataclass
class _Entry:
    failures: int = 0
    blocked_until: float = 0.0
    in_flight: int = 0
    # When the failures were last counted or decayed.
    updated: float = 0.0


class SignInThrottle:
    def __init__(
        self,
        *,
        free_attempts: int = 5,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        decay_seconds: float = 60.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._free = free_attempts
        self._decay = decay_seconds
        self._base = base_delay
        self._max = max_delay
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def check(self, key: str) -> None:
        """Raise `TooManyAttempts` if an attempt for ``key`` would be refused now."""
        entry = self._entries.get(key)
        if entry is None:
            return
        self._decayed(entry)
        wait = entry.blocked_until - self._clock()
        if wait > 0:
            raise TooManyAttempts(wait)
        # Once the free failures are used, one attempt at a time, after each backoff.
        if entry.in_flight >= max(self._free - entry.failures, 1):
            raise TooManyAttempts(_IN_FLIGHT_RETRY_SECONDS)

    @contextmanager
    def attempt(self, key: str, *, clear_on_success: bool = True) -> Iterator[None]:
        """Reserve an attempt for ``key`` (or raise `TooManyAttempts`), held while the
        body runs: `InvalidCredentials` from it counts as a failure, success clears
        the count if ``clear_on_success``, anything else just frees the place."""
        self.check(key)
        entry = self._entries.pop(key, None) or _Entry()
        entry.in_flight += 1
        self._entries[key] = entry
        self._evict()
        try:
            yield
        except InvalidCredentials:
            self._finish(key, failed=True)
            raise
        except BaseException:
            self._finish(key, failed=False)
            raise
        self._finish(key, failed=False, clear=clear_on_success)

    def _finish(self, key: str, *, failed: bool, clear: bool = False) -> None:
        entry = self._entries.get(key)
        if entry is None:  # evicted meanwhile
            return
        entry.in_flight = max(0, entry.in_flight - 1)
        if failed:
            self._decayed(entry)
            entry.failures += 1
            extra = entry.failures - self._free
            if extra >= 0:
                entry.blocked_until = self._clock() + min(self._max, self._base * 2**extra)
            self._entries.move_to_end(key)
        elif clear:
            entry.failures = 0
            entry.blocked_until = 0.0
        if entry.in_flight == 0 and entry.failures == 0:
            del self._entries[key]

    def _decayed(self, entry: _Entry) -> None:
        """Forget one failure per ``decay`` seconds since they were last counted."""
        now = self._clock()
        if entry.failures == 0:
            entry.updated = now
            return
        forgotten = int((now - entry.updated) // self._decay)
        if forgotten > 0:
            entry.failures = max(0, entry.failures - forgotten)
            entry.updated += forgotten * self._decay
            if entry.failures < self._free:
                entry.blocked_until = 0.0

    def _evict(self) -> None:
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)


class SignInGuard:
    """Accounts get few free failures, one forgotten a minute; an address, which
    many users may share behind one NAT, gets many more, one forgotten every 6 s."""

    def __init__(
        self,
        *,
        account_free: int = 5,
        address_free: int = 50,
        account_decay_seconds: float = 60.0,
        address_decay_seconds: float = 6.0,
    ) -> None:
        self.accounts = SignInThrottle(
            free_attempts=account_free, decay_seconds=account_decay_seconds
        )
        self.addresses = SignInThrottle(
            free_attempts=address_free, decay_seconds=address_decay_seconds
        )


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimit:
    """A token bucket per key: ``burst`` at once, refilled at ``per_second``."""

    def __init__(
        self,
        *,
        burst: int,
        per_second: float,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._burst = float(burst)
        self._rate = per_second
        self._max_entries = max_entries
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def wait(self, key: str) -> float:
        """Seconds until ``key`` may take a token (0: now)."""
        bucket = self._refilled(key)
        return 0.0 if bucket.tokens >= 1 else (1 - bucket.tokens) / self._rate

    def take(self, key: str) -> None:
        self._refilled(key).tokens -= 1

    def _refilled(self, key: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.pop(key, None) or _Bucket(tokens=self._burst, updated=now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        self._buckets[key] = bucket
        while len(self._buckets) > self._max_entries:
            self._buckets.popitem(last=False)
        return bucket


class SignUpGuard:
    """Sign-ups per client address per hour, and per minute for the whole process;
    0 turns either off."""

    def __init__(
        self,
        *,
        per_address_per_hour: int = 20,
        per_minute: int = 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        hourly = per_address_per_hour
        self._addresses = (
            RateLimit(burst=hourly, per_second=hourly / 3600, clock=clock) if hourly else None
        )
        self._everyone = (
            RateLimit(burst=per_minute, per_second=per_minute / 60, clock=clock)
            if per_minute
            else None
        )

    def admit(self, address: str) -> None:
        """Count a sign-up from ``address``, or raise `TooManySignUps` counting nothing."""
        active: list[tuple[RateLimit, str]] = []
        if self._addresses is not None:
            active.append((self._addresses, client_key(address)))
        if self._everyone is not None:
            active.append((self._everyone, ""))
        wait = max((limit.wait(key) for limit, key in active), default=0.0)
        if wait > 0:
            raise TooManySignUps(wait)
        for limit, key in active:
            limit.take(key)
