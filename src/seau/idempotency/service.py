"""Safe retries (`Idempotency-Key`, draft-ietf-httpapi-idempotency-key-header).

A request that creates something (a file, a resumable upload, a share) may carry
a key chosen by the client. The first request with a key claims it in SQL (an
insert on the owner and the key's hash: one of two instances wins), runs, and
stores its answer in the transaction of its work (`answer_in`); a retry with the
same key from the same owner within a day gets that answer again, without
running, whichever instance it reaches. The same key with a different request is
refused (422 `idempotency_key_reused`), and while the first request runs, so is
its retry (409 `idempotency_key_in_use`).
A request that fails releases its key, so the retry runs. A claim is renewed
while its request runs; one not renewed for `ABANDONED` belongs to a process
that died, and the next request with the key takes it over.

Only a hash of the key is stored, and the answer is sealed (AES-GCM) with a key
derived from the client's: the database alone neither recognises a key nor
reads an answer (a share's answer holds its secret URL).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seau.auth.owner_check import OwnerCheck
from seau.db.base import utcnow
from seau.db.unit import DEFAULT_TIMEOUT_SECONDS, unit_of_work
from seau.errors import IdempotencyKeyInUse, IdempotencyKeyReused, InvalidIdempotencyKey
from seau.idempotency import repository

log = logging.getLogger("seau.idempotency")

KEEP = timedelta(hours=24)
"""How long an answer is replayed; after that the key may be used afresh."""
RENEW_EVERY = timedelta(seconds=20)
"""How often a running request renews its claim..."""
ABANDONED = timedelta(seconds=90)
"""...and how long a claim may go unrenewed before it is taken for a dead process's."""
MAX_KEY_LENGTH = 255
_TRIES = 3


@dataclass(frozen=True, slots=True)
class Answer:
    """A stored answer: what the first request's response was."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class Claim:
    """This request holds the key: it runs, then stores its answer or releases."""

    owner_id: uuid.UUID
    key_hash: str
    token: str
    secret: bytes


def parse_key(value: str) -> str:
    """The key of an `Idempotency-Key` header: a structured-field string
    (``"..."``, as the draft has it) or, as most clients send it, the bare
    token; 1 to 255 visible ASCII characters."""
    key = value.strip()
    if len(key) >= 2 and key.startswith('"') and key.endswith('"'):
        key = key[1:-1]
    if not key or len(key) > MAX_KEY_LENGTH or not all(0x21 <= ord(ch) <= 0x7E for ch in key):
        raise InvalidIdempotencyKey(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} visible ASCII characters"
        )
    return key


def _derive(owner_id: uuid.UUID, key: str) -> tuple[str, bytes]:
    """The stored hash of the key, and the sealing key of its answer: both from a
    digest of the owner and the client's key, by different labels."""
    material = hashlib.sha256(b"seau idempotency\0" + owner_id.bytes + key.encode()).digest()
    key_hash = hashlib.sha256(b"record\0" + material).hexdigest()
    secret = hashlib.sha256(b"answer\0" + material).digest()
    return key_hash, secret


def _seal(claim: Claim, answer: Answer) -> str:
    # `cryptography` is loaded only when an answer is sealed or opened: the
    # serving process does not carry it otherwise.
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    plain = json.dumps(
        {
            "status": answer.status,
            "headers": [list(pair) for pair in answer.headers],
            "body": base64.b64encode(answer.body).decode(),
        },
        separators=(",", ":"),
    ).encode()
    nonce = os.urandom(12)
    sealed = nonce + AESGCM(claim.secret).encrypt(nonce, plain, claim.key_hash.encode())
    return base64.b64encode(sealed).decode()


def _open(secret: bytes, key_hash: str, stored: str) -> Answer:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    sealed = base64.b64decode(stored)
    plain = AESGCM(secret).decrypt(sealed[:12], sealed[12:], key_hash.encode())
    data = json.loads(plain)
    return Answer(
        status=int(data["status"]),
        headers=tuple((str(name), str(value)) for name, value in data["headers"]),
        body=base64.b64decode(data["body"]),
    )


