"""No trailing-slash redirects: the tus endpoint answers both spellings, others 404.

Starlette's `redirect_slashes` answered `/api/v1/uploads/` with a 307 whose `Location`
came from the request's Host (or X-Forwarded-Host), and tus clients do not follow a
307 for a POST. The official clients with the slash are in
tests/uploads/test_official_clients.py.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from seau.app import create_app
from seau.settings import Settings
from tests.api.helpers import assert_problem
from tests.conftest import TEST_SECRET, sign_up

REDIRECTS = {301, 302, 303, 307, 308}
FORGED = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    app = create_app(Settings(data_dir=tmp_path, secret_key=TEST_SECRET))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://seau.test"
    ) as client:
        yield client


def _other_spelling(path: str) -> str:
    """The path with a trailing slash added, or removed if it has one."""
    concrete = re.sub(r"\{[^}]+\}", "x", path)
    return concrete.rstrip("/") if concrete.endswith("/") and concrete != "/" else concrete + "/"


async def test_no_route_answers_a_redirect_for_the_other_spelling(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    auth = await sign_up(client)
    assert app.router.redirect_slashes is False
    routes = [r for r in iter_route_contexts(app.routes) if r.path and r.path != "/"]
    assert len(routes) > 20
    tried = 0
    for route in routes:
        for method in sorted(route.methods or ()):
            path = _other_spelling(route.path or "")
            response = await client.request(method, path, headers={**auth, **TUS, **FORGED})
            tried += 1
            assert response.status_code not in REDIRECTS, (method, path, response.headers)
            assert "location" not in response.headers or method == "POST", (method, path)
            assert "evil.example" not in response.text, (method, path)
            assert "evil.example" not in str(response.headers), (method, path)
    assert tried >= len(routes)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/files/"),
        ("POST", "/api/v1/files/"),
        ("GET", "/api/v1/users/me/"),
        ("POST", "/api/v1/auth/token/"),
        ("GET", "/healthz/"),
        ("HEAD", "/api/v1/uploads/"),
    ],
)
async def test_a_trailing_slash_without_a_route_is_a_plain_404(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path, headers=FORGED)
    assert "location" not in response.headers
    if method == "HEAD":
        assert response.status_code in (404, 405)
        return
    body = assert_problem(response, 404, "not_found")
    assert "evil.example" not in response.text
    assert body["instance"] == path


@pytest.mark.parametrize("path", ["/api/v1/uploads", "/api/v1/uploads/"])
async def test_tus_creation_answers_both_spellings(client: httpx.AsyncClient, path: str) -> None:
    auth = await sign_up(client)
    options = await client.options(path)
    assert options.status_code == 204, options.text
    assert options.headers["tus-version"] == "1.0.0"
    created = await client.post(
        path,
        headers={
            **auth,
            **TUS,
            **FORGED,
            "Upload-Length": "5",
            "Upload-Metadata": "filename YS50eHQ=",
        },
    )
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    assert location.startswith("/api/v1/uploads/")
    assert "evil.example" not in location
    patched = await client.patch(
        location,
        content=b"hello",
        headers={
            **auth,
            **TUS,
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert patched.status_code == 204, patched.text
    listed = (await client.get("/api/v1/files", headers=auth)).json()["items"]
    assert [(f["name"], f["size"]) for f in listed] == [("a.txt", 5)]


async def test_the_alias_is_not_in_openapi(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/api/v1/uploads" in paths
    assert "/api/v1/uploads/" not in paths
