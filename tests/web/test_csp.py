"""The page's CSP names the provider's origin, built only from a plain http(s) URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from seau.settings import Settings, provider_origin
from seau.web.routes import page_csp


@pytest.mark.parametrize(
    ("issuer", "origin"),
    [
        ("http://127.0.0.1:4000", "http://127.0.0.1:4000"),
        ("https://Login.Example.com/realms/app/", "https://login.example.com"),
        ("https://login.example.com:8443/tenant?x#y", "https://login.example.com:8443"),
    ],
)
def test_the_origin_of_an_issuer(issuer: str, origin: str) -> None:
    assert provider_origin(issuer) == origin


@pytest.mark.parametrize(
    "issuer",
    [
        "https://login.example.com; script-src *",
        "https://login;example.com",
        "https://user:secret@login.example.com",
        "ftp://login.example.com",
        "https://[::1]:8443/",
        "https://login.example.com:port/",
        "https:///path-only",
    ],
)
def test_an_issuer_a_csp_cannot_name_is_refused(issuer: str) -> None:
    with pytest.raises(ValueError, match="issuer"):
        provider_origin(issuer)


def test_only_the_providers_origin_joins_connect_src() -> None:
    directives = dict(d.split(" ", 1) for d in page_csp("https://id.example.com/x").split("; "))
    assert directives["connect-src"] == "'self' https://id.example.com"
    assert directives["form-action"] == "'none'"
    assert dict(d.split(" ", 1) for d in page_csp(None).split("; "))["connect-src"] == "'self'"


@pytest.mark.parametrize("issuer", ["https://[::1]:8443/", "https://user:secret@id.example.com"])
def test_settings_refuse_a_page_provider_the_csp_cannot_name(issuer: str, tmp_path: Path) -> None:
    # Refused when seau starts, not as a 500 of the page.
    with pytest.raises(ValueError, match="a CSP can name"):
        Settings(data_dir=tmp_path, oidc_issuer=issuer, oidc_audience="seau", oidc_client_id="page")
    # Without the page's client id the CSP does not name it: tokens alone are fine.
    assert Settings(data_dir=tmp_path, oidc_issuer=issuer, oidc_audience="seau").oidc_issuer
