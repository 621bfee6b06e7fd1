"""Uploads fold a sign-in's owner check into the quota's read, before the first byte
(`seau.auth.owner_check`): the token of an account signed out or disabled stores
nothing and claims no `Idempotency-Key`, on every database and store, whether or not
a quota applies."""

from __future__ import annotations

import secrets
import uuid

import httpx
import pytest

from tests.api.helpers import assert_problem
from tests.conftest import Running

PASSWORD = "correct horse battery"
HOW = ("multipart", "raw", "multipart+key", "raw+key")


async def _account(client: httpx.AsyncClient) -> tuple[str, uuid.UUID]:
    email = f"user-{secrets.token_hex(6)}@example.com"
    made = await client.post("/api/v1/users", json={"email": email, "password": PASSWORD})
    assert made.status_code == 201, made.text
    return email, uuid.UUID(made.json()["id"])


async def _sign_in(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    token = await client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


async def _upload(
    client: httpx.AsyncClient, auth: dict[str, str], how: str, key: str
) -> httpx.Response:
    headers = dict(auth)
    if how.endswith("+key"):
        headers["Idempotency-Key"] = key
    if how.startswith("multipart"):
        return await client.post(
            "/api/v1/files", headers=headers, files={"file": ("a.txt", b"hello", "text/plain")}
        )
    return await client.post(
        "/api/v1/files", params={"name": "a.txt"}, headers=headers, content=b"hello"
    )


async def _names(client: httpx.AsyncClient, auth: dict[str, str]) -> list[str]:
    listed = await client.get("/api/v1/files", headers=auth)
    assert listed.status_code == 200, listed.text
    return [item["name"] for item in listed.json()["items"]]


@pytest.mark.parametrize("quota", ["none", "own quota"])
@pytest.mark.parametrize("how", HOW)
async def test_a_signed_out_token_uploads_nothing_and_claims_no_key(
    client: httpx.AsyncClient, running: Running, how: str, quota: str
) -> None:
    email, user_id = await _account(client)
    if quota == "own quota":
        # An owner with a quota of their own takes the reservation's other path.
        await running.app.state.seau.quotas.set_quota(str(user_id), values={"quota_bytes": 1 << 30})
    auth = await _sign_in(client, email)
    key = f"k-{secrets.token_hex(8)}"
    assert (await client.post("/api/v1/auth/logout", headers=auth)).status_code == 204

    refused = await _upload(client, auth, how, key)
    assert_problem(refused, 401, "token_invalid")

    again = await _sign_in(client, email)
    assert await _names(client, again) == []
    # The key was not claimed by the refused request: the same request now runs.
    made = await _upload(client, again, how, key)
    assert made.status_code == 201, made.text
    assert "idempotent-replayed" not in made.headers
    assert await _names(client, again) == ["a.txt"]


@pytest.mark.parametrize("how", HOW)
async def test_a_disabled_owner_uploads_nothing(
    client: httpx.AsyncClient, running: Running, how: str
) -> None:
    email, user_id = await _account(client)
    auth = await _sign_in(client, email)
    await running.app.state.seau.auth.set_active(user_id, active=False)
    refused = await _upload(client, auth, how, f"k-{secrets.token_hex(8)}")
    assert_problem(refused, 401, "token_invalid")
    await running.app.state.seau.auth.set_active(user_id, active=True)
    assert await _names(client, auth) == []


@pytest.mark.parametrize(
    "refusal",
    [
        "too large",
        "no name",
        "malformed multipart",
        "no file part",
        "bad name",
        "name too long",
        "malformed idempotency key",
    ],
)
async def test_a_signed_out_token_hears_401_before_any_other_refusal(
    client: httpx.AsyncClient, refusal: str
) -> None:
    """The check is folded into the first statement, but a request refused before it
    (size, shape, name) still tells a revoked token 401 first, as it did when the
    check ran before the route."""
    email, _ = await _account(client)
    auth = await _sign_in(client, email)
    assert (await client.post("/api/v1/auth/logout", headers=auth)).status_code == 204
    files = "/api/v1/files"
    if refusal == "too large":
        refused = await client.post(
            files, params={"name": "a"}, headers=auth, content=b"x" * (9 * 1024 * 1024)
        )
    elif refusal == "no name":
        refused = await client.post(files, headers=auth, content=b"x")
    elif refusal == "malformed multipart":
        refused = await client.post(
            files,
            headers={**auth, "Content-Type": "multipart/form-data; boundary=b"},
            content=b"--b\r\nnot a header line\r\n\r\n",
        )
    elif refusal == "no file part":
        refused = await client.post(files, headers=auth, data={"other": "field"}, files={})
    elif refusal == "bad name":
        refused = await client.post(files, params={"name": "a\x00b"}, headers=auth, content=b"x")
    elif refusal == "name too long":
        # Refused by FastAPI's own validation of the query (422).
        refused = await client.post(files, params={"name": "a" * 2000}, headers=auth, content=b"x")
    else:
        refused = await client.post(
            files,
            params={"name": "a"},
            headers={**auth, "Idempotency-Key": "not a key\t"},
            content=b"x",
        )
    assert_problem(refused, 401, "token_invalid")


@pytest.mark.parametrize("refusal", ["no name", "name not a string", "bad name", "bad id"])
async def test_a_signed_out_token_hears_401_before_a_rename_is_refused(
    client: httpx.AsyncClient, refusal: str
) -> None:
    email, _ = await _account(client)
    auth = await _sign_in(client, email)
    made = await _upload(client, auth, "raw", "")
    assert made.status_code == 201, made.text
    file_id = made.json()["id"]
    assert (await client.post("/api/v1/auth/logout", headers=auth)).status_code == 204
    bodies: dict[str, dict[str, object]] = {
        "no name": {},
        "name not a string": {"name": 7},
        "bad name": {"name": "a\x00b"},
        "bad id": {"name": "b.txt"},
    }
    body = bodies[refusal]
    target = "not-an-id" if refusal == "bad id" else file_id
    refused = await client.patch(f"/api/v1/files/{target}", headers=auth, json=body)
    assert_problem(refused, 401, "token_invalid")
