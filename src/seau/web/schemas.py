"""What the page (or any client) needs to know to sign in, before it has a token, and
how it sends large files."""

from __future__ import annotations

from pydantic import BaseModel, Field


class OidcClient(BaseModel):
    issuer: str = Field(
        description="The provider's issuer URL; its discovery document is "
        "`{issuer}/.well-known/openid-configuration`."
    )
    client_id: str = Field(description="The public client to sign in with.")
    scopes: str = Field(description="The scopes to ask for, space-separated.")


class DirectUploadOptions(BaseModel):
    multipart_threshold_bytes: int = Field(
        description="Files of this size or more go straight to the bucket in parts "
        '(`POST /api/v1/direct-uploads` with `"multipart": true`); '
        "`SEAU_DIRECT_MULTIPART_THRESHOLD_BYTES`."
    )


class SignInOptions(BaseModel):
    local_accounts: bool = Field(
        description="seau's own accounts are on: sign up with `POST /api/v1/users`, sign "
        "in with `POST /api/v1/auth/token`."
    )
    oidc: OidcClient | None = Field(
        description="Sign in at the identity provider (Authorization Code with PKCE, "
        "S256) and send its access token; null when no public client is configured."
    )
    direct_uploads: DirectUploadOptions | None = Field(
        default=None,
        description="The store is S3 and the page may send large files straight to the "
        "bucket (its origin is in the page's CSP); null on the local store, where the "
        "page uploads through seau.",
    )
