"""The application's users: a real OpenID provider's tokens and the application's own
HS256 tokens open seau, on the three databases, with owners made on first use."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select

from seau.app import create_app
from seau.auth.tokens import ISSUER as SEAU_ISSUER
from seau.db.models import User
from seau.settings import Settings
from tests.api.helpers import assert_problem
from tests.conftest import TEST_SECRET
from tests.support.databases import Kind, scratch_database
from tests.support.fake_oidc import JUNK_JWKS, fake_provider
from tests.support.oidc_provider import OidcProvider, running_oidc_provider

KINDS: list[Kind] = ["sqlite", "mysql", "postgresql"]
APP_SECRET = "the-application-backend-secret-" + "z" * 16
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    """One provider for the tests that neither rotate nor stop it."""
    with running_oidc_provider() as running:
        yield running


@asynccontextmanager
async def seau(tmp_path: Path, kind: Kind = "sqlite", **settings: Any) -> AsyncIterator[Any]:
    with scratch_database(kind, tmp_path) as url:
        config = Settings(
            data_dir=tmp_path,
            database_url=url,
            storage_url=(tmp_path / "objects").as_uri(),
            secret_key=TEST_SECRET,
            **settings,
        )
        app = create_app(config)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://seau.test"
            ) as client,
        ):
            client.app = app  # type: ignore[attr-defined]
            yield client


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(claims: dict[str, Any], alg: str, kid: str, key: bytes) -> str:
    """A token PyJWT refuses to make: `alg: none`, or HMAC keyed with a public key."""
    header = _b64(json.dumps({"alg": alg, "typ": "JWT", "kid": kid}).encode())
    body = _b64(json.dumps(claims).encode())
    signing_input = f"{header}.{body}".encode()
    signature = b"" if alg == "none" else hmac.new(key, signing_input, hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(signature)}"


def _public_pem(jwk: dict[str, Any]) -> bytes:
    key = jwt.PyJWK(jwk).key
    assert isinstance(key, rsa.RSAPublicKey)
    return key.public_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def owners(client: httpx.AsyncClient) -> int:
    sessions = client.app.state.seau.sessions  # type: ignore[attr-defined]
    async with sessions() as session:
        count: int = await session.scalar(select(func.count()).select_from(User))
    return count


async def upload(client: httpx.AsyncClient, headers: dict[str, str], name: str, data: bytes) -> str:
    response = await client.post(f"/api/v1/files?name={name}", content=data, headers=headers)
    assert response.status_code == 201, response.text
    file_id: str = response.json()["id"]
    return file_id


@pytest.mark.parametrize("kind", KINDS)
async def test_provider_tokens_open_seau_and_make_the_owner_on_first_use(
    provider: OidcProvider, tmp_path: Path, kind: Kind
) -> None:
    async with seau(tmp_path, kind, oidc_issuer=provider.issuer, oidc_audience="seau") as client:
        for alg in ("RS256", "ES256"):
            subject = f"auth0|{alg}-user"
            token = provider.token(
                subject, alg=alg, claims={"email": f"{alg}@example.com", "name": "Ada"}
            )
            me = (await client.get("/api/v1/users/me", headers=bearer(token))).json()
            assert me["subject"] == subject
            assert me["via"] == "oidc"
            assert me["email"] == f"{alg}@example.com"
            assert me["name"] == "Ada"
            assert set(me["scopes"]) == {"files:read", "files:write", "tokens"}

            file_id = await upload(client, bearer(token), "photo.jpg", b"bytes of " + alg.encode())
            listed = (await client.get("/api/v1/files", headers=bearer(token))).json()
            assert [item["id"] for item in listed["items"]] == [file_id]
            content = await client.get(f"/api/v1/files/{file_id}/content", headers=bearer(token))
            assert content.content == b"bytes of " + alg.encode()
            # A second token for the same subject is the same owner.
            again = provider.token(subject, alg=alg)
            assert (await client.get("/api/v1/users/me", headers=bearer(again))).json()["id"] == me[
                "id"
            ]
        assert await owners(client) == 2
        ready = (await client.get("/readyz")).json()
        assert ready["identity"].startswith("ok: ")


async def _every_route_answers_404_to_another_subject(
    client: httpx.AsyncClient, mine: dict[str, str], theirs: dict[str, str]
) -> None:
    file_id = await upload(client, mine, "private.txt", b"secret")
    created = await client.post(
        "/api/v1/uploads",
        headers={**mine, **TUS, "Upload-Length": "10", "Upload-Metadata": ""},
    )
    assert created.status_code == 201, created.text
    upload_path = httpx.URL(created.headers["location"]).path
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/api/v1/files/{file_id}", {}),
        ("GET", f"/api/v1/files/{file_id}/content", {}),
        ("HEAD", f"/api/v1/files/{file_id}/content", {}),
        ("PATCH", f"/api/v1/files/{file_id}", {"json": {"name": "mine-now.txt"}}),
        ("DELETE", f"/api/v1/files/{file_id}", {}),
        ("HEAD", upload_path, {"headers": TUS}),
        (
            "PATCH",
            upload_path,
            {
                "headers": {
                    **TUS,
                    "Upload-Offset": "0",
                    "Content-Type": "application/offset+octet-stream",
                },
                "content": b"0123456789",
            },
        ),
        ("DELETE", upload_path, {"headers": TUS}),
    ]
    for method, path, extra in requests:
        options = dict(extra)
        headers = {**theirs, **options.pop("headers", {})}
        response = await client.request(method, path, headers=headers, **options)
        assert response.status_code == 404, (method, path, response.text)
    listed = (await client.get("/api/v1/files", headers=theirs)).json()
    assert listed["items"] == []
    # Still all there for the owner.
    assert (await client.get(f"/api/v1/files/{file_id}/content", headers=mine)).content == (
        b"secret"
    )
    status = await client.head(upload_path, headers={**mine, **TUS})
    assert status.headers["upload-offset"] == "0"


@pytest.mark.parametrize("kind", KINDS)
async def test_two_subjects_never_see_each_others_files(
    provider: OidcProvider, tmp_path: Path, kind: Kind
) -> None:
    async with seau(tmp_path, kind, oidc_issuer=provider.issuer, oidc_audience="seau") as client:
        # Subjects differ only in case: two people.
        alice = bearer(provider.token("auth0|Alice"))
        other = bearer(provider.token("auth0|alice"))
        await _every_route_answers_404_to_another_subject(client, alice, other)


def app_token(subject: str, **claims: Any) -> str:
    now = datetime.now(UTC)
    payload = {"sub": subject, "iat": now, "exp": now + timedelta(minutes=5), **claims}
    return jwt.encode(
        {k: v for k, v in payload.items() if v is not None}, APP_SECRET, algorithm="HS256"
    )


@pytest.mark.parametrize("kind", KINDS)
async def test_tokens_the_application_signs_open_seau(tmp_path: Path, kind: Kind) -> None:
    async with seau(
        tmp_path,
        kind,
        app_jwt_secret=APP_SECRET,
        app_jwt_issuer="https://api.example.com",
        app_jwt_audience="seau",
    ) as client:
        good = app_token("42", iss="https://api.example.com", aud="seau")
        me = (await client.get("/api/v1/users/me", headers=bearer(good))).json()
        assert (me["subject"], me["via"]) == ("42", "app")
        await upload(client, bearer(good), "a.txt", b"a")
        before = await owners(client)
        for bad, code in (
            (app_token("43", iss="https://evil.example.com", aud="seau"), "token_invalid"),
            (app_token("43", iss="https://api.example.com", aud="other"), "token_invalid"),
            (app_token("43", iss="https://api.example.com"), "token_invalid"),
            (
                app_token(
                    "43",
                    iss="https://api.example.com",
                    aud="seau",
                    exp=datetime.now(UTC) - timedelta(minutes=5),
                ),
                "token_expired",
            ),
            (
                jwt.encode(
                    {"sub": "43", "iss": "https://api.example.com", "aud": "seau"},
                    "another-secret-" + "q" * 32,
                    algorithm="HS256",
                ),
                "token_invalid",
            ),
        ):
            response = await client.get("/api/v1/files", headers=bearer(bad))
            assert_problem(response, 401, code)
            assert response.headers["www-authenticate"] == (
                'Bearer realm="seau", error="invalid_token"'
            )
        # Nothing made for a token that was refused.
        assert await owners(client) == before


async def test_app_and_provider_subjects_are_one_namespace(
    provider: OidcProvider, tmp_path: Path
) -> None:
    """The application's backend and the provider name the same people: a file the
    user uploaded with the provider's token is there for the backend's token."""
    async with seau(
        tmp_path, oidc_issuer=provider.issuer, oidc_audience="seau", app_jwt_secret=APP_SECRET
    ) as client:
        file_id = await upload(client, bearer(provider.token("user-7")), "cv.pdf", b"%PDF")
        listed = (await client.get("/api/v1/files", headers=bearer(app_token("user-7")))).json()
        assert [item["id"] for item in listed["items"]] == [file_id]


@pytest.mark.parametrize("app_tokens", [False, True], ids=["oidc-only", "with-app-tokens"])
async def test_hostile_tokens_are_refused_fast_and_store_nothing(
    provider: OidcProvider, tmp_path: Path, app_tokens: bool
) -> None:
    # With the application's own tokens trusted too, a token whose issuer is not the
    # provider's goes to their verifier (HS256, another secret) instead of being
    # refused for its issuer alone: both must refuse the provider's wrong-issuer tokens.
    also: dict[str, Any] = {"app_jwt_secret": APP_SECRET} if app_tokens else {}
    async with seau(tmp_path, oidc_issuer=provider.issuer, oidc_audience="seau", **also) as client:
        await client.get("/api/v1/users/me", headers=bearer(provider.token("warm-up")))
        before = await owners(client)
        good = provider.token("victim")
        header, payload, _signature = good.split(".")
        public = provider.public_jwk(provider.kid("RS256"))
        now = int(time.time())
        claims = {"sub": "victim", "iss": provider.issuer, "aud": "seau", "exp": now + 300}
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        hostile = {
            "alg-none": _forge(claims, "none", provider.kid("RS256"), b""),
            "hs256-with-the-public-key": _forge(
                claims, "HS256", provider.kid("RS256"), _public_pem(public)
            ),
            "unknown-kid": jwt.encode(
                claims, stranger, algorithm="RS256", headers={"kid": "not-in-the-jwks"}
            ),
            "known-kid-other-key": jwt.encode(
                claims, stranger, algorithm="RS256", headers={"kid": provider.kid("RS256")}
            ),
            # Signed by the provider itself, for another issuer (the unverified issuer
            # picks the verifier: none of these reaches one that would take the token).
            "wrong-issuer": provider.token("victim", claims={"iss": "http://127.0.0.1:1"}),
            "issuer-with-a-slash": provider.token("victim", claims={"iss": provider.issuer + "/"}),
            "seau-as-issuer": provider.token("victim", claims={"iss": SEAU_ISSUER}),
            "no-issuer": provider.token("victim", claims={"iss": None}),
            "wrong-audience": provider.token("victim", audience="another-api"),
            "expired": provider.token("victim", expires_in=-600),
            "not-yet-valid": provider.token("victim", claims={"nbf": now + 3600}),
            "tampered-payload": ".".join((header, payload[:-4] + "AAAA", _signature)),
            "no-subject": provider.token(None),
        }
        for kind, token in hostile.items():
            started = time.monotonic()
            response = await client.get("/api/v1/files", headers=bearer(token))
            elapsed = time.monotonic() - started
            expected = "token_expired" if kind == "expired" else "token_invalid"
            assert_problem(response, 401, expected)
            assert elapsed < 2.0, (kind, elapsed)
        assert await owners(client) == before


@pytest.mark.parametrize("answer", ["slow", "not-json", "array", "no-keys-list"])
async def test_a_provider_whose_jwks_is_slow_or_junk_refuses_tokens_in_bounded_time(
    provider: OidcProvider, tmp_path: Path, answer: str
) -> None:
    """Discovery answers, its jwks_uri does not (in time, or with a JWK set): tokens get a
    401 within two of seau's fetch timeouts, no owner is made, the app keeps answering,
    and the provider's tokens open seau once its JWKS answers again."""
    with fake_provider() as fake:
        fake.serve_jwks(provider.jwks())  # the real provider's keys, behind the fake's jwks_uri
        if answer == "slow":
            fake.jwks_delay = 60.0  # until released
        else:
            fake.jwks = JUNK_JWKS[answer]
        # Signed by the real provider, for the issuer seau is told about.
        token = provider.token("victim", claims={"iss": fake.issuer})
        async with seau(
            tmp_path,
            oidc_issuer=fake.issuer,
            oidc_audience="seau",
            oidc_keys_refetch_seconds=1,
        ) as client:
            # seau's fetch timeout (discovery and JWKS together): the verifier's default,
            # 5 s, which no setting changes; read from the verifier the app runs.
            timeout = client.app.state.seau.oidc._http_timeout
            bound = 2 * timeout + 1
            before = await owners(client)

            async def timed(path: str, headers: dict[str, str]) -> tuple[httpx.Response, float]:
                started = time.monotonic()
                response = await client.get(path, headers=headers)
                return response, time.monotonic() - started

            # Several at once, while the first fetch is (for "slow") still waiting.
            refusals = [timed("/api/v1/files", bearer(token)) for _ in range(5)]
            health = asyncio.ensure_future(timed("/healthz", {}))
            answers = await asyncio.gather(*refusals)
            healthz, health_elapsed = await health
            assert healthz.status_code == 200
            assert health_elapsed < 1.0, health_elapsed  # not stuck behind the fetch
            for response, elapsed in answers:
                assert_problem(response, 401, "token_invalid")
                assert elapsed < bound, (answer, elapsed, bound)
            if answer == "slow":  # it did wait for the fetch: the timeout is what ended it
                assert max(elapsed for _, elapsed in answers) > timeout / 2
            else:  # a failed fetch less than a refetch interval ago: refused at once
                again, elapsed = await timed("/api/v1/users/me", bearer(token))
                assert_problem(again, 401, "token_invalid")
                assert elapsed < bound, (answer, elapsed, bound)
            assert await owners(client) == before

            ready = await client.get("/readyz")
            assert ready.status_code == 200
            assert "no keys yet" in ready.json()["identity"], ready.json()

            # The JWKS answers again: the same token opens seau (the refusals were the
            # provider's fault, not the token's).
            fake.serve_jwks(provider.jwks())
            fake.jwks_delay = 0.0
            fake.released.set()
            deadline = time.monotonic() + bound
            while True:
                response = await client.get("/api/v1/files", headers=bearer(token))
                if response.status_code == 200 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            assert response.status_code == 200, response.text
            assert await owners(client) == before + 1


