"""`Idempotency-Key` for the routes that create something: the HTTP side of
`seau.idempotency` (what a request's fingerprint is, and how a stored answer is
sent again).

A route wraps its work in ``async with once(request, idempotency, owner) as run``
and, when ``run.replay`` is set, answers it instead of doing the work; otherwise
it hands the service ``run.in_commit(respond)``, which stores the answer in the
transaction that makes what it answers, and answers ``run.keep(response)``.
Without the header it costs nothing (no database work).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from seau.auth.owner_check import OwnerCheck
from seau.db.unit import InCommit
from seau.errors import IdempotencyKeyInUse, IdempotencyKeyReused, InvalidIdempotencyKey
from seau.idempotency.service import RENEW_EVERY, Answer, Claim, Idempotency

log = logging.getLogger("seau.idempotency")

T = TypeVar("T")

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"

IDEMPOTENCY_KEY: dict[str, Any] = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "description": "A key of your choice (a UUID), 1 to 255 visible ASCII characters. A "
    "retry with the same key from the same owner within 24 hours answers the first "
    "answer (header `Idempotent-Replayed: true`) without doing the work again; the same "
    "key with a different request answers 422 `idempotency_key_reused`, and while the "
    "first request runs, 409 `idempotency_key_in_use`. A request that failed frees its key.",
    # The bounds are in the description, not the schema: a fuzzer's out-of-bounds key
    # on a tus creation meets the protocol's version check first (412), which is a
    # refusal, but not one a generic negative-data check expects.
    "schema": {"type": "string"},
}
"""The header's OpenAPI parameter, for the routes that accept it."""
IDEMPOTENCY_ERRORS = (InvalidIdempotencyKey, IdempotencyKeyReused, IdempotencyKeyInUse)
"""What the header may answer, for the routes' documented errors."""

# The request headers that decide what a request does, besides its method, path
# and query: a retry must send the same. `Content-Type` counts without its
# parameters (a multipart boundary is new on every retry). The body's framing
# does not: a proxy may turn a chunked body into one with a length, and a
# browser's retry may go out framed otherwise than its first try.
_SHAPING = (
    "upload-length",
    "upload-defer-length",
    "upload-metadata",
    "upload-checksum",
)
# The response headers a replay repeats (the rest are the moment's: Date, the
# request id, rate limits).
_REPLAYED_HEADERS = frozenset(
    {
        "content-type",
        "location",
        "upload-offset",
        "upload-length",
        "upload-expires",
        "upload-defer-length",
        "tus-resumable",
        "cache-control",
    }
)


def fingerprint(request: Request, *, body: bytes = b"") -> str:
    """What the request asks: method, path, sorted query, media type, the headers
    that shape it, and ``body`` (a route's parsed JSON, canonical). A file's bytes
    are not in it (they arrive after the answer would have to be chosen): a retry
    is recognised by everything else."""
    digest = hashlib.sha256()
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    parts = [
        request.method,
        request.url.path,
        "&".join(sorted(f"{name}={value}" for name, value in request.query_params.multi_items())),
        media_type,
        *(request.headers.get(name, "") for name in _SHAPING),
    ]
    for part in parts:
        digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
    digest.update(body)
    return digest.hexdigest()


class Once:
    """One request's part in its key: a stored answer to send again, or the claim
    to answer."""

    def __init__(
        self,
        *,
        replay: Response | None = None,
        claim: Claim | None = None,
        idempotency: Idempotency | None = None,
    ) -> None:
        self.replay = replay
        self._claim = claim
        self._idempotency = idempotency
        self.kept = False
        self._answered = False

    @property
    def claimed(self) -> bool:
        """The request carries a key and runs under it: its answer is to be kept."""
        return self._claim is not None

    def in_commit(self, respond: Callable[[T], Response]) -> InCommit[T] | None:
        """What a service runs in the transaction that makes the work's result, before
        its commit, given that result: it stores ``respond(made)`` as the answer, so
        that the answer commits with the work or not at all (None without a key).
        This is the only way an answer is stored: a process killed right after the
        commit leaves the answer, which a retry replays, not a claim it would take
        over and run again. If the commit fails, the run ends in an error and
        releases the key."""
        claim, idempotency = self._claim, self._idempotency
        if claim is None or idempotency is None:
            return None

        async def store(session: AsyncSession, made: T) -> None:
            self._answered = await idempotency.answer_in(session, claim, _answer_of(respond(made)))

        return store

    def keep(self, response: Response) -> Response:
        """Answer ``response``, the twin of what `in_commit` stored with the work."""
        if self._claim is None:
            return response
        if self._answered:
            self.kept = True
        else:
            # Taken over while it ran (its process stalled past `ABANDONED`): the
            # answer belongs to the request that holds the key now.
            log.warning("an idempotency claim was taken over before its answer was stored")
        return response


def _answer_of(response: Response) -> Answer:
    return Answer(
        status=response.status_code,
        headers=tuple(
            (name, value) for name, value in response.headers.items() if name in _REPLAYED_HEADERS
        ),
        body=bytes(response.body),
    )


@contextlib.asynccontextmanager
async def once(
    request: Request,
    idempotency: Idempotency,
    owner_id: uuid.UUID,
    *,
    body: bytes = b"",
    check: OwnerCheck | None = None,
) -> AsyncIterator[Once]:
    """Claim the request's `Idempotency-Key` (if it has one) for its run, or give
    the stored answer to replay. A run that raises, or ends without an answer
    stored by `Once.in_commit`, releases the key. ``check``: the caller's owner check
    still to make (`seau.deps.FilesWriterFolded`), made before the key is claimed or
    an answer replayed."""
    key = request.headers.get(HEADER)
    if key is None:
        yield Once()
        return
    outcome = await idempotency.begin(
        owner_id=owner_id, key=key, fingerprint=fingerprint(request, body=body), check=check
    )
    if isinstance(outcome, Answer):
        yield Once(replay=_replayed(outcome))
        return
    run = Once(claim=outcome, idempotency=idempotency)
    renewing = asyncio.create_task(_renew(idempotency, outcome))
    try:
        yield run
    finally:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing
        if not run.kept:
            try:
                await asyncio.shield(idempotency.release(outcome))
            except Exception:
                log.warning("could not release an idempotency key", exc_info=True)


def _replayed(answer: Answer) -> Response:
    response = Response(content=answer.body, status_code=answer.status)
    for name, value in answer.headers:
        response.headers[name] = value
    response.headers[REPLAYED] = "true"
    return response


async def _renew(idempotency: Idempotency, claim: Claim) -> None:
    while True:
        await asyncio.sleep(RENEW_EVERY.total_seconds())
        try:
            if not await idempotency.renew(claim):
                return
        except Exception:
            log.warning("could not renew an idempotency claim", exc_info=True)
