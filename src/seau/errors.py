"""seau's error hierarchy.

Each error class carries its HTTP status and a stable machine ``code``; one
handler (`seau.problems`) renders every one of them as RFC 9457 problem details.
This module imports nothing from the HTTP framework so services can raise these.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable
from typing import ClassVar, TypeVar

from seau.storage.errors import StorageUnavailable

log = logging.getLogger("seau")

T = TypeVar("T")


class SeauError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal server error"
    members: ClassVar[tuple[str, ...]] = ()
    """Extension members its problem detail carries (in ``extensions``), documented."""

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}
        # Extension members of the problem detail (RFC 9457 section 3.2).
        self.extensions: dict[str, str | int] = {}


class BadRequest(SeauError):
    status = 400
    code = "bad_request"
    title = "Bad request"


class MalformedMultipart(BadRequest):
    code = "malformed_multipart"
    title = "Malformed multipart body"


class InvalidIdempotencyKey(BadRequest):
    code = "invalid_idempotency_key"
    title = "Invalid Idempotency-Key"


class NoFileInRequest(BadRequest):
    code = "no_file"
    title = "The request carries no file"


class InvalidCursor(BadRequest):
    code = "invalid_cursor"
    title = "Invalid pagination cursor"


class ClientDisconnected(BadRequest):
    """Nobody reads this answer; it names the outcome in logs and metrics."""

    code = "client_disconnected"
    title = "The client went away during the upload"


class ValidationFailed(SeauError):
    status = 422
    code = "validation_error"
    title = "Invalid request"


class IdempotencyKeyReused(ValidationFailed):
    code = "idempotency_key_reused"
    title = "This Idempotency-Key was used for another request"


class InvalidScopes(ValidationFailed):
    code = "invalid_scopes"
    title = "Invalid token request"


class InvalidFileName(ValidationFailed):
    code = "invalid_file_name"
    title = "Invalid file name"


class InvalidEmail(ValidationFailed):
    code = "invalid_email"
    title = "Invalid email address"


class WeakPassword(ValidationFailed):
    code = "weak_password"
    title = "The password is too easy to guess"


class NotAuthenticated(SeauError):
    """No credentials (RFC 6750 section 3.1: the challenge names no error)."""

    status = 401
    code = "token_invalid"
    title = "Authentication required"
    challenge: ClassVar[str] = 'Bearer realm="seau"'

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": self.challenge})


class InvalidToken(NotAuthenticated):
    """Malformed, unsigned, badly signed, for another issuer or audience, revoked."""

    title = "Invalid token"
    challenge = 'Bearer realm="seau", error="invalid_token"'


class TokenExpired(InvalidToken):
    code = "token_expired"
    title = "The token has expired"


class InsufficientScope(SeauError):
    """A valid token that does not allow this operation (RFC 6750 section 3.1)."""

    status = 403
    code = "insufficient_scope"
    title = "The token does not allow this"

    def __init__(self, scope: str, detail: str | None = None) -> None:
        super().__init__(
            detail or f"this needs a token with the {scope!r} scope",
            headers={
                "WWW-Authenticate": (
                    f'Bearer realm="seau", error="insufficient_scope", scope="{scope}"'
                )
            },
        )
        self.scope = scope


class SubjectRequired(BadRequest):
    code = "subject_required"
    title = "Name the subject to act for"


class InvalidSubject(BadRequest):
    code = "invalid_subject"
    title = "Invalid subject"


class InvalidCredentials(NotAuthenticated):
    code = "invalid_credentials"
    title = "Wrong email or password"


class SharePasswordRequired(NotAuthenticated):
    """A share with a password, asked for without one (HTTP Basic, any user name)."""

    code = "share_password_required"
    title = "This share needs its password"
    challenge = 'Basic realm="seau share", charset="UTF-8"'


class WrongSharePassword(InvalidCredentials):
    # An InvalidCredentials, so that the per-share throttle counts it as a failure.
    code = "share_password_invalid"
    title = "Wrong password for this share"
    challenge = 'Basic realm="seau share", charset="UTF-8"'


class InvalidLink(ValidationFailed):
    code = "invalid_link"
    title = "Invalid download link request"


class InvalidShare(ValidationFailed):
    code = "invalid_share"
    title = "Invalid share"


class SignupDisabled(SeauError):
    status = 403
    code = "signup_disabled"
    title = "Sign-up is disabled on this server"


class LocalAccountsDisabled(SeauError):
    status = 403
    code = "local_accounts_disabled"
    title = "Sign in with the identity provider: seau's own accounts are turned off"


class RejectedByHook(SeauError):
    """The application's pre-upload hook answered 4xx (`seau.events.hook`)."""

    status = 403
    code = "rejected_by_hook"
    title = "The application refused this upload"


class NotFound(SeauError):
    status = 404
    code = "not_found"
    title = "Not found"


class TokenNotFound(NotFound):
    code = "token_not_found"
    title = "No such token"


class FileNotFound(NotFound):
    code = "file_not_found"
    title = "File not found"


class WebhookNotFound(NotFound):
    code = "webhook_not_found"
    title = "No such webhook endpoint"


