"""The OpenAPI document and the generic error shape."""

from __future__ import annotations

from pathlib import Path

import httpx

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


async def test_every_protected_operation_declares_its_scopes_for_every_scheme(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["token"] == {**schemes["token"], "type": "http", "scheme": "bearer"}
    # No provider configured in this app: no OpenID Connect scheme.
    assert "oidc" not in schemes
    expected = {
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
    for (method, path), scopes in expected.items():
        security = spec["paths"][path][method]["security"]
        assert security == [{"bearer": scopes}, {"token": scopes}], (method, path)


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
