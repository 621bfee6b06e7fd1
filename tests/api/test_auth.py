from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jwt

from seau.auth.tokens import TokenSigner
from tests.api.helpers import assert_problem
from tests.conftest import TEST_SECRET, Running, sign_up


async def test_sign_up_returns_the_user_without_secrets(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/users", json={"email": "Alice.Sign-Up@Example.com", "password": "a long password"}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "alice.sign-up@example.com"
    assert set(body) == {"id", "email", "is_admin", "created_at"}


async def test_sign_up_twice_with_the_same_email_in_other_case_is_409(
    client: httpx.AsyncClient,
) -> None:
    email = f"dup-{uuid.uuid4().hex[:8]}@example.com"
    first = await client.post("/api/v1/users", json={"email": email, "password": "password-1"})
    assert first.status_code == 201
    second = await client.post(
        "/api/v1/users", json={"email": email.upper(), "password": "password-2"}
    )
    assert_problem(second, 409, "email_taken")


async def test_sign_up_with_bad_email_or_short_password_is_422(client: httpx.AsyncClient) -> None:
    for body in (
        {"email": "not-an-email", "password": "long enough pw"},
        {"email": "ok@example.com", "password": "short"},
        {"email": "ok@example.com"},
        {"email": "ok@example.com", "password": "long enough pw", "admin": True},
    ):
        problem = assert_problem(
            await client.post("/api/v1/users", json=body), 422, "validation_error"
        )
        assert problem["errors"]


async def test_token_for_wrong_password_or_unknown_email_is_the_same_401(
    client: httpx.AsyncClient,
) -> None:
    email = f"pw-{uuid.uuid4().hex[:8]}@example.com"
    await client.post("/api/v1/users", json={"email": email, "password": "the right one"})
    wrong = await client.post(
        "/api/v1/auth/token", data={"username": email, "password": "the wrong one"}
    )
    unknown = await client.post(
        "/api/v1/auth/token", data={"username": "nobody@example.com", "password": "the right one"}
    )
    a = assert_problem(wrong, 401, "invalid_credentials")
    b = assert_problem(unknown, 401, "invalid_credentials")
    assert a["detail"] == b["detail"]


async def test_token_response_has_the_oauth2_shape(
    client: httpx.AsyncClient, running: Running
) -> None:
    email = f"tok-{uuid.uuid4().hex[:8]}@example.com"
    await client.post("/api/v1/users", json={"email": email, "password": "password-x"})
    response = await client.post(
        "/api/v1/auth/token", data={"username": email, "password": "password-x"}
    )
    body = response.json()
    # RFC 6749 section 5.1: no cache may keep a response that carries a token.
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == running.settings.token_ttl_seconds
    me = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["email"] == email


async def test_me_without_token_is_401_with_bearer_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/users/me")
    assert_problem(response, 401, "token_invalid")
    assert response.headers["www-authenticate"] == 'Bearer realm="seau"'


async def test_expired_forged_and_wrong_algorithm_tokens_are_401(
    client: httpx.AsyncClient,
) -> None:
    auth = await sign_up(client)
    me = (await client.get("/api/v1/users/me", headers=auth)).json()
    user_id = uuid.UUID(me["id"])
    past = datetime.now(UTC) - timedelta(hours=2)
    expired = TokenSigner(secret=TEST_SECRET, ttl=timedelta(hours=1)).issue(
        user_id=user_id, version=0, now=past
    )
    forged = TokenSigner(secret="another-secret-" + "y" * 40, ttl=timedelta(hours=1)).issue(
        user_id=user_id, version=0
    )
    claims = {
        "sub": str(user_id),
        "ver": 0,
        "aud": "seau",
        "iat": datetime.now(UTC),
        "exp": datetime.now(UTC) + timedelta(hours=1),
    }
    hs512 = jwt.encode(claims, TEST_SECRET, algorithm="HS512")
    unsigned = jwt.encode(claims, "", algorithm="none")
    for token, code in (
        (expired, "token_expired"),
        (forged, "token_invalid"),
        (hs512, "token_invalid"),
        (unsigned, "token_invalid"),
        ("garbage", "token_invalid"),
        ("a.b.c", "token_invalid"),
    ):
        response = await client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
        )
        assert_problem(response, 401, code)
        # RFC 6750 section 3.1: a token was given, so the challenge names the error.
        assert response.headers["www-authenticate"] == (
            'Bearer realm="seau", error="invalid_token"'
        )


async def test_file_routes_need_a_token(client: httpx.AsyncClient) -> None:
    some_id = uuid.uuid4()
    for method, path in (
        ("GET", "/api/v1/files"),
        ("POST", "/api/v1/files?name=x"),
        ("GET", f"/api/v1/files/{some_id}"),
        ("PATCH", f"/api/v1/files/{some_id}"),
        ("DELETE", f"/api/v1/files/{some_id}"),
        ("GET", f"/api/v1/files/{some_id}/content"),
    ):
        response = await client.request(method, path, content=b"x")
        assert_problem(response, 401, "token_invalid")


async def test_sign_up_with_a_common_password_is_422_weak_password(
    client: httpx.AsyncClient,
) -> None:
    for password in ("1234567890", "Password12", "qwertyuiop"):
        response = await client.post(
            "/api/v1/users",
            json={"email": f"weak-{uuid.uuid4().hex[:8]}@example.com", "password": password},
        )
        body = assert_problem(response, 422, "weak_password")
        assert "most commonly used" in str(body["detail"])
    short = await client.post(
        "/api/v1/users", json={"email": "short@example.com", "password": "123456789"}
    )
    problem = assert_problem(short, 422, "validation_error")
    assert "10 characters" in str(problem["errors"])
