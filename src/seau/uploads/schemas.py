"""What the upload service is configured with and what it answers the routes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from seau.db.models import Upload, UploadState
from seau.errors import BadRequest
from seau.uploads.errors import UploadTooLarge


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadLimits:
    max_size: int
    part_size: int
    """Of S3 parts; recorded per upload, so a change applies to new uploads only."""
    expiry: timedelta
    """How long an upload lives after its last write (and a done one's row)."""
    lease: timedelta
    max_name_length: int = 255
    max_active: int = 100
    """Unfinished, unexpired uploads one owner may have at once (`SEAU_MAX_ACTIVE_UPLOADS`)."""

    def room(
        self, *, length: int | None, offset: int, new_length: int | None, declared: int | None
    ) -> tuple[int | None, int]:
        """The upload's length once this request's `Upload-Length` applies, and
        how many bytes the request may still carry; refuses a length that
        changes, falls below the offset or passes the limit, and a declared
        body larger than the room."""
        if new_length is not None:
            if length is None:
                if new_length < offset:
                    raise BadRequest("Upload-Length is below the upload's offset")
                if new_length > self.max_size:
                    raise UploadTooLarge(f"the upload exceeds the limit of {self.max_size} bytes")
                length = new_length
            elif new_length != length:
                raise BadRequest("Upload-Length cannot change once set")
        room = (length if length is not None else self.max_size) - offset
        if declared is not None and declared > room:
            raise UploadTooLarge(f"the request carries {declared} bytes; {room} remain")
        return length, room


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadStatus:
    id: uuid.UUID
    offset: int
    length: int | None
    metadata: str | None
    expires_at: datetime | None
    """None once the upload is a file."""

    @property
    def done(self) -> bool:
        return self.expires_at is None

    @classmethod
    def of(cls, row: Upload) -> UploadStatus:
        return cls(
            id=row.id,
            offset=row.upload_offset,
            length=row.length,
            metadata=row.tus_metadata,
            expires_at=None if row.state is UploadState.DONE else row.expires_at,
        )
