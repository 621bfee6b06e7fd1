"""Helpers for the caller's byte source that a `put` consumes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator


async def close_source(iterator: AsyncIterator[bytes]) -> None:
    """Finish a source that a failed `put` stopped reading.

    ``async for`` leaves an abandoned async generator suspended until garbage
    collection; the store is its only consumer, so let its cleanup (releasing a
    request body, say) run now. Its own errors matter less than the one that
    stopped the upload.
    """
    aclose = getattr(iterator, "aclose", None)
    if aclose is None:
        return
    with contextlib.suppress(Exception):
        await aclose()
