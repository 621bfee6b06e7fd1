"""Webhooks through the real app: every way a file is made, renamed or deleted
reaches SEAU_WEBHOOK_URL from the server's own dispatcher, and the admin API."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from seau.app import create_app
from seau.auth.keys import AccessKeys
from seau.db.models import AccessKeyKind
from seau.settings import Settings
from tests.api.helpers import assert_problem
from tests.conftest import TEST_SECRET, sign_up
from tests.events.conftest import KINDS
from tests.support.databases import Kind, scratch_database
from tests.support.webhook_receiver import Receiver

TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture(params=KINDS)
async def client(
    request: pytest.FixtureRequest, tmp_path: Path, receiver: Receiver
) -> AsyncIterator[httpx.AsyncClient]:
    kind: Kind = request.param
    with scratch_database(kind, tmp_path) as url:
        settings = Settings(
            data_dir=tmp_path,
            database_url=url,
            storage_url=(tmp_path / "objects").as_uri(),
            secret_key=TEST_SECRET,
            webhook_url=receiver.url,
            webhook_secret=receiver.secret,
            signup_per_address_per_hour=0,
            signup_per_minute=0,
        )
        app = create_app(settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://seau.test"
            ) as http,
        ):
            yield http


async def test_every_way_of_making_a_file_is_told_and_the_file_is_there_when_it_is(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    auth = await sign_up(client)
    me = (await client.get("/api/v1/users/me", headers=auth)).json()
    downloads: dict[str, int] = {}

    async def download(body: dict[str, Any]) -> None:
        if body["type"] == "file.ready":
            got = await client.get(f"/api/v1/files/{body['data']['id']}/content", headers=auth)
            downloads[body["data"]["name"]] = got.status_code

    receiver.on_arrival = download
    multipart = await client.post(
        "/api/v1/files", files={"file": ("multipart.txt", b"one")}, headers=auth
    )
    assert multipart.status_code == 201, multipart.text
    raw = await client.post(
        "/api/v1/files", params={"name": "raw.txt"}, content=b"two", headers=auth
    )
    assert raw.status_code == 201, raw.text
    metadata = "filename " + base64.b64encode(b"tus.txt").decode()
    created = await client.post(
        "/api/v1/uploads",
        content=b"three",
        headers={
            **auth,
            **TUS,
            "Upload-Length": "5",
            "Upload-Metadata": metadata,
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert created.status_code == 201, created.text
    await receiver.wait_for(lambda r: len(r.delivered()) == 3)
    assert downloads == {"multipart.txt": 200, "raw.txt": 200, "tus.txt": 200}
    assert {r.body["data"]["subject"] for r in receiver.got} == {me["subject"]}

    file_id = raw.json()["files"][0]["id"] if "files" in raw.json() else raw.json()["id"]
    renamed = await client.patch(
        f"/api/v1/files/{file_id}", json={"name": "renamed.txt"}, headers=auth
    )
    assert renamed.status_code == 200, renamed.text
    assert (await client.delete(f"/api/v1/files/{file_id}", headers=auth)).status_code == 204
    await receiver.wait_for(lambda r: len(r.delivered()) == 5)
    assert sorted(r.type for r in receiver.got[3:]) == ["file.deleted", "file.renamed"]
    assert len(set(receiver.ids())) == 5
    assert receiver.refused == []


async def test_a_refused_upload_is_never_told(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    auth = await sign_up(client)
    bad = await client.post("/api/v1/files", params={"name": "../"}, content=b"x", headers=auth)
    assert bad.status_code == 422
    good = await client.post("/api/v1/files", params={"name": "ok"}, content=b"x", headers=auth)
    assert good.status_code == 201
    await receiver.wait_for(lambda r: len(r.delivered()) == 1)
    assert [r.body["data"]["name"] for r in receiver.got] == ["ok"]


@pytest.mark.parametrize("client", ["sqlite"], indirect=True)
async def test_only_admins_and_admin_service_keys_manage_webhooks(
    client: httpx.AsyncClient,
) -> None:
    user = await sign_up(client)
    assert_problem(await client.get("/api/v1/admin/webhooks", headers=user), 403, "admin_required")
    assert_problem(await client.get("/api/v1/admin/webhooks"), 401, "token_invalid")

    keys: AccessKeys = client._transport.app.state.seau.keys  # type: ignore[attr-defined]
    admin_key = await keys.create(
        kind=AccessKeyKind.SERVICE, name="ops", scopes=["admin"], expires_in=None
    )
    plain_key = await keys.create(
        kind=AccessKeyKind.SERVICE, name="app", scopes=["files:read"], expires_in=None
    )
    admin = {"Authorization": f"Bearer {admin_key.token}"}
    plain = {"Authorization": f"Bearer {plain_key.token}"}
    # A token without the scope: RFC 6750's answer, naming the scope it lacks.
    lacking = await client.get("/api/v1/admin/webhooks", headers=plain)
    assert_problem(lacking, 403, "insufficient_scope")
    assert 'scope="admin"' in lacking.headers["www-authenticate"]

    added = await client.post(
        "/api/v1/admin/webhooks",
        json={"url": "https://app.example/hook", "events": ["file.ready"]},
        headers=admin,
    )
    assert added.status_code == 201, added.text
    body = added.json()
    assert body["secret"].startswith("whsec_")
    assert body["events"] == ["file.ready"]
    listed = (await client.get("/api/v1/admin/webhooks", headers=admin)).json()
    assert [(e["id"], e["url"]) for e in listed] == [(body["id"], "https://app.example/hook")]
    assert "secret" not in listed[0]

    for wrong in (
        {"url": "ftp://x/y"},
        {"url": "https://x/y", "events": ["file.exploded"]},
        {"url": "https://x/y", "secret": "not-a-secret"},
    ):
        response = await client.post("/api/v1/admin/webhooks", json=wrong, headers=admin)
        assert response.status_code == 422, (wrong, response.text)

    assert (await client.get("/api/v1/admin/webhooks/failures", headers=admin)).json() == []
    # A replay takes an event's id as receivers see it, or a UUID; none of these failed.
    for unknown in ("msg_" + "0" * 32, "00000000-0000-0000-0000-000000000000", "0" * 32):
        assert_problem(
            await client.post(f"/api/v1/admin/webhooks/failures/{unknown}/replay", headers=admin),
            404,
            "delivery_not_found",
        )
    for malformed in ("msg_123", "msg_00000000-0000-0000-0000-000000000000", "evt_" + "0" * 32):
        replayed = await client.post(
            f"/api/v1/admin/webhooks/failures/{malformed}/replay", headers=admin
        )
        assert replayed.status_code == 422, (malformed, replayed.text)
    gone = await client.delete(f"/api/v1/admin/webhooks/{body['id']}", headers=admin)
    assert gone.status_code == 204
    again = await client.delete(f"/api/v1/admin/webhooks/{body['id']}", headers=admin)
    assert_problem(again, 404, "webhook_not_found")


@pytest.mark.parametrize("client", ["sqlite"], indirect=True)
async def test_the_openapi_document_shows_a_failure_by_the_id_its_receivers_saw(
    client: httpx.AsyncClient,
) -> None:
    """A failed delivery's `event_id` is a `msg_…` string, not the event's bare UUID,
    and the replay operation takes that id."""
    document = (await client.get("/openapi.json")).json()
    event_id = document["components"]["schemas"]["FailedDelivery"]["properties"]["event_id"]
    assert event_id["type"] == "string"
    assert event_id["pattern"] == "^msg_[0-9a-f]{32}$"
    assert "format" not in event_id
    assert "webhook-id" in event_id["description"]
    replay = document["paths"]["/api/v1/admin/webhooks/failures/{failure_id}/replay"]["post"]
    [parameter] = [p for p in replay["parameters"] if p["in"] == "path"]
    assert parameter["schema"]["type"] == "string"
    assert "msg_" in parameter["schema"]["pattern"]
    assert "msg_" in parameter["description"]
