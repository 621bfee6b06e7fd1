from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

MAX_PASSWORD_LENGTH = 1024
MAX_DOWNLOADS = 1_000_000_000
# A bound for the schema; the server's own (SEAU_SHARE_MAX_TTL_SECONDS) is checked after.
MAX_EXPIRES_IN = 100 * 366 * 24 * 3600


class ShareCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expires_in: int | None = Field(
        default=None,
        gt=0,
        le=MAX_EXPIRES_IN,
        description="Seconds the link lasts; default `SEAU_SHARE_DEFAULT_TTL_SECONDS`, "
        "at most `SEAU_SHARE_MAX_TTL_SECONDS` (more is 422 `invalid_share`).",
    )
    password: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_PASSWORD_LENGTH,
        description="Asked of downloaders by HTTP Basic authentication (any user name).",
    )
    max_downloads: int | None = Field(
        default=None,
        ge=1,
        le=MAX_DOWNLOADS,
        description="Downloads allowed (each GET of the content from byte 0); null: no limit.",
    )


class ShareRead(BaseModel):
    id: uuid.UUID
    file_id: uuid.UUID
    file_name: str
    created_at: datetime
    expires_at: datetime
    max_downloads: int | None = Field(description="Null: no limit.")
    downloads: int = Field(description="Downloads counted so far.")
    has_password: bool


class ShareCreated(ShareRead):
    url: str = Field(
        description="The link, with its secret: shown this once (seau keeps only its hash). "
        "Absolute with `SEAU_PUBLIC_URL`, else a path."
    )


class ShareList(BaseModel):
    items: list[ShareRead]
