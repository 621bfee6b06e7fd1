"""Personal access tokens and service keys over HTTP, on every database × store:
made, listed and revoked; limited to their scopes on every route; a service key
acting for the subjects its backend names, and only with `act-as`."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, MetaData, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from seau.auth.keys import AccessKeys, hash_token
from seau.db.base import utcnow
from seau.db.models import AccessKey, AccessKeyKind, User, UserFile
from seau.errors import TokenNotFound
from tests.api.helpers import assert_problem, upload_raw
from tests.conftest import Running, sign_up

TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_STREAM = {"Content-Type": "application/offset+octet-stream"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def make_token(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    scopes: list[str],
    *,
    name: str = "script",
    expires_in: int | None = None,
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/tokens",
        json={"name": name, "scopes": scopes, "expires_in": expires_in},
        headers=auth,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def keys(running: Running) -> AccessKeys:
    made: AccessKeys = running.app.state.seau.keys
    return made


async def service_key(running: Running, scopes: list[str]) -> str:
    made = await keys(running).create(
        kind=AccessKeyKind.SERVICE, name="backend", scopes=scopes, expires_in=None
    )
    return made.token


def assert_insufficient(response: httpx.Response, scope: str) -> None:
    problem = assert_problem(response, 403, "insufficient_scope")
    detail = str(problem["detail"])
    assert ("Seau-Subject" if scope == "act-as" else f"'{scope}'") in detail
    assert "Scope." not in detail
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="insufficient_scope"' in challenge
    assert f'scope="{scope}"' in challenge


# -- personal access tokens ----------------------------------------------------


async def stored_values(running: Running) -> list[tuple[str, str, object]]:
    """Every value of every row of every table the database holds, with its table
    and column (read from the database, not from seau's models)."""

    def read(connection: Connection) -> list[tuple[str, str, object]]:
        tables = MetaData()
        tables.reflect(connection)
        return [
            (table.name, column, value)
            for table in tables.sorted_tables
            for row in connection.execute(select(table)).mappings()
            for column, value in row.items()
        ]

    engine: AsyncEngine = running.app.state.seau.engine
    async with engine.connect() as connection:
        return await connection.run_sync(read)


async def test_a_token_is_shown_once_listed_without_its_secret_and_revoked(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    made = await make_token(client, auth, ["files:read", "files:write"], expires_in=3600)
    token = str(made["token"])
    assert token.startswith("seau_pat_")
    assert len(token) >= len("seau_pat_") + 43  # 256 random bits
    # The database keeps its hash, and neither the token nor its secret anywhere.
    secret = token.removeprefix("seau_pat_")
    stored = await stored_values(running)
    assert [v for v in stored if secret in str(v[2])] == []
    assert ("access_key", "secret_hash", hash_token(token)) in stored
    assert sorted(made) == sorted(
        ["id", "name", "scopes", "created_at", "last_used_at", "expires_at", "token"]
    )
    assert sorted(made["scopes"]) == ["files:read", "files:write"]
    assert made["expires_at"] is not None
    assert made["last_used_at"] is None

    never = await make_token(client, auth, ["files:read"], name="forever")
    assert never["expires_at"] is None

    listed = await client.get("/api/v1/tokens", headers=auth)
    assert listed.status_code == 200
    assert token not in listed.text
    assert str(never["token"]) not in listed.text
    assert [t["id"] for t in listed.json()] == [made["id"], never["id"]]
    assert all("token" not in t for t in listed.json())

    assert (await client.get("/api/v1/files", headers=bearer(token))).status_code == 200
    revoked = await client.delete(f"/api/v1/tokens/{made['id']}", headers=auth)
    assert revoked.status_code == 204
    refused = await client.get("/api/v1/files", headers=bearer(token))
    assert_problem(refused, 401, "token_invalid")
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert [t["id"] for t in (await client.get("/api/v1/tokens", headers=auth)).json()] == [
        never["id"]
    ]
    again = await client.delete(f"/api/v1/tokens/{made['id']}", headers=auth)
    assert_problem(again, 404, "token_not_found")
    assert_problem(
        await client.delete("/api/v1/tokens/not-a-uuid", headers=auth), 404, "token_not_found"
    )


async def test_the_answer_that_carries_the_token_is_not_cached(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post(
        "/api/v1/tokens", json={"name": "x", "scopes": ["files:read"]}, headers=auth
    )
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"


async def test_a_read_token_reads_and_cannot_write_on_any_route(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    file = await upload_raw(client, auth, "kept.txt", b"read me")
    created = await client.post(
        "/api/v1/uploads", headers={**auth, **TUS, "Upload-Length": "10", "Upload-Metadata": ""}
    )
    assert created.status_code == 201, created.text
    upload_path = httpx.URL(created.headers["location"]).path
    read = bearer(str((await make_token(client, auth, ["files:read"]))["token"]))

    listed = await client.get("/api/v1/files", headers=read)
    assert [f["id"] for f in listed.json()["items"]] == [file["id"]]
    assert (await client.get(f"/api/v1/files/{file['id']}", headers=read)).status_code == 200
    content = await client.get(f"/api/v1/files/{file['id']}/content", headers=read)
    assert content.content == b"read me"
    head = await client.head(f"/api/v1/files/{file['id']}/content", headers=read)
    assert head.status_code == 200
    assert (await client.head(upload_path, headers={**read, **TUS})).status_code == 200

    for method, path, extra in (
        ("POST", "/api/v1/files?name=new.txt", {"content": b"new bytes"}),
        ("POST", "/api/v1/files", {"files": [("file", ("a.txt", b"a", "text/plain"))]}),
        ("PATCH", f"/api/v1/files/{file['id']}", {"json": {"name": "renamed.txt"}}),
        ("DELETE", f"/api/v1/files/{file['id']}", {}),
        (
            "POST",
            "/api/v1/uploads",
            {"headers": {**TUS, "Upload-Length": "3", "Upload-Metadata": ""}},
        ),
        (
            "PATCH",
            upload_path,
            {
                "headers": {**TUS, **OFFSET_STREAM, "Upload-Offset": "0"},
                "content": b"0123456789",
            },
        ),
        ("DELETE", upload_path, {"headers": TUS}),
    ):
        headers = {**read, **extra.pop("headers", {})}  # type: ignore[dict-item]
        response = await client.request(method, path, headers=headers, **extra)
        assert_insufficient(response, "files:write")

    # Nothing changed: the file is there under its name, the upload still at 0.
    after = (await client.get(f"/api/v1/files/{file['id']}", headers=auth)).json()
    assert after["name"] == "kept.txt"
    assert (await client.get("/api/v1/files", headers=auth)).json()["items"] == [after]
    status = await client.head(upload_path, headers={**auth, **TUS})
    assert status.headers["upload-offset"] == "0"


async def test_a_write_token_writes_and_cannot_read(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    write = bearer(str((await make_token(client, auth, ["files:write"]))["token"]))
    file = await upload_raw(client, write, "by-script.txt", b"written")
    renamed = await client.patch(
        f"/api/v1/files/{file['id']}", json={"name": "renamed.txt"}, headers=write
    )
    assert renamed.status_code == 200
    for path in ("/api/v1/files", f"/api/v1/files/{file['id']}/content"):
        assert_insufficient(await client.get(path, headers=write), "files:read")
    assert (await client.delete(f"/api/v1/files/{file['id']}", headers=write)).status_code == 204


async def test_a_personal_token_cannot_manage_tokens(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    made = await make_token(client, auth, ["files:read", "files:write"])
    pat = bearer(str(made["token"]))
    body = {"name": "successor", "scopes": ["files:read"]}
    assert_insufficient(await client.post("/api/v1/tokens", json=body, headers=pat), "tokens")
    assert_insufficient(await client.get("/api/v1/tokens", headers=pat), "tokens")
    assert_insufficient(await client.delete(f"/api/v1/tokens/{made['id']}", headers=pat), "tokens")
    # Still one token, still valid.
    assert len((await client.get("/api/v1/tokens", headers=auth)).json()) == 1
    assert (await client.get("/api/v1/files", headers=pat)).status_code == 200


# Who may administer does not depend on the database or the store.
@pytest.mark.parametrize("running", [("sqlite", "local")], indirect=True)
async def test_the_admin_routes_take_an_admin_or_a_token_with_the_admin_scope(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    hooks = "/api/v1/admin/webhooks"
    # A signed-in user who is no admin: no token of theirs could ever do it.
    assert_problem(await client.get(hooks, headers=auth), 403, "admin_required")
    me = (await client.get("/api/v1/users/me", headers=auth)).json()
    async with running.app.state.seau.sessions() as session, session.begin():
        await session.execute(
            update(User).where(User.id == uuid.UUID(me["id"])).values(is_admin=True)
        )
    assert (await client.get(hooks, headers=auth)).status_code == 200
    # The admin's personal token, a service key without the scope: the token lacks it.
    pat = bearer(str((await make_token(client, auth, ["files:read", "files:write"]))["token"]))
    assert_insufficient(await client.get(hooks, headers=pat), "admin")
    assert_insufficient(
        await client.get(hooks, headers=bearer(await service_key(running, ["files:read"]))), "admin"
    )
    # A service key with the scope administers, but not while it acts for a subject.
    key = bearer(await service_key(running, ["admin", "act-as"]))
    assert (await client.get(hooks, headers=key)).status_code == 200
    acting = {**key, "Seau-Subject": me["subject"]}
    assert_problem(await client.get(hooks, headers=acting), 403, "admin_required")


async def test_an_expired_token_is_401_token_expired(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    made = await make_token(client, auth, ["files:read"], expires_in=3600)
    async with running.app.state.seau.sessions() as session:
        await session.execute(
            update(AccessKey)
            .where(AccessKey.id == uuid.UUID(str(made["id"])))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    response = await client.get("/api/v1/files", headers=bearer(str(made["token"])))
    assert_problem(response, 401, "token_expired")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_revoking_another_users_token_is_404_and_leaves_it_working(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    mine = await make_token(client, auth, ["files:read"])
    other = await sign_up(client)
    refused = await client.delete(f"/api/v1/tokens/{mine['id']}", headers=other)
    assert_problem(refused, 404, "token_not_found")
    assert (await client.get("/api/v1/tokens", headers=other)).json() == []
    assert (await client.get("/api/v1/files", headers=bearer(str(mine["token"])))).status_code == (
        200
    )


async def test_scopes_a_personal_token_cannot_have_are_422(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    for scopes in (["act-as"], ["files:read", "admin"], ["tokens"], ["files:delete"], [""], [" "]):
        response = await client.post(
            "/api/v1/tokens", json={"name": "bad", "scopes": scopes}, headers=auth
        )
        assert_problem(response, 422, "invalid_scopes")
    for body in (
        {"name": "bad", "scopes": []},
        {"name": "", "scopes": ["files:read"]},
        {"name": "bad", "scopes": ["files:read"], "expires_in": 0},
        {"name": "bad", "scopes": "files:read"},
    ):
        response = await client.post("/api/v1/tokens", json=body, headers=auth)
        assert response.status_code == 422, (body, response.text)
    assert (await client.get("/api/v1/tokens", headers=auth)).json() == []


async def test_last_used_is_set_when_the_token_is_used(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    made = await make_token(client, auth, ["files:read"])
    before = utcnow()
    assert (await client.get("/api/v1/files", headers=bearer(str(made["token"])))).is_success
    (listed,) = (await client.get("/api/v1/tokens", headers=auth)).json()
    assert listed["last_used_at"] is not None
    used = datetime.fromisoformat(listed["last_used_at"])
    assert before - timedelta(seconds=5) <= used <= utcnow() + timedelta(seconds=5)


async def test_who_a_personal_token_is(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    session_me = (await client.get("/api/v1/users/me", headers=auth)).json()
    made = await make_token(client, auth, ["files:read"])
    me = (await client.get("/api/v1/users/me", headers=bearer(str(made["token"])))).json()
    assert me["via"] == "personal"
    assert me["scopes"] == ["files:read"]
    assert me["subject"] == session_me["subject"]
    assert me["id"] == session_me["id"]
    assert me["acting_for"] is False


# -- service keys ----------------------------------------------------------------


async def test_a_service_key_with_act_as_uploads_for_the_subject_it_names(
    client: httpx.AsyncClient, running: Running
) -> None:
    key = bearer(await service_key(running, ["files:read", "files:write", "act-as"]))
    ada = {**key, "Seau-Subject": f"user_{secrets.token_hex(4)}"}
    bob = {**key, "Seau-Subject": f"auth0|{secrets.token_hex(4)}"}
    file = await upload_raw(client, ada, "ada.txt", b"ada's bytes")

    me = (await client.get("/api/v1/users/me", headers=ada)).json()
    assert me["subject"] == ada["Seau-Subject"]
    assert me["via"] == "service"
    assert me["acting_for"] is True
    async with running.app.state.seau.sessions() as session:
        owner = await session.scalar(select(User).where(User.subject == ada["Seau-Subject"]))
        stored = await session.get(UserFile, uuid.UUID(file["id"]))
    assert owner is not None
    assert stored is not None
    assert stored.owner_id == owner.id == uuid.UUID(me["id"])

    # Bob (made on first use) sees nothing of Ada's, on any route.
    assert (await client.get("/api/v1/files", headers=bob)).json()["items"] == []
    for method, path, extra in (
        ("GET", f"/api/v1/files/{file['id']}", {}),
        ("GET", f"/api/v1/files/{file['id']}/content", {}),
        ("PATCH", f"/api/v1/files/{file['id']}", {"json": {"name": "bob's now"}}),
        ("DELETE", f"/api/v1/files/{file['id']}", {}),
    ):
        response = await client.request(method, path, headers=bob, **extra)  # type: ignore[arg-type]
        assert_problem(response, 404, "file_not_found")
    bobs = await upload_raw(client, bob, "bob.txt", b"bob's bytes")
    assert [f["id"] for f in (await client.get("/api/v1/files", headers=ada)).json()["items"]] == [
        file["id"]
    ]
    assert [f["id"] for f in (await client.get("/api/v1/files", headers=bob)).json()["items"]] == [
        bobs["id"]
    ]
    content = await client.get(f"/api/v1/files/{file['id']}/content", headers=ada)
    assert content.content == b"ada's bytes"


async def test_a_subject_a_service_key_names_is_the_same_owner_as_its_sign_in(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    # seau's own account: its subject is its id; a backend acting for it reaches its files.
    me = (await client.get("/api/v1/users/me", headers=auth)).json()
    file = await upload_raw(client, auth, "mine.txt", b"mine")
    key = bearer(await service_key(running, ["files:read", "act-as"]))
    acting = {**key, "Seau-Subject": me["subject"]}
    listed = (await client.get("/api/v1/files", headers=acting)).json()["items"]
    assert [f["id"] for f in listed] == [file["id"]]
    # files:read only: it may not upload for them.
    refused = await client.post("/api/v1/files?name=x", content=b"x", headers=acting)
    assert_insufficient(refused, "files:write")


async def test_only_a_service_key_with_act_as_may_name_a_subject(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    subject = {"Seau-Subject": "someone-else"}
    without = bearer(await service_key(running, ["files:read", "files:write"]))
    pat = bearer(str((await make_token(client, auth, ["files:read"]))["token"]))
    for caller in (without, auth, pat):
        for method, path in (("GET", "/api/v1/files"), ("GET", "/api/v1/users/me")):
            response = await client.request(method, path, headers={**caller, **subject})
            assert_insufficient(response, "act-as")
    async with running.app.state.seau.sessions() as session:
        made = await session.scalar(select(User).where(User.subject == "someone-else"))
    assert made is None


async def test_a_service_key_without_a_subject_reaches_no_files(
    client: httpx.AsyncClient, running: Running
) -> None:
    key = bearer(await service_key(running, ["files:read", "files:write", "act-as"]))
    for method, path, extra in (
        ("GET", "/api/v1/files", {}),
        ("POST", "/api/v1/files?name=x.txt", {"content": b"x"}),
        ("GET", f"/api/v1/files/{uuid.uuid4()}", {}),
        ("POST", "/api/v1/uploads", {"headers": {**TUS, "Upload-Length": "3"}}),
    ):
        headers = {**key, **extra.pop("headers", {})}  # type: ignore[dict-item]
        response = await client.request(method, path, headers=headers, **extra)
        assert_problem(response, 400, "subject_required")
    me = (await client.get("/api/v1/users/me", headers=key)).json()
    assert me["id"] is None
    assert me["subject"] is None
    assert me["via"] == "service"
    assert me["acting_for"] is False


async def test_a_malformed_subject_is_400_and_makes_no_owner(
    client: httpx.AsyncClient, running: Running
) -> None:
    key = bearer(await service_key(running, ["files:read", "act-as"]))
    for bad in ("tab\there", "bell\x07", "del\x7f", "x" * 256):
        response = await client.get("/api/v1/files", headers={**key, "Seau-Subject": bad})
        assert_problem(response, 400, "invalid_subject")
    longest = "y" * 255
    response = await client.get("/api/v1/files", headers={**key, "Seau-Subject": longest})
    assert response.status_code == 200, response.text
    async with running.app.state.seau.sessions() as session:
        subjects = set(await session.scalars(select(User.subject).where(User.subject != None)))  # noqa: E711
    assert longest in subjects
    assert not {s for s in subjects if s.startswith(("tab", "bell", "del", "x" * 256))}


async def test_a_revoked_or_expired_service_key_is_refused(
    client: httpx.AsyncClient, running: Running
) -> None:
    made = await keys(running).create(
        kind=AccessKeyKind.SERVICE, name="old", scopes=["files:read", "act-as"], expires_in=None
    )
    acting = {**bearer(made.token), "Seau-Subject": "anyone"}
    assert (await client.get("/api/v1/files", headers=acting)).status_code == 200
    async with running.app.state.seau.sessions() as session:
        await session.execute(
            update(AccessKey)
            .where(AccessKey.id == made.key.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    assert_problem(await client.get("/api/v1/files", headers=acting), 401, "token_expired")
    await keys(running).revoke(made.key.id, kind=AccessKeyKind.SERVICE)
    assert_problem(await client.get("/api/v1/files", headers=acting), 401, "token_invalid")


async def test_a_personal_token_id_is_not_a_service_key_id(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    made = await make_token(client, auth, ["files:read"])
    # Service-key revocation does not reach personal tokens, and the reverse.
    with pytest.raises(TokenNotFound):
        await keys(running).revoke(str(made["id"]), kind=AccessKeyKind.SERVICE)
    assert (await client.get("/api/v1/files", headers=bearer(str(made["token"])))).is_success
    service = await keys(running).create(
        kind=AccessKeyKind.SERVICE, name="svc", scopes=["files:read"], expires_in=None
    )
    refused = await client.delete(f"/api/v1/tokens/{service.key.id}", headers=auth)
    assert_problem(refused, 404, "token_not_found")
    assert (await client.get("/api/v1/files", headers=bearer(service.token))).status_code == 400
