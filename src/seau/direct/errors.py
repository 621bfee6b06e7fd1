"""Errors of direct uploads; rendered as problem+json like every seau error."""

from __future__ import annotations

from seau.errors import BadRequest, NotFound, SeauError


class DirectUploadNotFound(NotFound):
    """No such direct upload of the caller's (another owner's is not found either)."""

    code = "direct_upload_not_found"
    title = "Direct upload not found"


class DirectUploadExpired(SeauError):
    """Its time ran out before it was completed; its bytes are removed."""

    status = 410
    code = "direct_upload_expired"
    title = "The direct upload expired"


class NotMultipart(BadRequest):
    """Parts asked of a single-part upload, or none given to complete a multipart one."""

    code = "direct_upload_parts"
    title = "This direct upload's parts do not fit the request"


class VerificationFailed(SeauError):
    """The stored bytes are not what was declared: the object is deleted and no file
    is made. The problem detail's `differs` names what differed (comma-separated:
    `size`, `sha256`, `content_type`, `parts`)."""

    status = 422
    code = "verification_failed"
    title = "The uploaded bytes do not match what was declared"
    members = ("differs",)

    def __init__(self, differs: list[str], detail: str) -> None:
        super().__init__(detail)
        self.extensions = {"differs": ",".join(differs)}


class BadSignature(NotFound):
    """A signed URL of seau's that seau did not sign (or for another upload)."""

    code = "direct_url_invalid"
    title = "Not a valid upload URL"


class UrlExpired(SeauError):
    status = 403
    code = "direct_url_expired"
    title = "The upload URL expired; ask for a new one"


class PolicyViolated(SeauError):
    """A form sent to seau's own URL that its policy does not allow (another
    `Content-Type` than declared), as S3 refuses one (403)."""

    status = 403
    code = "direct_upload_policy"
    title = "The upload does not match what its URL allows"


class DirectUploadsUnsupported(SeauError):
    status = 501
    code = "direct_uploads_unsupported"
    title = "This server's store does not support direct uploads"
