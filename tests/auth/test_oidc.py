"""OpenID Connect access tokens against a real provider (oauth2-mock-server from npm).

Every token here is signed by the provider through its token endpoint, except the
forgeries, which are built by hand on purpose. The small local HTTP server of
tests/support/fake_oidc.py stands in for a provider that answers slowly, answers junk,
or must have its requests counted.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

from seau.auth.app_tokens import Identity
from seau.auth.oidc import OidcVerifier
from seau.errors import InvalidToken, TokenExpired
from tests.support.fake_oidc import JUNK_JWKS, fake_provider
from tests.support.oidc_provider import OidcProvider, running_oidc_provider

AUDIENCE = "seau"
# Every refusal must come quicker than this (no fetch is slower than http_timeout).
BOUND_SECONDS = 2.0


@asynccontextmanager
async def verifier_for(issuer: str, **options: Any) -> AsyncIterator[OidcVerifier]:
    settings: dict[str, Any] = {"audience": AUDIENCE, "http_timeout_seconds": 1.0}
    settings.update(options)
    verifier = OidcVerifier(issuer=issuer, **settings)
    await verifier.start()
    try:
        yield verifier
    finally:
        await verifier.close()


async def until_status(verifier: OidcVerifier, ok: bool, *, within: float = 10.0) -> str:
    deadline = time.monotonic() + within
    while True:
        current, detail = verifier.status()
        if current is ok and "in progress" not in detail:  # a fetch has ended
            return detail
        assert time.monotonic() < deadline, f"status stayed {verifier.status()}"
        await asyncio.sleep(0.02)


async def refused(
    verifier: OidcVerifier, token: str, error: type[InvalidToken] = InvalidToken
) -> str:
    """The detail of the refusal, which must be exactly ``error`` and come in bounded time."""
    started = time.monotonic()
    with pytest.raises(InvalidToken) as raised:
        await verifier.verify(token)
    assert time.monotonic() - started < BOUND_SECONDS
    assert type(raised.value) is error, raised.value
    return raised.value.detail


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], *, hmac_key: bytes | None) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    if hmac_key is None:
        return signing_input + "."
    signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def good_claims(provider: OidcProvider) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": provider.issuer, "aud": AUDIENCE, "sub": "mallory", "iat": now, "exp": now + 300}


def pem_of(jwk: dict[str, Any]) -> bytes:
    def number(field: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(jwk[field] + "=" * (-len(jwk[field]) % 4)))

    public = RSAPublicNumbers(number("e"), number("n")).public_key()
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# -- the provider's own tokens -------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_the_providers_tokens_are_accepted(oidc_provider: OidcProvider, alg: str) -> None:
    async with verifier_for(oidc_provider.issuer) as verifier:
        token = oidc_provider.token(
            "auth0|5f7c8ec7c33c6c004bbafe82",
            alg=alg,
            audience=["https://api.example.com", AUDIENCE],
            claims={"email": "ada@example.com", "name": "Ada"},
        )
        identity = await verifier.verify(token)
        assert identity == Identity(
            subject="auth0|5f7c8ec7c33c6c004bbafe82", email="ada@example.com", name="Ada"
        )
        ok, detail = verifier.status()
        assert ok, detail
        assert detail.startswith("2 keys")


async def test_the_configured_subject_claim_names_the_owner(oidc_provider: OidcProvider) -> None:
    async with verifier_for(oidc_provider.issuer, subject_claim="uid") as verifier:
        token = oidc_provider.token("ignored", claims={"uid": "firebase-uid", "email": 3})
        assert await verifier.verify(token) == Identity("firebase-uid", None, None)
        await refused(verifier, oidc_provider.token("no-uid-claim"))


async def test_a_subject_longer_than_255_characters_is_refused(
    oidc_provider: OidcProvider,
) -> None:
    async with verifier_for(oidc_provider.issuer) as verifier:
        assert (await verifier.verify(oidc_provider.token("s" * 255))).subject == "s" * 255
        await refused(verifier, oidc_provider.token("s" * 256))
        await refused(verifier, oidc_provider.token(""))


async def test_a_key_rotation_is_picked_up_without_a_restart(oidc_provider: OidcProvider) -> None:
    async with verifier_for(oidc_provider.issuer, refetch_interval_seconds=0.2) as verifier:
        old = oidc_provider.token("ada", alg="ES256")
        assert (await verifier.verify(old)).subject == "ada"
        await asyncio.sleep(0.3)  # the refetch interval since the first fetch
        new_kid = oidc_provider.rotate("ES256")
        new = oidc_provider.token("ada", alg="ES256")
        assert json.loads(base64.urlsafe_b64decode(new.split(".")[0] + "=="))["kid"] == new_kid
        assert (await verifier.verify(new)).subject == "ada"
        assert (await verifier.verify(old)).subject == "ada"  # still published
        assert verifier.status()[1].startswith("3 keys")


async def test_the_provider_down_cached_keys_keep_working(oidc_provider: OidcProvider) -> None:
    async with verifier_for(oidc_provider.issuer, refetch_interval_seconds=0.2) as verifier:
        token = oidc_provider.token("ada", alg="RS256")
        assert (await verifier.verify(token)).subject == "ada"
        unknown = oidc_provider.token("ada", kid=oidc_provider.rotate("RS256"))
        oidc_provider.stop()
        await asyncio.sleep(0.3)

        detail = await refused(verifier, unknown)  # one refetch, refused at once
        assert "unknown" in detail
        ok, detail = verifier.status()
        assert not ok
        assert "unreachable since" in detail
        assert "using 2 cached keys" in detail
        assert (await verifier.verify(token)).subject == "ada"

        oidc_provider.start()  # same port, same keys
        await until_status(verifier, ok=True)
        assert (await verifier.verify(unknown)).subject == "ada"


async def test_start_up_does_not_wait_for_a_provider_that_is_down() -> None:
    provider = OidcProvider()
    try:
        async with verifier_for(provider.issuer, refetch_interval_seconds=0.2) as verifier:
            started = time.monotonic()
            await verifier.start()
            assert time.monotonic() - started < 0.1
            detail = await until_status(verifier, ok=False)
            await asyncio.sleep(0.1)
            assert verifier.status()[1].startswith("no keys yet: unreachable")
            try:
                provider.start()
            except Exception as exc:  # no node: the other tests report it
                pytest.skip(str(exc))
            await until_status(verifier, ok=True)
            assert (await verifier.verify(provider.token("ada"))).subject == "ada"
            assert detail
    finally:
        provider.close()


# -- hostile tokens ------------------------------------------------------------------------


async def test_hostile_tokens_are_refused(oidc_provider: OidcProvider) -> None:
    rsa_kid, ec_kid = oidc_provider.kid("RS256"), oidc_provider.kid("ES256")
    claims = good_claims(oidc_provider)
    now = int(time.time())
    async with verifier_for(oidc_provider.issuer) as verifier:
        # alg none, with and without a kid.
        for header in ({"alg": "none", "kid": rsa_kid}, {"alg": "none"}):
            assert "algorithm" in await refused(verifier, forge(header, claims, hmac_key=None))
        # Algorithm confusion: HS256 keyed with the provider's public RSA key.
        public = pem_of(oidc_provider.public_jwk(rsa_kid))
        for key in (public, json.dumps(oidc_provider.public_jwk(rsa_kid)).encode()):
            confused = forge({"alg": "HS256", "typ": "JWT", "kid": rsa_kid}, claims, hmac_key=key)
            assert "algorithm" in await refused(verifier, confused)
        # A valid signature with the wrong issuer or audience.
        evil = oidc_provider.token(claims={"iss": "http://127.0.0.1:1"})
        assert "issuer" in await refused(verifier, evil)
        assert "audience" in await refused(verifier, oidc_provider.token(audience="other-api"))
        assert "'aud'" in await refused(verifier, oidc_provider.token(audience=None))
        # Expired (beyond the leeway), not yet valid, without exp.
        expired = oidc_provider.token(claims={"iat": now - 600, "exp": now - 120})
        await refused(verifier, expired, TokenExpired)
        early = oidc_provider.token(alg="ES256", claims={"nbf": now + 600})
        assert "not valid yet" in await refused(verifier, early)
        no_exp = oidc_provider.token(expires_in=None, claims={"exp": None})
        assert "'exp'" in await refused(verifier, no_exp)
        # A kid nobody published; kids whose key type does not fit the algorithm.
        ec_token = oidc_provider.token(alg="ES256")
        head, body, signature = ec_token.split(".")
        for header, expected in (
            ({"alg": "ES256", "kid": "no-such-key"}, "unknown"),
            ({"alg": "ES256", "kid": rsa_kid}, "does not fit"),
            ({"alg": "RS256", "kid": ec_kid}, "does not fit"),
            ({"alg": "PS256", "kid": ec_kid}, "does not fit"),
            ({"alg": "EdDSA", "kid": rsa_kid}, "does not fit"),
            ({"alg": "ES256"}, "names no key"),  # two keys published: kid required
        ):
            forged = f"{b64(json.dumps(header).encode())}.{body}.{signature}"
            assert expected in await refused(verifier, forged)
        # A flipped signature byte.
        flipped = signature[:-3] + ("A" if signature[-3] != "A" else "B") + signature[-2:]
        assert "signature" in await refused(verifier, f"{head}.{body}.{flipped}")
        # Junk.
        for junk in ("", "abc", "a.b.c", "x" * 20_000, "é.é.é", f"{head}.{body}", "..."):
            await refused(verifier, junk)
        assert verifier.status()[0]


async def test_a_token_without_kid_is_accepted_when_the_provider_has_one_key() -> None:
    with running_oidc_provider(algorithms=("RS256",)) as provider:
        kid = provider.kid("RS256")
        token = provider.token("ada")
        head, body, signature = token.split(".")
        header = json.loads(base64.urlsafe_b64decode(head + "=="))
        assert header.pop("kid") == kid
        kidless = f"{b64(json.dumps(header).encode())}.{body}.{signature}"
        async with verifier_for(provider.issuer) as verifier:
            # The signature covers the header: changing it breaks the signature.
            assert "signature" in await refused(verifier, kidless)
            assert (await verifier.verify(token)).subject == "ada"


# -- providers that misbehave: a small local server --------------------------------------


async def test_a_slow_jwks_is_bounded_by_the_http_timeout(oidc_provider: OidcProvider) -> None:
    with fake_provider() as fake:
        fake.serve_jwks(oidc_provider.jwks())
        fake.jwks_delay = 30.0
        token = oidc_provider.token("ada")
        async with verifier_for(fake.issuer, http_timeout_seconds=0.5) as verifier:
            started = time.monotonic()
            results = await asyncio.gather(
                *(verifier.verify(token) for _ in range(10)), return_exceptions=True
            )
            assert time.monotonic() - started < 1.5
            assert all(type(result) is InvalidToken for result in results), results
            ok, detail = verifier.status()
            assert not ok
            assert "no answer within 0.5 s" in detail


@pytest.mark.parametrize("answer", list(JUNK_JWKS), ids=list(JUNK_JWKS))
async def test_a_junk_jwks_gives_no_keys(oidc_provider: OidcProvider, answer: str) -> None:
    with fake_provider() as fake:
        fake.jwks = JUNK_JWKS[answer]
        async with verifier_for(fake.issuer) as verifier:
            detail = await until_status(verifier, ok=False)
            assert detail.startswith("no keys yet: ")
            assert "progress" not in detail
            await refused(verifier, oidc_provider.token("ada"))


async def test_a_jwks_whose_keys_are_not_for_signing_gives_no_keys(
    oidc_provider: OidcProvider,
) -> None:
    with fake_provider() as fake:
        jwks = oidc_provider.jwks()
        fake.serve_jwks({"keys": [{**key, "use": "enc"} for key in jwks["keys"]]})
        async with verifier_for(fake.issuer) as verifier:
            assert "no usable signing key" in await until_status(verifier, ok=False)


@pytest.mark.parametrize("problem", ["wrong-issuer", "not-json", "jwks-not-http", "no-jwks"])
async def test_a_junk_discovery_gives_no_keys(oidc_provider: OidcProvider, problem: str) -> None:
    def discovery(issuer: str) -> tuple[int, dict[str, str], bytes]:
        document: dict[str, Any] = {"issuer": issuer, "jwks_uri": f"{issuer}/jwks"}
        if problem == "wrong-issuer":
            document["issuer"] = issuer + "/"
        elif problem == "jwks-not-http":
            document["jwks_uri"] = "file:///etc/passwd"
        elif problem == "no-jwks":
            del document["jwks_uri"]
        else:
            return 200, {}, b"not json"
        return 200, {}, json.dumps(document).encode()

    with fake_provider() as fake:
        fake.serve_jwks(oidc_provider.jwks())
        fake.discovery = discovery
        async with verifier_for(fake.issuer) as verifier:
            detail = await until_status(verifier, ok=False)
            assert "no keys yet" in detail
            await refused(verifier, oidc_provider.token("ada"))
            assert fake.jwks_requests == 0


async def test_unknown_kids_trigger_at_most_one_refetch_per_interval(
    oidc_provider: OidcProvider,
) -> None:
    with fake_provider() as fake:
        fake.serve_jwks(oidc_provider.jwks())
        fake.jwks_delay = 0.2  # every unknown kid arrives while the refetch is in flight
        claims = good_claims(oidc_provider)
        async with verifier_for(fake.issuer, refetch_interval_seconds=1.0) as verifier:
            await until_status(verifier, ok=True)
            assert fake.jwks_requests == 1
            await asyncio.sleep(1.1)

            def unknown(i: int) -> str:
                header = {"alg": "RS256", "kid": f"unknown-{i}"}
                return forge(header, claims, hmac_key=b"x")

            for _ in range(2):
                started = time.monotonic()
                results = await asyncio.gather(
                    *(verifier.verify(unknown(i)) for i in range(50)), return_exceptions=True
                )
                assert time.monotonic() - started < BOUND_SECONDS
                assert all(type(result) is InvalidToken for result in results), results
                assert fake.jwks_requests == 2  # one refetch for the first 50, none after


# -- PyJWT and cryptography in one process -------------------------------------------------

DEFAULT_APP_WITHOUT_CRYPTOGRAPHY = """
import sys
from seau.app import create_app
from seau.settings import Settings