class Idempotency:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        db_timeout: float = DEFAULT_TIMEOUT_SECONDS,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._db_timeout = db_timeout
        self._clock = clock

    async def begin(
        self,
        *,
        owner_id: uuid.UUID,
        key: str,
        fingerprint: str,
        check: OwnerCheck | None = None,
    ) -> Claim | Answer:
        """Claim ``key`` for a request of ``fingerprint``, or the stored answer of
        the first request that had it. Raises `IdempotencyKeyReused` or
        `IdempotencyKeyInUse`. ``check``: a seau sign-in's owner check, made first,
        in the claim's transaction (`InvalidToken` unless it holds)."""
        key_hash, secret = _derive(owner_id, parse_key(key))
        # Keyed too: a fingerprint covers a share's password, among the rest.
        fingerprint = hmac.new(secret, fingerprint.encode(), hashlib.sha256).hexdigest()
        for _ in range(_TRIES):
            now = self._clock()
            token = secrets.token_hex(16)
            claim = Claim(owner_id=owner_id, key_hash=key_hash, token=token, secret=secret)
            async with self._unit() as session:
                if check is not None:
                    await check.confirm(session)
                if await repository.claim(
                    session,
                    owner_id=owner_id,
                    key_hash=key_hash,
                    fingerprint=fingerprint,
                    token=token,
                    now=now,
                ):
                    await session.commit()
                    return claim
            async with self._unit() as session:
                record = await repository.get(session, owner_id=owner_id, key_hash=key_hash)
                if record is None:
                    continue  # released or purged meanwhile: claim it again
                expired = record.created_at < now - KEEP
                if not expired and record.fingerprint != fingerprint:
                    raise IdempotencyKeyReused(
                        "this Idempotency-Key was sent with a different request; "
                        "use a new key for a new request"
                    )
                if not expired and record.claim is None and record.answer is not None:
                    return _open(secret, key_hash, record.answer)
                taken = await repository.take_over(
                    session,
                    owner_id=owner_id,
                    key_hash=key_hash,
                    fingerprint=fingerprint,
                    token=token,
                    now=now,
                    expired_before=now - KEEP,
                    abandoned_before=now - ABANDONED,
                )
                await session.commit()
                if taken:
                    return claim
                if not expired:
                    raise IdempotencyKeyInUse(
                        "a request with this Idempotency-Key is still running; "
                        "retry once it has answered",
                        headers={"Retry-After": "1"},
                    )
        raise IdempotencyKeyInUse(
            "the Idempotency-Key changed hands while it was claimed; retry",
            headers={"Retry-After": "1"},
        )

    async def renew(self, claim: Claim) -> bool:
        """Keep the claim alive while its request runs; False if it was lost."""
        async with self._unit() as session:
            held = await repository.renew(
                session,
                owner_id=claim.owner_id,
                key_hash=claim.key_hash,
                token=claim.token,
                now=self._clock(),
            )
            await session.commit()
            return held

    async def answer_in(self, session: AsyncSession, claim: Claim, answer: Answer) -> bool:
        """Store the answer of the request that holds ``claim``, in ``session``'s
        transaction: the one of the work it answers (no commit here). A process
        killed after that commit leaves the answer, not a claim a retry would take
        over and run again; False when the claim was taken over meanwhile."""
        return await repository.answer(
            session,
            owner_id=claim.owner_id,
            key_hash=claim.key_hash,
            token=claim.token,
            sealed=_seal(claim, answer),
        )

    async def release(self, claim: Claim) -> None:
        """The request failed: a retry with the key runs afresh."""
        async with self._unit() as session:
            await repository.release(
                session, owner_id=claim.owner_id, key_hash=claim.key_hash, token=claim.token
            )
            await session.commit()

    async def purge(self, *, dry_run: bool = False) -> int:
        """For `seau gc`: remove the records older than `KEEP`. Returns how many."""
        now = self._clock()
        async with self._unit() as session:
            if dry_run:
                return await repository.count_old(
                    session, before=now - KEEP, abandoned_before=now - ABANDONED
                )
            removed = await repository.purge(
                session, before=now - KEEP, abandoned_before=now - ABANDONED
            )
            await session.commit()
            return removed

    def _unit(self) -> AbstractAsyncContextManager[AsyncSession]:
        return unit_of_work(self._sessions, timeout_seconds=self._db_timeout)
