from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class FileRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    size: int = Field(description="Bytes.")
    content_type: str = Field(
        description="Detected from the first bytes (libmagic, as `file --mime-type`); "
        "downloads are served with it."
    )
    declared_type: str = Field(
        description="What the uploader claimed: its `Content-Type` (tus: `filetype`), "
        "else what the name's extension suggests. Shown, never used to serve the file."
    )
    sha256: str = Field(description="Hex SHA-256 of the content; also its ETag.")
    created_at: datetime
    updated_at: datetime


class UploadResult(BaseModel):
    files: list[FileRead]


class FileList(BaseModel):
    items: list[FileRead]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class FileRename(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=1024)


class LinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expires_in: int | None = Field(
        default=None,
        ge=1,
        description="Seconds the link lasts; at most (and by default) `SEAU_LINK_MAX_TTL_SECONDS`.",
    )
    disposition: Literal["attachment", "inline"] = Field(
        default="attachment",
        description="`inline` is honoured only for safe media types (images, PDF, plain "
        "text, audio, video); anything else downloads as an attachment.",
    )


class LinkCreated(BaseModel):
    url: str = Field(
        description="Absolute (presigned by S3), or a path on this server when "
        "`SEAU_PUBLIC_URL` is not set. Anyone holding it can download until `expires_at`."
    )
    expires_at: datetime


def file_event_data(row: object) -> dict[str, object]:
    """An event's `data` for a file row: the file as the API shows it (the outbox
    adds the owner's subject)."""
    data: dict[str, object] = FileRead.model_validate(row).model_dump(mode="json")
    return data
