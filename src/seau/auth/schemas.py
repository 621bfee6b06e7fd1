from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from seau.auth.passwords import MIN_LENGTH

Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        min_length=3,
        max_length=320,
        # No whitespace and no control characters (PostgreSQL refuses NUL in text).
        pattern=r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$",
    ),
]
# The length is in the schema (OpenAPI shows it; 422 `validation_error` like any
# malformed field); `check_new_password` adds what a schema cannot say (422
# `weak_password`: a common password, or one short once its outer spaces go).
Password = Annotated[
    str,
    Field(
        min_length=MIN_LENGTH,
        max_length=1024,
        description=f"At least {MIN_LENGTH} characters, and not one of the most commonly "
        "used passwords.",
    ),
]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    password: Password


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str | None
    is_admin: bool
    created_at: datetime


class WhoAmI(BaseModel):
    id: uuid.UUID | None = Field(
        description="The owner's id; null for a service key acting for nobody."
    )
    subject: str | None = Field(description="Who the owner is to tokens (`sub`).")
    email: str | None
    name: str | None
    is_admin: bool
    created_at: datetime | None
    via: Literal["session", "oidc", "app", "personal", "service"]
    scopes: list[str]
    acting_for: bool = Field(description="A service key acting for `subject` (Seau-Subject).")


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the OAuth2 token type, not a secret)
    expires_in: int = Field(description="Seconds until the token expires.")


class AccessTokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=100, description="What it is for.")]
    scopes: Annotated[
        list[str],
        Field(
            min_length=1,
            max_length=10,
            description="Personal tokens: `files:read`, `files:write`.",
        ),
    ]
    expires_in: Annotated[
        int | None,
        Field(gt=0, le=5 * 366 * 24 * 3600, description="Seconds; null: never expires."),
    ] = None


class AccessTokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


class AccessTokenCreated(AccessTokenRead):
    token: str = Field(description="Shown this once; seau keeps only its hash.")
