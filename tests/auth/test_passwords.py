from __future__ import annotations

import asyncio
import threading

import pytest
from argon2 import PasswordHasher

from seau.auth import passwords
from seau.auth.passwords import (
    PasswordHashing,
    hash_password,
    verify_password,
)
from seau.errors import PasswordHashingBusy


def test_hashes_use_the_owasp_argon2id_profile() -> None:
    hashed = hash_password("correct horse")
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert verify_password(hashed, "correct horse")
    assert not verify_password(hashed, "wrong horse")


def test_hashes_made_with_other_parameters_still_verify() -> None:
    older = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4).hash("kept")
    assert verify_password(older, "kept")
    assert not verify_password(older, "lost")


def test_an_unknown_account_never_verifies() -> None:
    assert not verify_password(None, "seau-dummy-password")
    assert not verify_password("not a hash", "anything")


async def test_hashing_runs_on_its_own_threads_and_a_full_queue_is_refused_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    threads: set[str] = set()

    def slow_verify(password_hash: str | None, password: str) -> bool:
        threads.add(threading.current_thread().name)
        release.wait(10)
        return False

    monkeypatch.setattr(passwords, "verify_password", slow_verify)
    hashing = PasswordHashing(workers=2, queue=3)

    async def one() -> bool:
        with hashing.slot() as slot:
            return await slot.verify(None, "x")

    try:
        running = [asyncio.create_task(one()) for _ in range(5)]
        await asyncio.sleep(0.1)
        assert hashing.in_use == 5
        with pytest.raises(PasswordHashingBusy) as caught, hashing.slot():
            pass
        assert caught.value.status == 503
        assert caught.value.headers["Retry-After"] == "2"
        release.set()
        assert await asyncio.gather(*running) == [False] * 5
        assert hashing.in_use == 0
        assert threads
        assert all(name.startswith("seau-argon2") for name in threads)
        assert len(threads) <= 2
    finally:
        release.set()
        hashing.close()
