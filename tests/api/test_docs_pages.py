"""Issue 17, finding 11: `/docs` and `/redoc` load only assets shipped in the package,
under a CSP that allows nothing else (FastAPI's pages load unpinned CDN scripts)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from seau.app import create_app
from seau.settings import Settings
from tests.conftest import TEST_SECRET

MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
_REFERENCE = re.compile(r"""\b(?:src|href|spec-url)\s*=\s*["']([^"']*)["']""")


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(data_dir=tmp_path, secret_key=TEST_SECRET))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://seau.test"
        ) as http,
    ):
        yield http


def _directives(csp: str) -> dict[str, list[str]]:
    parts = (directive.split() for directive in csp.split(";") if directive.strip())
    return {name: sources for name, *sources in parts}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_only_same_origin_assets_under_a_strict_csp(
    client: httpx.AsyncClient, page: str
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    references = _REFERENCE.findall(response.text)
    assert any(ref.endswith(".js") for ref in references), references
    for reference in references:
        # Same origin: a path of this server, not a URL and not scheme-relative.
        assert reference.startswith("/"), reference
        assert not reference.startswith("//"), reference
        if reference == "/openapi.json":
            continue
        asset = await client.get(reference)
        assert asset.status_code == 200, reference
        suffix = Path(reference).suffix
        assert asset.headers["content-type"].startswith(MEDIA_TYPES[suffix]), reference
        assert asset.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in response.text  # no inline script: the CSP would refuse it

    csp = _directives(response.headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    for name, sources in csp.items():
        for source in sources:
            assert source.startswith("'") or source in ("data:", "blob:"), (name, source)


async def test_the_schema_the_pages_read_is_served(client: httpx.AsyncClient) -> None:
    schema = await client.get("/openapi.json")
    assert schema.status_code == 200
    assert "/api/v1/files" in schema.json()["paths"]


async def test_docs_assets_are_an_allowlist(client: httpx.AsyncClient) -> None:
    for name in ("../routes.py", "..%2Froutes.py", "__init__.py", "nope.js"):
        assert (await client.get(f"/docs/assets/{name}")).status_code == 404, name
    # The licences ship beside the bundles, and are served too.
    for name in ("swagger-ui-dist.LICENSE.txt", "redoc.LICENSE.txt"):
        assert (await client.get(f"/docs/assets/{name}")).status_code == 200, name
