"""The web page signing in at a real OpenID provider, in Chromium, against a real
`seau serve` configured with that provider's public client.

The provider is oauth2-mock-server (tests/support/oidc_provider.py): it asks nobody
and authorizes at once as the person `sign_in_as` names, insists on PKCE (S256) and
hands out single-use refresh tokens. Its access tokens live a few seconds here, so
the page must renew them while an upload runs.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from playwright.sync_api import Browser, Page, Request, Route, expect

from tests.support.oidc_provider import OidcProvider, running_oidc_provider
from tests.support.server import Server, seau_server
from tests.web.test_page import (
    CHUNK,
    MiB,
    at_offset,
    browser_page,
    expect_downloads_as,
    expect_uploaded,
    file_row,
    server_env,
)

CLIENT_ID = "seau-web"
# Renewed a quarter of its life before it expires: about 1.5 s ahead.
TOKEN_SECONDS = 6
SIGNED_OUT = "You have signed out."


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with running_oidc_provider() as running:
        yield running


@pytest.fixture(scope="module")
def oidc_server(
    provider: OidcProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("web-oidc")
    env = server_env(
        tmp / "data",
        SEAU_OIDC_ISSUER=provider.issuer,
        SEAU_OIDC_AUDIENCE="seau",
        SEAU_OIDC_CLIENT_ID=CLIENT_ID,
        SEAU_LOCAL_ACCOUNTS="false",
    )
    with seau_server(env, cwd=tmp) as running:
        yield running


@pytest.fixture
def page(browser: Browser, oidc_server: Server) -> Iterator[Page]:
    with browser_page(browser, oidc_server.url) as opened:
        yield opened


@dataclass(frozen=True)
class ProviderCall:
    """One request the page sent to the provider."""

    at: float  # time.time()
    path: str
    query: dict[str, str]
    form: dict[str, str]


def record_provider_calls(page: Page, provider: OidcProvider) -> list[ProviderCall]:
    calls: list[ProviderCall] = []

    def record(request: Request) -> None:
        if not request.url.startswith(provider.issuer):
            return
        url = urlsplit(request.url)
        body = request.post_data or ""
        calls.append(
            ProviderCall(
                at=time.time(),
                path=url.path,
                query={k: v[0] for k, v in parse_qs(url.query).items()},
                form={k: v[0] for k, v in parse_qs(body).items()},
            )
        )

    page.on("request", record)
    return calls


def grants(calls: list[ProviderCall]) -> list[str]:
    return [c.form["grant_type"] for c in calls if c.path == "/token"]


def claims(token: str) -> dict[str, object]:
    decoded: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def session_token(page: Page) -> str:
    token: str = page.evaluate("JSON.parse(sessionStorage.getItem('seau.session')).token")
    return token


def bearer_of(request: Request) -> str:
    return request.headers["authorization"].removeprefix("Bearer ")


def sign_in_at_provider(page: Page, provider: OidcProvider, email: str) -> None:
    page.goto("/")
    button = page.get_by_role("button", name=f"Sign in at 127.0.0.1:{provider.port}")
    expect(button).to_be_focused()
    # SEAU_LOCAL_ACCOUNTS=false: no email/password form to fill.
    expect(page.get_by_role("form", name="Sign in")).to_be_hidden()
    button.click()
    expect(page.locator("#account-email")).to_have_text(email)
    expect(page.get_by_role("heading", name="Files", exact=True)).to_be_visible()


def test_the_page_learns_the_provider_and_may_reach_its_origin_only(
    oidc_server: Server, provider: OidcProvider
) -> None:
    options = httpx.get(f"{oidc_server.url}/api/v1/auth/options")
    assert options.status_code == 200
    assert options.json() == {
        "local_accounts": False,
        "oidc": {
            "issuer": provider.issuer,
            "client_id": CLIENT_ID,
            "scopes": "openid profile email",
        },
        "direct_uploads": None,
    }
    assert "/api/v1/auth/options" in httpx.get(f"{oidc_server.url}/openapi.json").json()["paths"]
    page = httpx.get(f"{oidc_server.url}/")
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in page.headers["content-security-policy"].split(";")
    )
    assert policy["connect-src"] == f"'self' http://127.0.0.1:{provider.port}"
    assert policy["form-action"] == "'none'"
    assert policy["default-src"] == "'self'"


def test_sign_in_with_pkce_upload_through_a_token_refresh_download_and_sign_out(
    page: Page, oidc_server: Server, provider: OidcProvider, tmp_path: Path
) -> None:
    provider.sign_in_as("web-ada", expires_in=TOKEN_SECONDS, claims={"email": "ada@example.com"})
    calls = record_provider_calls(page, provider)
    sign_in_at_provider(page, provider, "ada@example.com")
    assert page.url == f"{oidc_server.url}/"  # the code is out of the address bar

    # Authorization Code with PKCE: the verifier sent to the token endpoint is the one
    # whose S256 hash went to /authorize, and the code came back with the state sent.
    (authorize,) = [c for c in calls if c.path == "/authorize"]
    assert authorize.query["response_type"] == "code"
    assert authorize.query["client_id"] == CLIENT_ID
    assert authorize.query["redirect_uri"] == f"{oidc_server.url}/"
    assert authorize.query["scope"] == "openid profile email"
    assert authorize.query["code_challenge_method"] == "S256"
    (exchange,) = [c for c in calls if c.path == "/token"]
    assert exchange.form["grant_type"] == "authorization_code"
    assert exchange.form["client_id"] == CLIENT_ID
    assert exchange.form["redirect_uri"] == f"{oidc_server.url}/"
    digest = hashlib.sha256(exchange.form["code_verifier"].encode()).digest()
    assert (
        base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        == (authorize.query["code_challenge"])
    )
    first = session_token(page)
    assert claims(first)["sub"] == "web-ada"

    # A resumable upload whose second PATCH is held until the page has renewed its
    # token, then cut: tus-js-client resumes it with the token of that moment.
    held: list[Route] = []
    patches: list[Request] = []
    page.on("request", lambda r: patches.append(r) if r.method == "PATCH" else None)

    def hold_the_second_patch(route: Route) -> None:
        if at_offset(CHUNK)(route.request) and not held:
            held.append(route)
        else:
            route.continue_()

    page.route("**/api/v1/uploads/*", hold_the_second_patch)
    big = tmp_path / "long.bin"
    big.write_bytes(os.urandom(CHUNK + 4 * MiB))
    small = tmp_path / "note.txt"
    small.write_bytes(b"a short note\n")
    with page.expect_request(at_offset(CHUNK)):
        page.locator("#file-input").set_input_files([big, small])
    expect_uploaded(page, "note.txt")
    page.wait_for_function(
        "(first) => JSON.parse(sessionStorage.getItem('seau.session')).token !== first",
        arg=first,
        timeout=TOKEN_SECONDS * 1000,
    )
    assert grants(calls) == ["authorization_code", "refresh_token"]
    held[0].abort("connectionreset")
    expect_uploaded(page, "long.bin")

    refreshed_at = [c.at for c in calls if c.path == "/token"][1]
    first_expiry = claims(first)["exp"]
    assert isinstance(first_expiry, int)
    assert refreshed_at < first_expiry  # renewed before it expired, not after a 401
    sent = [(p.headers.get("upload-offset"), bearer_of(p)) for p in patches]
    assert sent[0] == ("0", first)
    assert sent[1] == (str(CHUNK), first)  # the held one, cut
    later = {token for _, token in sent[2:]}
    assert first not in later
    assert {claims(token)["sub"] for token in later} == {"web-ada"}
    page.unroute("**/api/v1/uploads/*")

    # Past the first token's life (and a renewal or two later) the page keeps working.
    time.sleep(max(0.0, first_expiry + 1 - time.time()))
    expect(file_row(page, "long.bin")).to_be_visible()
    expect_downloads_as(page, big)
    assert grants(calls)[0] == "authorization_code"
    assert set(grants(calls)[1:]) == {"refresh_token"}
    listed = httpx.get(
        f"{oidc_server.url}/api/v1/files",
        params={"sort": "name"},
        headers={"Authorization": f"Bearer {session_token(page)}"},
    )
    assert [item["name"] for item in listed.json()["items"]] == ["long.bin", "note.txt"]

    # Signing out drops the tokens and ends the provider's session too.
    id_token = page.evaluate("JSON.parse(sessionStorage.getItem('seau.session')).idToken")
    # To the provider's end_session_endpoint, which sends the browser back to the page.
    with page.expect_navigation(url=f"{oidc_server.url}/"):
        page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("alert").filter(has_text=SIGNED_OUT)).to_be_visible()
    (end,) = [c for c in calls if c.path == "/endsession"]
    assert end.query == {
        "client_id": CLIENT_ID,
        "post_logout_redirect_uri": f"{oidc_server.url}/",
        "id_token_hint": id_token,
    }
    assert page.evaluate("sessionStorage.getItem('seau.session')") is None
    expect(page.get_by_role("button", name=f"Sign in at 127.0.0.1:{provider.port}")).to_be_visible()


def test_an_answer_the_page_did_not_ask_for_signs_nobody_in(
    page: Page, oidc_server: Server
) -> None:
    # A code planted in a link (login CSRF): no sign-in of this tab waits for it.
    page.goto("/?code=planted&state=forged")
    expect(page.locator("#provider-error")).to_have_text(
        "Could not sign in. This sign-in was not started on this page."
    )
    assert page.url == f"{oidc_server.url}/"
    assert page.evaluate("sessionStorage.getItem('seau.session')") is None
    expect(page.locator("#files-view")).to_be_hidden()
