"""Errors of resumable uploads, with the status codes tus defines for them.

Rendered like every seau error (problem+json); tus clients read the status and
the headers (`Upload-Offset`, `Tus-Version`), never the body.
"""

from __future__ import annotations

from seau.errors import BadRequest, NotFound, PayloadTooLarge, SeauError


class HeaderError(ValueError):
    """A tus header that does not parse; the message names it. The route turns it
    into `InvalidTusHeader`: the parsers stay pure functions of strings."""


class UnsupportedChecksum(HeaderError):
    """`Upload-Checksum` names an algorithm this server does not offer."""


class BodyInterrupted(Exception):
    """The request body ended early (client gone, or silent too long).

    What arrived is kept, as tus asks, unless an `Upload-Checksum` covers the
    whole body: then nothing of it can be verified, and it is discarded.
    """


class _WithOffset(SeauError):
    """An answer that tells the client where the upload stands."""

    def __init__(self, offset: int, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Upload-Offset": str(offset)})
        self.offset = offset


class UploadNotFound(NotFound):
    code = "upload_not_found"
    title = "Upload not found"


class UploadExpired(SeauError):
    status = 410
    code = "upload_expired"
    title = "The upload expired"


class UploadDataLost(SeauError):
    status = 410
    code = "upload_data_lost"
    title = "The upload's stored bytes are gone; start it again"


class InvalidTusHeader(BadRequest):
    code = "invalid_tus_header"
    title = "Invalid tus header"


class OffsetMismatch(_WithOffset):
    status = 409
    code = "upload_offset_mismatch"
    title = "Upload-Offset does not match the upload's offset"


class UploadLocked(_WithOffset):
    status = 423
    code = "upload_locked"
    title = "Another request is writing to this upload"


class ChecksumMismatch(_WithOffset):
    status = 460
    code = "checksum_mismatch"
    title = "Upload-Checksum does not match the bytes received; they were discarded"


class UploadTooLarge(PayloadTooLarge):
    """Same code as the other upload routes: the limit is the same kind of limit."""


class TusVersionUnsupported(SeauError):
    status = 412
    code = "tus_version_unsupported"
    title = "Unsupported Tus-Resumable version"

    def __init__(self, supported: str, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Tus-Version": supported})


class TooManyActiveUploads(SeauError):
    """The owner has `SEAU_MAX_ACTIVE_UPLOADS` unfinished, unexpired uploads already."""

    status = 429
    code = "too_many_active_uploads"
    title = "Too many unfinished resumable uploads"


class UploadsUnsupported(SeauError):
    status = 501
    code = "uploads_unsupported"
    title = "This server's store does not support resumable uploads"
