"""Errors of the client commands (`seau login`, `seau upload`, ...), which talk to a
server over HTTP only. Each is shown to the user as one line."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx


class ClientError(Exception):
    """A failure to show the user as one line (without the `seau: ` prefix)."""


class ConnectionFailed(ClientError):
    """The request did not get an answer (refused, dropped, timed out)."""


class ApiError(ClientError):
    """The server answered with an error (problem details when it is a seau server)."""

    def __init__(self, message: str, *, status: int, code: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line."""


class ResumableUploadError(Exception):
    """The upload failed; ``response`` is the server's answer when it gave one.

    ``resumable`` says the server keeps what it received: uploading the same file
    again (with the same state file) continues it.
    """

    def __init__(
        self, message: str, *, response: httpx.Response | None = None, resumable: bool = False
    ) -> None:
        super().__init__(message)
        self.response = response
        self.resumable = resumable

    @property
    def status(self) -> int | None:
        return None if self.response is None else self.response.status_code


class ResumableUploadsUnsupported(ResumableUploadError):
    """The server has no resumable uploads (an older seau, or a store without them)."""
