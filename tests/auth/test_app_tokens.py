"""Tokens the application signs itself: HS256 with a shared secret, nothing else."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from seau.auth.app_tokens import AppTokenVerifier, Identity
from seau.errors import InvalidToken, TokenExpired

SECRET = "an application secret of 32+ bytes, at least"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"sub": "user_2abc", "iat": now, "exp": now + 300}
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def sign(payload: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_token_signed_with_the_secret_is_accepted() -> None:
    verifier = AppTokenVerifier(secret=SECRET)
    token = sign(claims(email="ada@example.com", name="Ada", aud="anything", iss="anyone"))
    assert verifier.verify(token) == Identity(
        subject="user_2abc", email="ada@example.com", name="Ada"
    )
    # preferred_username stands in for a missing name; non-string claims are dropped.
    token = sign(claims(email=7, preferred_username="ada"))
    assert verifier.verify(token) == Identity(subject="user_2abc", email=None, name="ada")


def test_the_configured_subject_claim_names_the_owner() -> None:
    verifier = AppTokenVerifier(secret=SECRET, subject_claim="uid")
    assert verifier.verify(sign(claims(uid="firebase-uid-1"))).subject == "firebase-uid-1"
    with pytest.raises(InvalidToken):
        verifier.verify(sign(claims()))  # `sub` is not `uid`


@pytest.mark.parametrize(
    "subject", ["", "x" * 256, 12, None], ids=["empty", "too-long", "number", "missing"]
)
def test_a_subject_that_cannot_be_an_owner_is_refused(subject: object) -> None:
    payload = claims()
    payload["sub"] = subject
    if subject is None:
        del payload["sub"]
    with pytest.raises(InvalidToken):
        AppTokenVerifier(secret=SECRET).verify(sign(payload))


def test_a_subject_of_255_characters_is_accepted() -> None:
    assert AppTokenVerifier(secret=SECRET).verify(sign(claims(sub="s" * 255))).subject == "s" * 255


def test_a_wrong_secret_is_refused() -> None:
    with pytest.raises(InvalidToken) as raised:
        AppTokenVerifier(secret=SECRET).verify(
            sign(claims(), secret="another secret, also 32 bytes or more")
        )
    assert type(raised.value) is InvalidToken


def test_alg_none_is_refused() -> None:
    token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}."
    with pytest.raises(InvalidToken):
        AppTokenVerifier(secret=SECRET).verify(token)


def test_an_rs256_token_is_refused() -> None:
    # Signed with cryptography itself: PyJWT may be loaded without its RSA support here.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signing_input = f"{b64({'alg': 'RS256', 'typ': 'JWT'})}.{b64(claims())}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    token = f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    with pytest.raises(InvalidToken):
        AppTokenVerifier(secret=SECRET).verify(token)


def test_other_hmac_sizes_are_refused() -> None:
    secret = SECRET * 2  # long enough for HS512
    token = jwt.encode(claims(), secret, algorithm="HS512")
    with pytest.raises(InvalidToken):
        AppTokenVerifier(secret=secret).verify(token)


def test_a_token_without_exp_is_refused() -> None:
    with pytest.raises(InvalidToken) as raised:
        AppTokenVerifier(secret=SECRET).verify(sign(claims(exp=None)))
    assert type(raised.value) is InvalidToken


def test_an_expired_token_is_refused_as_expired_after_the_leeway() -> None:
    now = int(time.time())
    verifier = AppTokenVerifier(secret=SECRET, leeway_seconds=30)
    assert verifier.verify(sign(claims(iat=now - 100, exp=now - 10))).subject == "user_2abc"
    with pytest.raises(TokenExpired):
        verifier.verify(sign(claims(iat=now - 100, exp=now - 60)))


def test_a_token_not_valid_yet_is_refused() -> None:
    with pytest.raises(InvalidToken) as raised:
        AppTokenVerifier(secret=SECRET).verify(sign(claims(nbf=int(time.time()) + 600)))
    assert type(raised.value) is InvalidToken


def test_issuer_and_audience_are_checked_when_configured() -> None:
    verifier = AppTokenVerifier(secret=SECRET, issuer="https://api.example.com", audience="seau")
    good = claims(iss="https://api.example.com", aud=["other", "seau"])
    assert verifier.verify(sign(good)).subject == "user_2abc"
    for bad in (
        {**good, "iss": "https://evil.example.com"},
        {**good, "aud": "other"},
        {key: value for key, value in good.items() if key != "iss"},
        {key: value for key, value in good.items() if key != "aud"},
    ):
        with pytest.raises(InvalidToken):
            verifier.verify(sign(bad))


@pytest.mark.parametrize("junk", ["", "abc", "a.b.c", "x" * 20_000, "é.é.é"])
def test_junk_is_refused(junk: str) -> None:
    with pytest.raises(InvalidToken):
        AppTokenVerifier(secret=SECRET).verify(junk)


def test_a_short_secret_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        AppTokenVerifier(secret="s" * 31)
    AppTokenVerifier(secret="s" * 32)
