"""A tus creation's lock on its owner holds up other creations, not the owner's writes.

Found by bench/scale.py with PostgreSQL's `log_lock_waits`: a creation locked the
owner's account `FOR UPDATE` for its whole transaction, and every other write for that
owner (a file's row, a quota reservation, an idempotency record) waited in its
foreign-key check of the account; under load the waits chained past the database
timeout, and uploads were answered 503.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from seau.uploads.repository import lock_owner
from seau.wiring import Parts
from tests.events.conftest import make_owner, open_test_parts


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _upload(parts: Parts, owner: uuid.UUID, name: str) -> None:
    await parts.files.upload(
        owner_id=owner, name=name, content_type=None, data=_chunks(b"hello"), max_bytes=100
    )


# MariaDB has no exclusive row lock that a foreign-key check passes: there the
# creation's lock is FOR UPDATE, and the owner's writes wait for it (lock_owner).
@pytest.mark.postgresql
async def test_the_owners_writes_pass_a_creations_lock_and_creations_wait(
    tmp_path: Path,
) -> None:
    async with open_test_parts("postgresql", tmp_path, receiver=False) as parts:
        owner = await make_owner(parts)
        async with parts.sessions() as creation:
            await lock_owner(creation, owner)
            # The creation's transaction is still open: a file of the same owner
            # is made (its row's foreign key checks the account) without waiting.
            await asyncio.wait_for(_upload(parts, owner, "during.txt"), timeout=5)
            # A second creation for the owner waits for the first: the cap on
            # active uploads is counted one creation at a time.
            async with parts.sessions() as other:
                await other.execute(text("SET LOCAL lock_timeout = '300ms'"))
                with pytest.raises(DBAPIError, match="lock timeout"):
                    await lock_owner(other, owner)
                await other.rollback()
            await creation.rollback()
