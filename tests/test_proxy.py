"""Issue 16, point 1, in process: forwarded headers from trusted peers only, the
public URL (every absolute URL seau emits), settings validation, and sign-in
failures that decay."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from seau.app import create_app
from seau.auth.throttle import SignInThrottle
from seau.errors import ConfigurationError, InvalidCredentials, TooManyAttempts
from seau.proxy import behind_proxies, parse_forwarded
from seau.settings import Settings, load_settings
from tests.conftest import TEST_SECRET, sign_up


async def _seen(trusted: list[str], peer: str, headers: dict[str, str]) -> tuple[str, str]:
    """(client address, scheme) the app sees for a request from ``peer``."""
    seen: list[tuple[str, str]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope["client"][0], scope["scheme"]))

    scope: Scope = {
        "type": "http",
        "scheme": "http",
        "client": (peer, 1234),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }

    async def receive() -> Message:
        return {"type": "http.request"}

    async def send(message: Message) -> None:
        pass

    await behind_proxies(app, trusted)(scope, receive, send)
    return seen[0]


async def test_forwarded_headers_count_only_from_trusted_peers() -> None:
    forged = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    assert await _seen([], "127.0.0.1", forged) == ("127.0.0.1", "http")
    assert await _seen(["10.0.0.0/8"], "192.0.2.1", forged) == ("192.0.2.1", "http")
    assert await _seen(["10.0.0.0/8"], "10.1.2.3", forged) == ("203.0.113.7", "https")
    # Walked from the right: the client's own entries left of the first untrusted hop
    # do not count.
    chain = {"X-Forwarded-For": "6.6.6.6, 198.51.100.4, 10.0.0.5"}
    assert await _seen(["10.0.0.0/8"], "10.1.2.3", chain) == ("198.51.100.4", "http")


async def test_rfc_7239_forwarded_is_read_like_x_forwarded() -> None:
    header = {"Forwarded": 'for=198.51.100.4;proto=https, for="[2001:db8::17]:4711"'}
    assert await _seen(["127.0.0.1"], "127.0.0.1", header) == ("2001:db8::17", "https")
    assert await _seen([], "127.0.0.1", header) == ("127.0.0.1", "http")
    # With X-Forwarded-For present, Forwarded (maybe the client's own) is not read.
    both = {**header, "X-Forwarded-For": "192.0.2.9"}
    assert await _seen(["127.0.0.1"], "127.0.0.1", both) == ("192.0.2.9", "http")
    assert parse_forwarded('for="a;b";by=x, For=c') == (["a;b", "c"], None)


def test_proxy_settings_are_checked() -> None:
    settings = load_settings(trusted_proxies=" 10.0.0.0/8, ::1 ", public_url="https://f.example/")
    assert settings.trusted_proxy_list == ["10.0.0.0/8", "::1"]
    assert settings.public_url == "https://f.example"
    with pytest.raises(ConfigurationError):
        load_settings(trusted_proxies="proxy.example")
    with pytest.raises(ConfigurationError):
        load_settings(public_url="files.example.com")


def _fail(throttle: SignInThrottle, key: str) -> None:
    with pytest.raises(InvalidCredentials), throttle.attempt(key):
        raise InvalidCredentials()


def test_failures_decay() -> None:
    """Before: 50 failures from a proxy's address locked out everyone behind it
    until a success that never came from that address (clear_on_success=False)."""
    now = [1000.0]
    throttle = SignInThrottle(free_attempts=3, base_delay=1, decay_seconds=10, clock=lambda: now[0])
    for _ in range(3):
        _fail(throttle, "a")
    with pytest.raises(TooManyAttempts):
        throttle.check("a")
    now[0] += 10  # one failure forgotten: back within the free allowance
    throttle.check("a")
    _fail(throttle, "a")
    with pytest.raises(TooManyAttempts):
        throttle.check("a")
    now[0] += 30  # all forgotten
    for _ in range(2):
        _fail(throttle, "a")
    throttle.check("a")


async def test_every_absolute_url_seau_emits_is_built_from_the_public_url(tmp_path: Path) -> None:
    """With `SEAU_PUBLIC_URL`, the URLs seau hands out (a tus upload's Location, a
    download link and its redirect, a share, a direct upload's form and part URLs on
    the local store) start with it, whatever Host the request named."""
    public = "https://files.example.com"
    settings = Settings(
        data_dir=tmp_path,
        secret_key=TEST_SECRET,
        public_url=public,
        signup_per_address_per_hour=0,
        signup_per_minute=0,
    )
    app = create_app(settings)
    forged = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://internal:8000"
        ) as client,
    ):
        client.headers.update(forged)
        auth = await sign_up(client)
        made = await client.post(
            "/api/v1/files", params={"name": "a.txt"}, content=b"hello", headers=auth
        )
        assert made.status_code == 201, made.text
        file_id = made.json()["id"]
        urls = {}
        tus = await client.post(
            "/api/v1/uploads",
            headers={**auth, "Tus-Resumable": "1.0.0", "Upload-Length": "5"},
        )
        urls["tus Location"] = tus.headers["location"]
        link = await client.post(f"/api/v1/files/{file_id}/link", headers=auth)
        urls["link"] = link.json()["url"]
        redirect = await client.get(
            f"/api/v1/files/{file_id}/content", params={"redirect": "true"}, headers=auth
        )
        assert redirect.status_code == 307, redirect.text
        urls["redirect"] = redirect.headers["location"]
        share = await client.post(f"/api/v1/files/{file_id}/shares", json={}, headers=auth)
        assert share.status_code == 201, share.text
        urls["share"] = share.json()["url"]
        single = await client.post(
            "/api/v1/direct-uploads", json={"name": "b.bin", "size": 5}, headers=auth
        )
        assert single.status_code == 201, single.text
        urls["direct form"] = single.json()["upload"]["url"]
        multi = await client.post(
            "/api/v1/direct-uploads",
            json={"name": "c.bin", "size": 6 * 1024 * 1024, "multipart": True},
            headers=auth,
        )
        assert multi.status_code == 201, multi.text
        parts = await client.post(
            f"/api/v1/direct-uploads/{multi.json()['id']}/parts",
            json={"numbers": [1, 2]},
            headers=auth,
        )
        assert parts.status_code == 200, parts.text
        for part in parts.json()["parts"]:
            urls[f"direct part {part['number']}"] = part["url"]
    assert len(urls) == 7
    for what, url in urls.items():
        assert url.startswith(public + "/"), (what, url)
        assert "evil.example" not in url, (what, url)
        assert "internal" not in url, (what, url)
