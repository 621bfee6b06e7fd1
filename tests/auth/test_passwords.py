from __future__ import annotations

from argon2 import PasswordHasher

from seau.auth.passwords import hash_password, verify_password


async def test_hashes_use_the_owasp_argon2id_profile() -> None:
    hashed = await hash_password("correct horse")
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert await verify_password(hashed, "correct horse")
    assert not await verify_password(hashed, "wrong horse")


async def test_hashes_made_with_other_parameters_still_verify() -> None:
    older = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4).hash("kept")
    assert await verify_password(older, "kept")
    assert not await verify_password(older, "lost")


async def test_an_unknown_account_never_verifies() -> None:
    assert not await verify_password(None, "seau-dummy-password")
    assert not await verify_password("not a hash", "anything")
