"""seau's error hierarchy.

Each error class carries its HTTP status and a stable machine ``code``; one
handler (`seau.problems`) renders every one of them as RFC 9457 problem details.
This module imports nothing from the HTTP framework so services can raise these.
"""

from __future__ import annotations

from typing import ClassVar


class SeauError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal server error"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}


class BadRequest(SeauError):
    status = 400
    code = "bad_request"
    title = "Bad request"


class MalformedMultipart(BadRequest):
    code = "malformed_multipart"
    title = "Malformed multipart body"


class NoFileInRequest(BadRequest):
    code = "no_file"
    title = "The request carries no file"


class InvalidCursor(BadRequest):
    code = "invalid_cursor"
    title = "Invalid pagination cursor"


class ValidationFailed(SeauError):
    status = 422
    code = "validation_error"
    title = "Invalid request"


class InvalidFileName(ValidationFailed):
    code = "invalid_file_name"
    title = "Invalid file name"


class NotAuthenticated(SeauError):
    status = 401
    code = "not_authenticated"
    title = "Authentication required"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class InvalidToken(NotAuthenticated):
    code = "invalid_token"
    title = "Invalid or expired token"


class InvalidCredentials(NotAuthenticated):
    code = "invalid_credentials"
    title = "Wrong email or password"


class SignupDisabled(SeauError):
    status = 403
    code = "signup_disabled"
    title = "Sign-up is disabled on this server"


class NotFound(SeauError):
    status = 404
    code = "not_found"
    title = "Not found"


class FileNotFound(NotFound):
    code = "file_not_found"
    title = "File not found"


class MethodNotAllowed(SeauError):
    status = 405
    code = "method_not_allowed"
    title = "Method not allowed"


class EmailTaken(SeauError):
    status = 409
    code = "email_taken"
    title = "An account with this email already exists"


class LengthRequired(SeauError):
    status = 411
    code = "length_required"
    title = "Length required"


class PayloadTooLarge(SeauError):
    status = 413
    code = "file_too_large"
    title = "File too large"


class TooManyFiles(SeauError):
    status = 413
    code = "too_many_files"
    title = "Too many files in one request"


class UnsupportedMediaType(SeauError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class RangeNotSatisfiable(SeauError):
    status = 416
    code = "range_not_satisfiable"
    title = "Range not satisfiable"

    def __init__(self, size: int, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Content-Range": f"bytes */{size}"})
        self.size = size


class ServiceUnavailable(SeauError):
    status = 503
    code = "service_unavailable"
    title = "Service unavailable"
    retry_after: ClassVar[int] = 5

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": str(self.retry_after)})


class StorageUnavailableError(ServiceUnavailable):
    code = "storage_unavailable"
    title = "Object storage unavailable"


class DatabaseUnavailable(ServiceUnavailable):
    code = "database_unavailable"
    title = "Database unavailable"
