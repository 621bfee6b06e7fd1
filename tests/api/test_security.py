"""Security defaults: throttled sign-in, revocable tokens, CORS off unless asked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from seau.app import create_app
from seau.auth.throttle import SignInThrottle, SignUpGuard
from seau.errors import InvalidCredentials, PasswordHashingBusy, TooManyAttempts, TooManySignUps
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


def _fail(throttle: SignInThrottle, key: str) -> None:
    with pytest.raises(InvalidCredentials), throttle.attempt(key):
        raise InvalidCredentials()


def test_backoff_doubles_and_a_success_clears_it() -> None:
    now = [1000.0]
    throttle = SignInThrottle(free_attempts=2, base_delay=1, max_delay=60, clock=lambda: now[0])
    _fail(throttle, "a")
    throttle.check("a")  # one failure is free
    _fail(throttle, "a")
    waits: list[int] = []
    for attempt in range(5):
        if attempt:
            now[0] += waits[-1]
            _fail(throttle, "a")
        with pytest.raises(TooManyAttempts) as caught:
            throttle.check("a")
        waits.append(int(caught.value.headers["Retry-After"]))
    assert waits == [1, 2, 4, 8, 16]
    now[0] += 17
    with throttle.attempt("a"):
        pass  # a success
    _fail(throttle, "a")
    throttle.check("a")


def test_attempts_in_flight_count_against_the_allowance() -> None:
    now = [1000.0]
    throttle = SignInThrottle(free_attempts=3, base_delay=1, clock=lambda: now[0])
    with throttle.attempt("a"), throttle.attempt("a"):
        _fail(throttle, "a")  # the third place: two in flight, one failure
        with pytest.raises(TooManyAttempts) as caught, throttle.attempt("a"):
            pass
        assert caught.value.headers["Retry-After"] == "1"
        throttle.check("b")  # other keys are untouched
    # The two in flight succeeded: the count is clear again.
    for _ in range(3):
        _fail(throttle, "a")
    with pytest.raises(TooManyAttempts):
        throttle.check("a")
    now[0] += 1
    # After the backoff, one attempt at a time.
    with throttle.attempt("a"), pytest.raises(TooManyAttempts), throttle.attempt("a"):
        pass


def test_an_attempt_that_neither_fails_nor_succeeds_only_frees_its_place() -> None:
    throttle = SignInThrottle(free_attempts=1)
    with pytest.raises(TooManyAttempts), throttle.attempt("a"):
        raise TooManyAttempts(1)  # e.g. the account's throttle refused it
    with pytest.raises(PasswordHashingBusy), throttle.attempt("a"):
        raise PasswordHashingBusy()
    _fail(throttle, "a")
    with pytest.raises(TooManyAttempts):
        throttle.check("a")


def test_sign_ups_are_limited_per_address_and_for_everyone() -> None:
    now = [0.0]
    guard = SignUpGuard(per_address_per_hour=3, per_minute=5, clock=lambda: now[0])
    for _ in range(3):
        guard.admit("10.0.0.1")
    with pytest.raises(TooManySignUps) as caught:
        guard.admit("10.0.0.1")
    assert caught.value.status == 429
    assert caught.value.headers["Retry-After"] == "1200"  # one more every 20 minutes
    guard.admit("10.0.0.2")
    guard.admit("10.0.0.3")
    with pytest.raises(TooManySignUps) as caught:
        guard.admit("10.0.0.4")  # the process's five a minute are used
    assert caught.value.headers["Retry-After"] == "12"
    now[0] += 12.5
    guard.admit("10.0.0.4")
    unlimited = SignUpGuard(per_address_per_hour=0, per_minute=0)
    for _ in range(1000):
        unlimited.admit("10.0.0.1")


async def test_logout_revokes_every_token_of_the_user(client: httpx.AsyncClient) -> None:
    first = await sign_up(client)
    me = (await client.get("/api/v1/users/me", headers=first)).json()
    assert (await client.post("/api/v1/auth/logout", headers=first)).status_code == 204
    assert_problem(await client.get("/api/v1/users/me", headers=first), 401, "token_invalid")
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


async def test_sign_ups_beyond_an_addresss_allowance_are_429_and_others_go_on(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=TEST_SECRET, signup_per_address_per_hour=2)
    app = create_app(settings)

    def client_from(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://seau.test")

    async with (
        app.router.lifespan_context(app),
        client_from("192.0.2.1") as one,
        client_from("192.0.2.2") as two,
    ):
        body = {"password": "correct horse battery"}
        for n in range(2):
            made = await one.post("/api/v1/users", json={**body, "email": f"a{n}@example.com"})
            assert made.status_code == 201, made.text
        refused = await one.post("/api/v1/users", json={**body, "email": "a2@example.com"})
        assert_problem(refused, 429, "too_many_sign_ups")
        assert int(refused.headers["retry-after"]) == 1800  # one more each half hour
        # An existing email is not told apart while throttled (no 409 to enumerate with).
        taken = await one.post("/api/v1/users", json={**body, "email": "a0@example.com"})
        assert_problem(taken, 429, "too_many_sign_ups")
        other = await two.post("/api/v1/users", json={**body, "email": "b@example.com"})
        assert other.status_code == 201, other.text


async def test_an_ipv6_network_counts_as_one_client_for_the_throttles(tmp_path: Path) -> None:
    """A host holds a whole /64: its sign-ups and failed sign-ins share one allowance
    whatever address of it they come from; another /64 (and IPv4) keep theirs."""
    settings = Settings(data_dir=tmp_path, secret_key=TEST_SECRET, signup_per_address_per_hour=2)
    app = create_app(settings)

    def client_from(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://seau.test")

    body = {"password": "correct horse battery"}
    async with app.router.lifespan_context(app):
        for n, address in enumerate(("2001:db8:1:2::1", "2001:db8:1:2:ffff::9")):
            async with client_from(address) as client:
                made = await client.post("/api/v1/users", json={**body, "email": f"v{n}@x.org"})
                assert made.status_code == 201, made.text
        async with client_from("2001:db8:1:2:dead:beef:0:1") as same_network:
            refused = await same_network.post("/api/v1/users", json={**body, "email": "v9@x.org"})
            assert_problem(refused, 429, "too_many_sign_ups")
        for address in ("2001:db8:1:3::1", "::ffff:192.0.2.7"):
            async with client_from(address) as other:
                made = await other.post("/api/v1/users", json={**body, "email": f"{address}@x.org"})
                assert made.status_code == 201, made.text
        # The IPv4-mapped address is its IPv4 one: the same allowance.
        async with client_from("192.0.2.7") as mapped:
            made = await mapped.post("/api/v1/users", json={**body, "email": "w1@x.org"})
            assert made.status_code == 201, made.text
            refused = await mapped.post("/api/v1/users", json={**body, "email": "w2@x.org"})
            assert_problem(refused, 429, "too_many_sign_ups")

        # Failed sign-ins: 50 free per address, then 429; spread over one /64.
        statuses = []
        for n in range(60):
            async with client_from(f"2001:db8:5:6::{n + 1:x}") as guesser:
                answer = await guesser.post(
                    "/api/v1/auth/token",
                    data={"username": f"nobody{n}@x.org", "password": "wrong password!"},
                )
                statuses.append(answer.status_code)
        assert statuses[:50] == [401] * 50
        assert set(statuses[50:]) == {429}
