"""`seau webhook add|list|rm|failures|replay`, as an operator runs them."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sized
from datetime import timedelta
from pathlib import Path

import httpx

from seau.app import create_app
from seau.auth.keys import AccessKeys
from seau.db.models import AccessKeyKind
from seau.events.dispatcher import RetryPolicy
from seau.settings import Settings
from seau.wiring import open_parts
from tests.cli.test_server_commands import seau
from tests.conftest import TEST_SECRET
from tests.events.conftest import dispatcher, make_owner, running
from tests.support.databases import scratch_database
from tests.support.webhook_receiver import Receiver


def test_webhook_commands_add_list_and_remove_receivers(tmp_path: Path) -> None:
    env = {"SEAU_DATA_DIR": str(tmp_path / "data")}
    added = seau(
        "webhook", "add", "https://app.example/hook", "--events", "file.ready", "--json",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    endpoint = json.loads(added.stdout)
    assert endpoint["secret"].startswith("whsec_")
    assert endpoint["events"] == ["file.ready"]

    listed = seau("webhook", "list", "--json", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    assert [e["id"] for e in json.loads(listed.stdout)] == [endpoint["id"]]
    assert "whsec_" not in listed.stdout

    wrong = seau(
        "webhook", "add", "https://x/y", "--events", "file.exploded", cwd=tmp_path, env=env
    )
    assert wrong.returncode == 2
    assert "unknown event type" in wrong.stderr

    failures = seau("webhook", "failures", cwd=tmp_path, env=env)
    assert failures.returncode == 0, failures.stderr
    assert "no failed deliveries" in failures.stdout
    missing = seau("webhook", "replay", "msg_" + "0" * 32, cwd=tmp_path, env=env)
    assert missing.returncode == 1, missing.stdout
    assert "No such failed delivery" in missing.stderr
    malformed = seau("webhook", "replay", "msg_12", cwd=tmp_path, env=env)
    assert malformed.returncode == 2
    assert "not an event id" in malformed.stderr

    removed = seau("webhook", "rm", endpoint["id"], cwd=tmp_path, env=env)
    assert removed.returncode == 0, removed.stderr
    assert json.loads(seau("webhook", "list", "--json", cwd=tmp_path, env=env).stdout) == []
    again = seau("webhook", "rm", endpoint["id"], cwd=tmp_path, env=env)
    assert again.returncode == 1
    assert "No such webhook" in again.stderr


async def test_a_delivery_failed_for_good_is_listed_and_replayed_by_the_cli_and_the_api(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Two events fail for good (a retry bound of half a second: `RetryPolicy` has no
    setting, so a dispatcher of the tests' gives up on them); `seau webhook failures`
    and the admin API list both; `seau webhook replay` sends one again and the API
    the other, through the server's own dispatcher, to the receiver now answering,
    each with the id its failed attempts had."""
    with scratch_database("sqlite", tmp_path) as url:
        settings = Settings(
            data_dir=tmp_path,
            database_url=url,
            storage_url=(tmp_path / "objects").as_uri(),
            secret_key=TEST_SECRET,
            webhook_url=receiver.url,
            webhook_secret=receiver.secret,
        )
        env = {
            "SEAU_DATA_DIR": str(tmp_path),
            "SEAU_DATABASE_URL": url,
            "SEAU_STORAGE_URL": (tmp_path / "objects").as_uri(),
            "SEAU_SECRET_KEY": TEST_SECRET,
        }
        receiver.answer = lambda _id: 503
        short = RetryPolicy(first_delay=0.05, max_delay=0.1, give_up_after=timedelta(seconds=0.5))
        async with open_parts(settings, migrate=True) as parts:
            owner = await make_owner(parts)
            for name in ("a.txt", "b.txt"):
                await parts.files.upload(
                    owner_id=owner, name=name, content_type=None, data=_bytes(b"x"), max_bytes=10
                )
            async with running(dispatcher(parts, receiver, retry=short)):
                await _until(lambda: _count(parts.webhooks.failures(), 2))
        refused_ids = set(receiver.ids())
        assert len(refused_ids) == 2
        assert receiver.delivered() == []

        cli = await asyncio.to_thread(seau, "webhook", "failures", "--json", cwd=tmp_path, env=env)
        assert cli.returncode == 0, cli.stderr
        failures = json.loads(cli.stdout)
        assert {f["event_id"] for f in failures} == refused_ids
        # The table shows the same ids, whole (its output piped, as here, is not cut).
        table = await asyncio.to_thread(seau, "webhook", "failures", cwd=tmp_path, env=env)
        assert table.returncode == 0, table.stderr
        assert set(re.findall(r"msg_[0-9a-f]+", table.stdout)) == refused_ids
        for failure in failures:
            assert failure["type"] == "file.ready"
            assert failure["url"] is None  # SEAU_WEBHOOK_URL's
            assert failure["last_status"] == 503
            assert failure["last_error"] == "answered 503"
            assert failure["attempts"] >= 2
        receiver.answer = lambda _id: 200
        app = create_app(settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://seau.test"
            ) as client,
        ):
            keys: AccessKeys = app.state.seau.keys
            key = await keys.create(
                kind=AccessKeyKind.SERVICE, name="ops", scopes=["admin"], expires_in=None
            )
            admin = {"Authorization": f"Bearer {key.token}"}
            listed = await client.get("/api/v1/admin/webhooks/failures", headers=admin)
            assert listed.status_code == 200, listed.text
            api_failures = listed.json()
            assert {f["id"] for f in api_failures} == {f["id"] for f in failures}
            # The same id as the receiver's webhook-id and the command line's.
            assert {f["event_id"] for f in api_failures} == refused_ids
            assert all(f["endpoint_id"] is None for f in api_failures)
            # Failed for good: the server's dispatcher leaves them alone.
            await asyncio.sleep(0.5)
            assert receiver.delivered() == []

            # Each replayed by the id the receiver saw, as both list it.
            by_cli, by_api = failures
            replayed = await asyncio.to_thread(
                seau, "webhook", "replay", by_cli["event_id"], cwd=tmp_path, env=env
            )
            assert replayed.returncode == 0, replayed.stderr
            assert f"{by_cli['event_id']}: 1 delivery pending again" in replayed.stdout
            await receiver.wait_for(lambda r: r.delivered() == [by_cli["event_id"]])
            again = await client.post(
                f"/api/v1/admin/webhooks/failures/{by_api['event_id']}/replay", headers=admin
            )
            assert again.status_code == 204, again.text
            await receiver.wait_for(lambda r: len(r.delivered()) == 2)
            assert set(receiver.delivered()) == refused_ids
            left = await client.get("/api/v1/admin/webhooks/failures", headers=admin)
            assert left.json() == []
    assert receiver.refused == []


async def _bytes(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _count(listing: Awaitable[Sized], wanted: int) -> bool:
    return len(await listing) == wanted


async def _until(check: Callable[[], Awaitable[bool]], *, seconds: float = 10) -> None:
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110  (the database has no event to wait on)
            await asyncio.sleep(0.05)
