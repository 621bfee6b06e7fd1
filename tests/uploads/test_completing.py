"""An upload whose last byte arrived on an instance that died before making the file.

Found by bench/scale.py (issue 16, point 5): the PATCH that brought the last byte was
in flight on an instance when it was SIGKILLed, after the upload was recorded as
`completing` and before the file existed. The client's HEAD, through another
instance, answered 200 with Upload-Offset = Upload-Length while the dead request's
lease still held the upload, so the client (as any tus client would) took the upload
for complete; nobody completed it, and the acknowledged file never appeared.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from seau.db.base import utcnow
from seau.db.models import Upload, UploadState
from seau.uploads.steps import UploadSteps
from tests.conftest import Running
from tests.uploads.helpers import TUS, assert_head_problem, create, patch, upload_id


class Killed(Exception):
    """Stands for the process dying between recording the last byte and the file."""


async def test_head_does_not_call_an_upload_complete_before_its_file_exists(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    running: Running,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = b"the last byte is on its way"
    location = await create(client, auth, length=len(data))

    async def dies(self: UploadSteps, *args: Any) -> Upload:
        raise Killed

    with monkeypatch.context() as patched:
        patched.setattr(UploadSteps, "complete", dies)
        with pytest.raises(Killed):
            await patch(client, auth, location, offset=0, data=data)
    # The dead request's lease is still live, as a SIGKILLed process leaves it.
    parsed = uuid.UUID(upload_id(location))
    state = running.app.state.seau
    async with state.sessions() as session:
        await session.execute(
            update(Upload)
            .where(Upload.id == parsed)
            .values(lease_token="d" * 32, lease_until=utcnow() + timedelta(seconds=30))
        )
        await session.commit()
        row = await session.get(Upload, parsed)
        assert row is not None
        assert (row.state, row.upload_offset) == (UploadState.COMPLETING, len(data))

    head = await client.head(location, headers={**auth, **TUS})
    assert_head_problem(head, 423)
    file = await client.get(f"/api/v1/files/{upload_id(location)}", headers=auth)
    assert file.status_code == 404

    # Once the lease lapses, the next HEAD makes the file, and then says so.
    async with state.sessions() as session:
        await session.execute(
            update(Upload)
            .where(Upload.id == parsed)
            .values(lease_until=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    head = await client.head(location, headers={**auth, **TUS})
    assert head.status_code == 200, head.headers
    assert head.headers["upload-offset"] == str(len(data))
    content = await client.get(f"/api/v1/files/{upload_id(location)}/content", headers=auth)
    assert content.status_code == 200
    assert content.content == data
