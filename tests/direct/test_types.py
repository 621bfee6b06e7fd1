"""Direct uploads and SEAU_ALLOWED_TYPES, the `file.ready` event, and the policy of
seau's own URLs."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.conftest import sign_up
from tests.direct.conftest import Site, complete, create, open_site, post_form

from seau.db.models import WebhookEvent

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + os.urandom(4000)


@pytest.fixture(scope="module", params=["local", "s3"])
async def images_only(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Site]:
    tmp = tmp_path_factory.mktemp(f"direct-types-{request.param}")
    async for made in open_site(
        request,
        tmp,
        store=request.param,
        allowed_types="image/*",
        # A receiver that never answers: the events stay in the outbox to be looked at
        # (with none, the dispatcher may forget one before the test reads it).
        webhook_url="http://127.0.0.1:9/hook",
        webhook_secret="whsec_" + base64.b64encode(b"direct uploads test secret, 32b").decode(),
    ):
        yield made


async def test_a_type_not_allowed_is_refused_at_creation_and_at_completion(
    images_only: Site,
) -> None:
    async with images_only.client() as http:
        auth = await sign_up(http)
        refused = await create(
            http, auth, name="a.txt", size=10, content_type="text/plain", expect=415
        )
        assert refused["code"] == "type_not_allowed"
        # Declared as nothing in particular, detected as text: refused once the bytes show it.
        made = await create(http, auth, name="a.bin", size=3000)
        await post_form(http, made["upload"], b"just some words\n" * 187 + b"more....")
        late = await complete(http, auth, made["id"], expect=415)
        assert late["code"] == "type_not_allowed"
        assert not [k for k in images_only.stored_keys() if made["id"].replace("-", "") in k]
        ok = await create(http, auth, name="p.png", size=len(PNG), content_type="image/png")
        await post_form(http, ok["upload"], PNG)
        file = await complete(http, auth, ok["id"])
        assert file["content_type"] == "image/png"
        async with images_only.app.state.seau.sessions() as session:
            types = list(
                await session.scalars(
                    select(WebhookEvent.type).where(WebhookEvent.resource_id == uuid.UUID(ok["id"]))
                )
            )
        assert types == ["file.ready"]


async def test_seaus_own_url_holds_to_the_declared_type(images_only: Site, tmp_path: Path) -> None:
    if images_only.store != "local":
        pytest.skip("S3 checks its own policies")
    async with images_only.client() as http:
        auth = await sign_up(http)
        made = await create(http, auth, name="p.png", size=len(PNG), content_type="image/png")
        form = {**made["upload"], "fields": {"Content-Type": "text/html"}}
        sent = await post_form(http, form, PNG)
        assert sent.status_code == 403
        assert sent.json()["code"] == "direct_upload_policy"
        forged = await http.post(
            made["upload"]["url"].replace("signature=", "signature=x"),
            data=made["upload"]["fields"],
            files={"file": ("blob", PNG, "image/png")},
        )
        assert forged.status_code == 404
        assert forged.json()["code"] == "direct_url_invalid"
        await complete(http, auth, made["id"], expect=422)
