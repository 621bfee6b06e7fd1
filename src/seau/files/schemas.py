from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class FileRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    size: int = Field(description="Bytes.")
    content_type: str
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


def file_event_data(row: object) -> dict[str, object]:
    """An event's `data` for a file row: the file as the API shows it (the outbox
    adds the owner's subject)."""
    data: dict[str, object] = FileRead.model_validate(row).model_dump(mode="json")
    return data
