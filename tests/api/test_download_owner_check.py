"""Downloads and listings fold a sign-in's owner check into the file's statement
(`seau.auth.owner_check`): revocation stays instant, and the errors keep their order
(a bad token is 401 whatever the file; a good one for a missing file is 404)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.api.helpers import assert_problem
from tests.conftest import Running, sign_up

FOLDED = ("GET {}/content", "HEAD {}/content", "GET {}")


async def _upload(client: httpx.AsyncClient, auth: dict[str, str]) -> str:
    created = await client.post(
        "/api/v1/files", headers=auth, files={"file": ("a.txt", b"hello", "text/plain")}
    )
    assert created.status_code == 201, created.text
    file_id: str = created.json()["files"][0]["id"]
    return file_id


def _targets(file_id: str) -> tuple[str, ...]:
    """The owner's file, an id nobody has and a malformed id: one answer for all."""
    return (file_id, str(uuid.uuid4()), "not-a-uuid")


async def _call(
    client: httpx.AsyncClient, route: str, file_id: str, auth: dict[str, str]
) -> httpx.Response:
    method, path = route.split(" ")
    return await client.request(method, path.format(f"/api/v1/files/{file_id}"), headers=auth)


@pytest.mark.parametrize("route", FOLDED)
async def test_a_signed_out_token_is_refused_at_once_on_folded_routes(
    client: httpx.AsyncClient, route: str
) -> None:
    auth = await sign_up(client)
    file_id = await _upload(client, auth)
    assert (await _call(client, route, file_id, auth)).status_code == 200
    assert (await client.post("/api/v1/auth/logout", headers=auth)).status_code == 204
    for target in _targets(file_id):
        response = await _call(client, route, target, auth)
        assert response.status_code == 401, (target, response.status_code)
        if route.startswith("GET"):
            assert_problem(response, 401, "token_invalid")


async def test_a_disabled_owner_is_refused_on_downloads(
    client: httpx.AsyncClient, running: Running
) -> None:
    auth = await sign_up(client)
    file_id = await _upload(client, auth)
    me = (await client.get("/api/v1/users/me", headers=auth)).json()
    await running.app.state.seau.auth.set_active(uuid.UUID(me["id"]), active=False)
    response = await client.get(f"/api/v1/files/{file_id}/content", headers=auth)
    assert_problem(response, 401, "token_invalid")


async def test_a_good_token_still_gets_404_for_a_file_it_does_not_own(
    client: httpx.AsyncClient,
) -> None:
    owner = await sign_up(client)
    other = await sign_up(client)
    file_id = await _upload(client, owner)
    for target in _targets(file_id):
        response = await client.get(f"/api/v1/files/{target}/content", headers=other)
        assert_problem(response, 404, "file_not_found")
    response = await client.get(f"/api/v1/files/{file_id}/content", headers=owner)
    assert response.content == b"hello"


@pytest.mark.parametrize(
    "query", [{}, {"q": "a.t"}, {"q": "nothing like it"}, {"sort": "name", "limit": 1}]
)
async def test_a_signed_out_or_disabled_token_lists_nothing(
    client: httpx.AsyncClient, running: Running, query: dict[str, str | int]
) -> None:
    for revoke in ("logout", "disable"):
        auth = await sign_up(client)
        await _upload(client, auth)
        listed = await client.get("/api/v1/files", params=query, headers=auth)
        assert listed.status_code == 200, listed.text
        me = (await client.get("/api/v1/users/me", headers=auth)).json()
        if revoke == "logout":
            assert (await client.post("/api/v1/auth/logout", headers=auth)).status_code == 204
        else:
            await running.app.state.seau.auth.set_active(uuid.UUID(me["id"]), active=False)
        refused = await client.get("/api/v1/files", params=query, headers=auth)
        assert_problem(refused, 401, "token_invalid")


@pytest.mark.parametrize("revoke", ["logout", "disable"])
async def test_a_signed_out_or_disabled_token_neither_renames_nor_deletes(
    client: httpx.AsyncClient, running: Running, revoke: str
) -> None:
    """Rename and delete fold the check too: refused whatever the target, and the
    file is untouched."""
    auth = await sign_up(client)
    file_id = await _upload(client, auth)
    me = uuid.UUID((await client.get("/api/v1/users/me", headers=auth)).json()["id"])
    if revoke == "logout":
        assert (await client.post("/api/v1/auth/logout", headers=auth)).status_code == 204
    else:
        await running.app.state.seau.auth.set_active(me, active=False)
    for target in _targets(file_id):
        path = f"/api/v1/files/{target}"
        for name in ("b.txt", "bad\u0000name"):  # a name refused, too, is told 401 first
            renamed = await client.patch(path, json={"name": name}, headers=auth)
            assert_problem(renamed, 401, "token_invalid")
        deleted = await client.delete(path, headers=auth)
        assert deleted.status_code == 401, (target, deleted.status_code)
    row = await running.app.state.seau.files.get(owner_id=me, file_id=file_id)
    assert row.name == "a.txt"


async def test_a_good_token_renames_and_deletes_only_its_own_files(
    client: httpx.AsyncClient,
) -> None:
    owner = await sign_up(client)
    other = await sign_up(client)
    file_id = await _upload(client, owner)
    for target in _targets(file_id):
        path = f"/api/v1/files/{target}"
        refused = await client.patch(path, json={"name": "b.txt"}, headers=other)
        assert_problem(refused, 404, "file_not_found")
        assert (await client.delete(path, headers=other)).status_code == 404
    renamed = await client.patch(f"/api/v1/files/{file_id}", json={"name": "b.txt"}, headers=owner)
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "b.txt"
    assert (await client.delete(f"/api/v1/files/{file_id}", headers=owner)).status_code == 204
    gone = await client.get(f"/api/v1/files/{file_id}", headers=owner)
    assert_problem(gone, 404, "file_not_found")
