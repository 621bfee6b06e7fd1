"""The OpenAPI document's security: every scheme a bearer token can come from, and
the scopes each operation needs (FastAPI writes them for the password-flow scheme
from the routes' `Security(..., scopes=...)`; the others are added here)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from seau.settings import Settings

PASSWORD_SCHEME = "bearer"  # noqa: S105 (a scheme name, not a secret)
"""The scheme `seau.deps` declares (seau's own sign-in, OAuth2 password flow)."""


def install_security_schemes(app: FastAPI, settings: Settings) -> None:
    """Make ``app.openapi()`` declare, beside seau's own sign-in: a plain HTTP bearer
    scheme (personal access tokens, service keys, the application's own tokens) and,
    when configured, the OpenID Connect provider with its discovery URL; each
    operation lists them as alternatives, with the same scopes."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        schemes: dict[str, Any] = schema.setdefault("components", {}).setdefault(
            "securitySchemes", {}
        )
        alternatives = ["token"]
        schemes["token"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal access token (`seau_pat_…`), a service key "
            "(`seau_sk_…`; add `Seau-Subject: <subject>` to act for someone) or a JWT "
            "the application's backend signed (`SEAU_APP_JWT_SECRET`).",
        }
        if settings.oidc_issuer is not None:
            alternatives.append("oidc")
            schemes["oidc"] = {
                "type": "openIdConnect",
                "openIdConnectUrl": settings.oidc_issuer.rstrip("/")
                + "/.well-known/openid-configuration",
                "description": "The identity provider's access tokens "
                f"(audience `{settings.oidc_audience}`).",
            }
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                requirements = operation.get("security")
                if not isinstance(requirements, list):
                    continue
                for requirement in list(requirements):
                    if PASSWORD_SCHEME in requirement:
                        scopes = requirement[PASSWORD_SCHEME]
                        requirements.extend({name: scopes} for name in alternatives)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
