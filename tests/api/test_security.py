"""Security defaults: throttled sign-in, revocable tokens, CORS off unless asked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from seau.app import create_app
from seau.auth.throttle import SignInThrottle, TooManyAttempts
from seau.settings import Settings
from tests.api.helpers import assert_problem
from tests.conftest import TEST_SECRET, sign_up


async def _client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://seau.test"
        ) as client,
    ):
        yield client


@pytest.fixture
async def fresh(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client_for(Settings(data_dir=tmp_path, secret_key=TEST_SECRET)):
        yield client


async def test_repeated_wrong_passwords_are_throttled_with_retry_after(
    fresh: httpx.AsyncClient,
) -> None:
    email, password = "victim@example.com", "the real password"
    await fresh.post("/api/v1/users", json={"email": email, "password": password})
    for _ in range(5):
        wrong = await fresh.post(
            "/api/v1/auth/token", data={"username": email, "password": "guess"}
        )
        assert_problem(wrong, 401, "invalid_credentials")
    blocked = await fresh.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert_problem(blocked, 429, "too_many_attempts")
    assert int(blocked.headers["retry-after"]) >= 1
    # Another account from the same address is not locked out by this one.
    other = await sign_up(fresh)
    assert (await fresh.get("/api/v1/users/me", headers=other)).status_code == 200


def test_backoff_doubles_and_a_success_clears_it() -> None:
    now = [1000.0]
    throttle = SignInThrottle(free_attempts=2, base_delay=1, max_delay=60, clock=lambda: now[0])
    throttle.failed("a")
    throttle.check("a")  # one failure is free
    throttle.failed("a")
    waits = []
    for attempt in range(5):
        if attempt:
            throttle.failed("a")
        with pytest.raises(TooManyAttempts) as caught:
            throttle.check("a")
        waits.append(int(caught.value.headers["Retry-After"]))
    assert waits == [1, 2, 4, 8, 16]
    now[0] += 17
    throttle.check("a")
    throttle.succeeded("a")
    throttle.failed("a")
    throttle.check("a")


async def test_logout_revokes_every_token_of_the_user(client: httpx.AsyncClient) -> None:
    first = await sign_up(client)
    me = (await client.get("/api/v1/users/me", headers=first)).json()
    assert (await client.post("/api/v1/auth/logout", headers=first)).status_code == 204
    assert_problem(await client.get("/api/v1/users/me", headers=first), 401, "invalid_token")
    assert me["email"]


async def test_cors_is_off_by_default_and_on_when_configured(
    fresh: httpx.AsyncClient, tmp_path: Path
) -> None:
    preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"}
    off = await fresh.options("/api/v1/files", headers=preflight)
    assert "access-control-allow-origin" not in off.headers
    settings = Settings(
        data_dir=tmp_path / "cors", secret_key=TEST_SECRET, cors_origins=["https://app.example.com"]
    )
    async for client in _client_for(settings):
        on = await client.options("/api/v1/files", headers=preflight)
        assert on.headers["access-control-allow-origin"] == "https://app.example.com"
        evil = await client.options(
            "/api/v1/files", headers={**preflight, "Origin": "https://evil.example"}
        )
        assert evil.headers.get("access-control-allow-origin") != "https://evil.example"
