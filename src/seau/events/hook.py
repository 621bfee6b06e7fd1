"""The pre-upload hook: the application says yes or no before any byte is stored.

With ``SEAU_PRE_UPLOAD_HOOK_URL``, every upload (each file of a multipart request,
a raw body, a tus upload at its creation) is first POSTed to the application as
``{"subject", "name", "size", "content_type", "via"}``, signed like the webhooks
(Standard Webhooks, a fresh ``webhook-id`` per call). A 2xx lets it proceed; a
4xx refuses it (403 ``rejected_by_hook`` with the hook's ``reason``); a timeout, a
refused connection, a redirect (never followed) or any other answer refuses it
with 503 ``hook_unavailable``, or lets it proceed when the hook fails open.

The call is made before the row, the object or the staging exist, so a refused
upload leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from seau import __version__
from seau.errors import HookUnavailable, RejectedByHook
from seau.events.dispatcher import signed_headers

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("seau.hooks")

REASON_MAX_CHARS = 500
"""What of the hook's ``reason`` reaches the uploader."""
_ANSWER_MAX_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Proposed:
    """An upload about to start, as the hook is told of it."""

    subject: str | None
    """The owner's subject (`sub` of their tokens; the account id for seau's own)."""
    name: str
    """The name the file will have (already checked by seau's rules)."""
    size: int | None
    """Bytes announced, when the client announced them."""
    content_type: str | None
    via: str
    """``multipart``, ``raw``, ``tus`` or ``direct``."""


PreUpload = Callable[[Proposed], Awaitable[None]]
"""What the services call before they store anything; raises to refuse."""


class PreUploadHook:
    def __init__(self, *, url: str, secret: str, timeout: float, fail_open: bool) -> None:
        """Builds its HTTP client, which connects on first use. httpx is imported
        here, only when a hook is configured (`seau.events.dispatcher._http`)."""
        import httpx

        self._url = url
        self._secret = secret
        self._timeout = timeout
        self._fail_open = fail_open
        self._client = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            headers={"user-agent": f"seau/{__version__}"},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __call__(self, proposed: Proposed) -> None:
        import httpx

        body = json.dumps(asdict(proposed), ensure_ascii=False, separators=(",", ":")).encode()
        headers = signed_headers(uuid.uuid4(), body, self._secret)
        try:
            # httpx bounds each phase; the hook's answer as a whole is bounded here.
            async with asyncio.timeout(self._timeout):
                async with self._client.stream(
                    "POST", self._url, content=body, headers=headers
                ) as response:
                    answer = await _read_capped(response)
        except (TimeoutError, httpx.TimeoutException):
            return self._unavailable(proposed, "did not answer in time")
        except httpx.HTTPError as exc:
            return self._unavailable(proposed, f"{exc.__class__.__name__}: {exc}")
        status = response.status_code
        if 200 <= status < 300:
            return None
        if 400 <= status < 500:
            reason = _reason(answer)
            log.info(
                "pre-upload hook refused %r (%s): %s",
                proposed.name,
                status,
                reason,
                extra={"via": proposed.via, "status": status},
            )
            raise RejectedByHook(reason or f"the application refused this upload ({status})")
        return self._unavailable(proposed, f"answered {status}")

    def _unavailable(self, proposed: Proposed, why: str) -> None:
        log.warning(
            "pre-upload hook %s%s",
            why,
            "; the upload proceeds (fail-open)" if self._fail_open else "",
            extra={"via": proposed.via},
        )
        if not self._fail_open:
            raise HookUnavailable(f"the application's upload check {why}; try again later")


async def _read_capped(response: httpx.Response) -> bytes:
    answer = bytearray()
    async for chunk in response.aiter_bytes():
        answer += chunk
        if len(answer) >= _ANSWER_MAX_BYTES:
            break
    return bytes(answer[:_ANSWER_MAX_BYTES])


def _reason(answer: bytes) -> str | None:
    """The ``reason`` string of a JSON answer, shortened; None when there is none."""
    try:
        parsed = json.loads(answer)
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    reason = parsed.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        return None
    return reason.strip()[:REASON_MAX_CHARS]