async def test_a_rotated_key_is_picked_up_and_a_stopped_provider_breaks_nothing(
    oidc_provider: OidcProvider, tmp_path: Path
) -> None:
    async with seau(
        tmp_path,
        oidc_issuer=oidc_provider.issuer,
        oidc_audience="seau",
        oidc_keys_refetch_seconds=1,
    ) as client:
        first = oidc_provider.token("user-r")
        assert (await client.get("/api/v1/files", headers=bearer(first))).status_code == 200
        oidc_provider.rotate("RS256")
        rotated = oidc_provider.token("user-r")
        assert jwt.get_unverified_header(rotated)["kid"] != jwt.get_unverified_header(first)["kid"]
        # An unknown key id makes seau fetch the keys again, at most once a second here.
        await asyncio.sleep(1.1)
        assert (await client.get("/api/v1/files", headers=bearer(rotated))).status_code == 200

        oidc_provider.stop()
        # Cached keys keep working while the provider is down...
        assert (await client.get("/api/v1/files", headers=bearer(rotated))).status_code == 200
        # ...and readiness says so once seau has noticed (a fetch for an unknown key).
        oidc_provider.start()
        unknown = oidc_provider.token("user-r", alg="RS256", kid=oidc_provider.rotate("RS256"))
        oidc_provider.stop()
        await asyncio.sleep(1.1)
        refused = await client.get("/api/v1/files", headers=bearer(unknown))
        assert_problem(refused, 401, "token_invalid")
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["identity"].startswith("degraded: "), ready.json()
        assert (await client.get("/api/v1/files", headers=bearer(first))).status_code == 200


