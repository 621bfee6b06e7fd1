"""The OpenAPI document and the generic error shape."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from seau.app import create_app
from seau.settings import Settings
from tests.api.helpers import assert_problem


async def test_openapi_documents_paths_auth_and_errors(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in (
        "/api/v1/users",
        "/api/v1/auth/token",
        "/api/v1/users/me",
        "/api/v1/files",
        "/api/v1/files/{file_id}",
        "/api/v1/files/{file_id}/content",
        "/healthz",
        "/readyz",
    ):
        assert path in paths, path
    assert set(paths["/api/v1/files/{file_id}/content"]) >= {"get", "head"}
    assert set(paths["/api/v1/files/{file_id}"]) >= {"get", "patch", "delete"}
    schemes = spec["components"]["securitySchemes"]
    assert any(s["type"] == "oauth2" for s in schemes.values())
    upload = paths["/api/v1/files"]["post"]
    assert {"multipart/form-data", "application/octet-stream"} <= set(
        upload["requestBody"]["content"]
    )
    for status in ("401", "413", "503"):
        assert "application/problem+json" in upload["responses"][status]["content"]
    download = paths["/api/v1/files/{file_id}/content"]["get"]
    assert {"206", "304", "404", "416"} <= set(download["responses"])
    assert "Problem" in spec["components"]["schemas"]


async def test_docs_page_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "swagger" in response.text.lower()


async def test_unknown_route_and_wrong_method_are_problems(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/nope"), 404, "not_found")
    assert_problem(await client.put("/api/v1/files"), 405, "method_not_allowed")


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "database": "ok", "storage": "ok"}


async def test_malformed_json_is_a_422_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/users", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 422, "validation_error")


SCOPE_FREE = {("get", "/api/v1/users/me")}
"""The operations any verified caller may use: every other one needs a scope."""


# The document and the refusals before authentication do not depend on the database
# or the store: one combination is enough (about 50 requests).
@pytest.mark.parametrize("running", [("sqlite", "local")], indirect=True)
async def test_every_protected_operation_declares_its_scopes_for_every_scheme(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["token"] == {**schemes["token"], "type": "http", "scheme": "bearer"}
    # No provider configured in this app: no OpenID Connect scheme.
    assert "oidc" not in schemes
    known = set(schemes["bearer"]["flows"]["password"]["scopes"])
    declared: dict[tuple[str, str], list[str]] = {}
    refused: set[tuple[str, str]] = set()
    for path, operations in spec["paths"].items():
        # Authentication comes before the path, the body and the tus headers are read.
        url = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path)
        for method, operation in operations.items():
            answer = await client.request(method, url, headers={"Tus-Resumable": "1.0.0"})
            if answer.status_code == 401 and answer.headers.get("www-authenticate", "").startswith(
                "Bearer "
            ):
                refused.add((method, path))
            security = operation.get("security", [])
            if any("bearer" in requirement for requirement in security):
                scopes = security[0]["bearer"]
                assert security == [{"bearer": scopes}, {"token": scopes}], (method, path)
                declared[method, path] = scopes
    # Every operation that wants a bearer token says so, and says which scopes.
    assert refused == set(declared)
    for operation, scopes in declared.items():
        assert set(scopes) <= known, operation
        assert bool(scopes) != (operation in SCOPE_FREE), operation
    admin = {op for op in declared if op[1].startswith("/api/v1/admin/")}
    assert len(admin) == 7
    expected = {
        **{operation: ["admin"] for operation in admin},
        ("get", "/api/v1/files"): ["files:read"],
        ("post", "/api/v1/files"): ["files:write"],
        ("get", "/api/v1/files/{file_id}/content"): ["files:read"],
        ("delete", "/api/v1/files/{file_id}"): ["files:write"],
        ("patch", "/api/v1/files/{file_id}"): ["files:write"],
        ("post", "/api/v1/uploads"): ["files:write"],
        ("head", "/api/v1/uploads/{upload_id}"): ["files:read"],
        ("patch", "/api/v1/uploads/{upload_id}"): ["files:write"],
        ("post", "/api/v1/tokens"): ["tokens"],
        ("get", "/api/v1/users/me"): [],
    }
    for operation, scopes in expected.items():
        assert declared[operation] == scopes, operation
    # Authenticating a caller reads the database (the account or the key): every
    # protected operation may answer 503 `database_unavailable`, and says so.
    unlisted = {
        (method, path)
        for method, path in declared
        if "503" not in spec["paths"][path][method]["responses"]
    }
    assert unlisted == set()


def test_openapi_names_the_provider_when_one_is_configured(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        oidc_issuer="https://login.example.com/tenant/",
        oidc_audience="files-api",
    )
    spec = create_app(settings).openapi()
    oidc = spec["components"]["securitySchemes"]["oidc"]
    assert oidc["type"] == "openIdConnect"
    assert oidc["openIdConnectUrl"] == (
        "https://login.example.com/tenant/.well-known/openid-configuration"
    )
    security = spec["paths"]["/api/v1/files"]["get"]["security"]
    assert {"oidc": ["files:read"]} in security
