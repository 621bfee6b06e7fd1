from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DirectUploadCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=1024)
    size: int = Field(ge=0, description="Bytes; reserved in the quota from now on.")
    content_type: str | None = Field(
        default=None,
        max_length=255,
        description="The type the bytes must be (checked against their first bytes at "
        "completion); `application/octet-stream` when absent.",
    )
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="Hex SHA-256 of the bytes, checked at completion. On S3 a single-part "
        "POST then carries it as `x-amz-checksum-sha256`, so S3 itself refuses other bytes.",
    )
    multipart: bool | None = Field(
        default=None,
        description="Send in parts; by default only from "
        "`SEAU_DIRECT_MULTIPART_THRESHOLD_BYTES` (and always above 5 GiB).",
    )


class FormPost(BaseModel):
    method: Literal["POST"] = "POST"
    url: str = Field(description="Where to POST `multipart/form-data`.")
    fields: dict[str, str] = Field(
        description="Form fields to send as they are, before the file, which goes last in "
        "a field named `file`."
    )
    expires_at: datetime = Field(
        description="The URL works until then; `GET` the upload for a fresh one."
    )


class DirectUploadRead(BaseModel):
    id: uuid.UUID = Field(description="Also the id of the file it becomes.")
    name: str
    size: int
    content_type: str = Field(description="As declared.")
    sha256: str | None
    multipart: bool = Field(description="Whether the bytes go in parts.")
    part_size: int | None = Field(
        description="Multipart: the size of every part but the last (S3 wants 5 MiB or more)."
    )
    part_count: int | None = Field(description="Multipart: how many parts of `part_size`.")
    expires_at: datetime = Field(description="Complete before then, or the upload is removed.")
    upload: FormPost | None = Field(
        description="Single part: the form POST that sends the bytes; null for multipart "
        "(ask `POST .../parts` for part URLs)."
    )


class PartNumbers(BaseModel):
    model_config = ConfigDict(extra="forbid")

    numbers: list[int] = Field(min_length=1, max_length=1000)


class PartUrl(BaseModel):
    number: int
    url: str = Field(description="`PUT` the part's bytes here; the answer's `ETag` is the part's.")


class PartUrls(BaseModel):
    parts: list[PartUrl]
    expires_at: datetime


class StoredPartRead(BaseModel):
    number: int
    etag: str
    size: int


class StoredParts(BaseModel):
    parts: list[StoredPartRead] = Field(description="What the store holds, by number.")


class CompletedPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: int = Field(ge=1, le=10_000)
    etag: str = Field(min_length=1, max_length=255)


class DirectUploadComplete(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parts: list[CompletedPart] | None = Field(
        default=None, max_length=10_000, description="Multipart: every part, by number."
    )