async def test_seau_starts_while_the_provider_is_down(
    oidc_provider: OidcProvider, tmp_path: Path
) -> None:
    token = oidc_provider.token("early-bird")
    oidc_provider.stop()
    async with seau(tmp_path, oidc_issuer=oidc_provider.issuer, oidc_audience="seau") as client:
        assert (await client.get("/healthz")).status_code == 200
        assert_problem(
            await client.get("/api/v1/files", headers=bearer(token)), 401, "token_invalid"
        )
        oidc_provider.start()
        deadline = time.monotonic() + 10
        while True:
            response = await client.get("/api/v1/files", headers=bearer(token))
            if response.status_code == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
        assert response.status_code == 200, response.text


async def test_local_accounts_off_leaves_the_provider_as_the_only_way_in(
    provider: OidcProvider, tmp_path: Path
) -> None:
    async with seau(tmp_path) as client:
        created = await client.post(
            "/api/v1/users", json={"email": "old@example.com", "password": "correct horse battery"}
        )
        assert created.status_code == 201
        token = (
            await client.post(
                "/api/v1/auth/token",
                data={"username": "old@example.com", "password": "correct horse battery"},
            )
        ).json()["access_token"]
    async with seau(
        tmp_path,
        local_accounts=False,
        oidc_issuer=provider.issuer,
        oidc_audience="seau",
    ) as client:
        assert_problem(
            await client.post(
                "/api/v1/users",
                json={"email": "new@example.com", "password": "correct horse battery"},
            ),
            403,
            "local_accounts_disabled",
        )
        assert_problem(
            await client.post(
                "/api/v1/auth/token",
                data={"username": "old@example.com", "password": "correct horse battery"},
            ),
            403,
            "local_accounts_disabled",
        )
        assert_problem(
            await client.get("/api/v1/files", headers=bearer(token)), 401, "token_invalid"
        )
        ok = await client.get("/api/v1/files", headers=bearer(provider.token("sso-user")))
        assert ok.status_code == 200