class DeliveryNotFound(NotFound):
    code = "delivery_not_found"
    title = "No such failed delivery"


class AdminRequired(SeauError):
    status = 403
    code = "admin_required"
    title = "Only an admin (or a service key with the admin scope) may do this"


class ShareNotFound(NotFound):
    """No such share, revoked, or its file deleted: the three look the same."""

    code = "share_not_found"
    title = "No such share"


class LinkNotFound(NotFound):
    """A download link seau did not sign (or signed with another secret key)."""

    code = "link_not_found"
    title = "No such download link"


class MethodNotAllowed(SeauError):
    status = 405
    code = "method_not_allowed"
    title = "Method not allowed"


class EmailTaken(SeauError):
    status = 409
    code = "email_taken"
    title = "An account with this email already exists"


class IdempotencyKeyInUse(SeauError):
    status = 409
    code = "idempotency_key_in_use"
    title = "A request with this Idempotency-Key is still running"


class Gone(SeauError):
    status = 410
    code = "gone"
    title = "Gone"


class ShareExpired(Gone):
    code = "share_expired"
    title = "The share has expired"


class LinkExpired(Gone):
    code = "link_expired"
    title = "The download link has expired"


class ShareExhausted(Gone):
    code = "share_exhausted"
    title = "The share has been downloaded as many times as it allows"


class PayloadTooLarge(SeauError):
    status = 413
    code = "file_too_large"
    title = "File too large"


class RequestTooLarge(PayloadTooLarge):
    code = "request_too_large"
    title = "Request body too large"


class QuotaExceeded(SeauError):
    """The upload does not fit in what is left of its owner's quota (`seau.quotas`).

    The problem detail carries `unit` (`bytes` or `files`: the quota in the way),
    `limit`, `used`, `reserved` (held by the owner's uploads in flight) and
    `remaining`, all in that unit."""

    status = 413
    code = "quota_exceeded"
    title = "Quota exceeded"
    members = ("unit", "limit", "used", "reserved", "remaining")

    def __init__(
        self, *, unit: str, limit: int, used: int, reserved: int, detail: str | None = None
    ) -> None:
        remaining = max(0, limit - used - reserved)
        super().__init__(detail or f"the upload does not fit: {remaining} of {limit} {unit} remain")
        self.extensions = {
            "unit": unit,
            "limit": limit,
            "used": used,
            "reserved": reserved,
            "remaining": remaining,
        }


class TooManyFiles(SeauError):
    status = 413
    code = "too_many_files"
    title = "Too many files in one request"


class UnsupportedMediaType(SeauError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class TypeNotAllowed(UnsupportedMediaType):
    """The type detected from the upload's first bytes is not in
    `SEAU_ALLOWED_TYPES` (`seau.files.types`); what the uploader declared does not
    matter. The problem detail carries `detected` (the type) and `allowed` (the
    patterns, comma-separated)."""

    code = "type_not_allowed"
    title = "File type not allowed"
    members = ("detected", "allowed")

    def __init__(self, *, detected: str, allowed: tuple[str, ...]) -> None:
        super().__init__(
            f"files of type {detected} are not allowed here (allowed: {', '.join(allowed)})"
        )
        self.extensions = {"detected": detected, "allowed": ",".join(allowed)}


class RangeNotSatisfiable(SeauError):
    status = 416
    code = "range_not_satisfiable"
    title = "Range not satisfiable"

    def __init__(self, size: int, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Content-Range": f"bytes */{size}"})
        self.size = size


class TooManyAttempts(SeauError):
    status = 429
    code = "too_many_attempts"
    title = "Too many failed sign-in attempts"

    def __init__(self, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(f"try again in {seconds} s", headers={"Retry-After": str(seconds)})


class TooManySignUps(TooManyAttempts):
    code = "too_many_sign_ups"
    title = "Too many sign-ups; try again later"


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


class HookUnavailable(ServiceUnavailable):
    """The pre-upload hook timed out, could not be reached or answered 5xx."""

    code = "hook_unavailable"
    title = "The application's upload check is unavailable"


class PasswordHashingBusy(ServiceUnavailable):
    """Every password-hashing worker is busy and its queue is full."""

    code = "password_hashing_busy"
    title = "Too many sign-ins and sign-ups at once"
    retry_after = 2


# -- errors of the server-side commands (`seau serve`'s checks, `seau user`) --------
# Not HTTP answers: the CLI prints their one-line message and exits non-zero.


class CommandError(Exception):
    """A server-side command cannot do its work; the message is one line."""


class ConfigurationError(CommandError):
    """Configuration that cannot work (a setting, a secret key file)."""


class PreflightError(CommandError):
    """A dependency is unreachable or misconfigured."""


class NoSuchUser(CommandError):
    """No account has this email."""


async def storage_call(operation: Awaitable[T]) -> T:
    """``operation``'s result; a store that cannot be reached becomes 503
    `storage_unavailable`, whichever service met it. Other storage errors
    (`ObjectNotFound`, `StagingLost`) are the caller's to interpret."""
    try:
        return await operation
    except StorageUnavailable as exc:
        log.warning("storage unavailable: %s", exc)
        raise StorageUnavailableError() from exc
