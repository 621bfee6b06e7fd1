"""Issue 16, point 1, in process: forwarded headers from trusted peers only, the
public URL, settings validation, and sign-in failures that decay."""

from __future__ import annotations

import pytest
from starlette.types import Message, Receive, Scope, Send

from seau.auth.throttle import SignInThrottle
from seau.errors import ConfigurationError, InvalidCredentials, TooManyAttempts
from seau.proxy import behind_proxies, parse_forwarded
from seau.settings import load_settings


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