create_app(Settings(data_dir=sys.argv[1], storage_url="memory://", secret_key="k" * 64))
print(sorted(m for m in sys.modules if m.split(".")[0] == "cryptography"))
"""

TOKENS_FIRST_THEN_OIDC = """
import asyncio, sys, uuid
from datetime import timedelta
from seau.auth.tokens import TokenSigner

signer = TokenSigner(secret="k" * 40, ttl=timedelta(minutes=5))
user = uuid.uuid4()
assert signer.verify(signer.issue(user_id=user, version=1)).user_id == user
assert "cryptography" not in sys.modules

from seau.auth.app_tokens import AppTokenVerifier
from seau.auth.oidc import OidcVerifier

async def main() -> str:
    verifier = OidcVerifier(issuer=sys.argv[1], audience="seau")
    await verifier.start()
    try:
        return (await verifier.verify(sys.argv[2])).subject
    finally:
        await verifier.close()

print(asyncio.run(main()))
# HS256 still works, both ways, after the asymmetric PyJWT was loaded.
assert signer.verify(signer.issue(user_id=user, version=1)).user_id == user
app = AppTokenVerifier(secret="s" * 32)
import jwt
assert app.verify(jwt.encode({"sub": "x", "exp": 2**40}, "s" * 32)).subject == "x"
"""


def run_python(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_default_app_loads_no_cryptography(tmp_path: Path) -> None:
    assert run_python(DEFAULT_APP_WITHOUT_CRYPTOGRAPHY, str(tmp_path)) == "[]"


def test_oidc_verifies_rs256_where_tokens_loaded_pyjwt_first(oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token("ada", alg="RS256")
    assert run_python(TOKENS_FIRST_THEN_OIDC, oidc_provider.issuer, token) == "ada"
