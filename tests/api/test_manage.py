from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.helpers import assert_problem, stored_keys, upload_raw
from tests.conftest import Running


async def _all_pages(
    client: httpx.AsyncClient, auth: dict[str, str], **params: str | int
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/files", params=query, headers=auth)).json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def test_pages_cover_every_file_once_in_each_sort_order(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    uploaded = [
        await upload_raw(client, auth, f"{name}.txt", b"x" * size)
        for name, size in (("b", 3), ("a", 1), ("c", 3), ("e", 0), ("d", 9), ("a", 5), ("f", 3))
    ]
    for sort, key, reverse in (
        ("created", None, False),
        ("-created", None, True),
        ("name", "name", False),
        ("-name", "name", True),
        ("size", "size", False),
        ("-size", "size", True),
    ):
        items = await _all_pages(client, auth, limit=2, sort=sort)
        assert sorted(i["id"] for i in items) == sorted(u["id"] for u in uploaded)
        if key is not None:
            values = [i[key] for i in items]
            assert values == sorted(values, reverse=reverse), (sort, values)
    created = [i["id"] for i in await _all_pages(client, auth, limit=3, sort="created")]
    assert created == [u["id"] for u in uploaded]


async def test_files_added_while_paging_do_not_shift_the_pages(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    first_batch = [(await upload_raw(client, auth, f"f{i}", b"1"))["id"] for i in range(5)]
    page = (await client.get("/api/v1/files", params={"limit": 2}, headers=auth)).json()
    seen = [i["id"] for i in page["items"]]
    for i in range(3):
        await upload_raw(client, auth, f"new{i}", b"2")
    cursor = page["next_cursor"]
    while cursor:
        page = (
            await client.get("/api/v1/files", params={"limit": 2, "cursor": cursor}, headers=auth)
        ).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(first_batch)
    assert len(seen) == len(set(seen))


async def test_q_filters_names_and_treats_wildcards_literally(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    for name in (
        "Holiday 2026.jpg",
        "holiday-notes.txt",
        "work.txt",
        "100%_done.txt",
        "1000_done.txt",
    ):
        await upload_raw(client, auth, name, b"x")
    names = {i["name"] for i in await _all_pages(client, auth, q="HOLIDAY")}
    assert names == {"Holiday 2026.jpg", "holiday-notes.txt"}
    assert {i["name"] for i in await _all_pages(client, auth, q="%_")} == {"100%_done.txt"}


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": -1}, {"limit": "many"}, {"sort": "owner"}, {"limit": 10**30}],
)
async def test_absurd_pagination_values_are_422(
    client: httpx.AsyncClient, auth: dict[str, str], params: dict[str, str | int]
) -> None:
    response = await client.get("/api/v1/files", params=params, headers=auth)
    assert_problem(response, 422, "validation_error")


@pytest.mark.parametrize("cursor", ["garbage", "eyJzIjoibmFtZSJ9", "%%%", "e30"])
async def test_a_bad_cursor_is_400(
    client: httpx.AsyncClient, auth: dict[str, str], cursor: str
) -> None:
    response = await client.get("/api/v1/files", params={"cursor": cursor}, headers=auth)
    assert_problem(response, 400, "invalid_cursor")


async def test_a_cursor_from_another_sort_order_is_400(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    for i in range(3):
        await upload_raw(client, auth, f"n{i}", b"x")
    page = (
        await client.get("/api/v1/files", params={"limit": 1, "sort": "name"}, headers=auth)
    ).json()
    response = await client.get(
        "/api/v1/files", params={"cursor": page["next_cursor"], "sort": "size"}, headers=auth
    )
    assert_problem(response, 400, "invalid_cursor")


async def test_rename_changes_the_name_and_keeps_the_bytes(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    body = await upload_raw(client, auth, "old.txt", b"keep me")
    renamed = await client.patch(
        f"/api/v1/files/{body['id']}", json={"name": "nouveau ✓.txt"}, headers=auth
    )
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "nouveau ✓.txt"
    assert renamed.json()["sha256"] == body["sha256"]
    content = await client.get(f"/api/v1/files/{body['id']}/content", headers=auth)
    assert content.content == b"keep me"
    assert (
        "nouveau" in content.headers["content-disposition"]
        or "nouveau" in content.headers["content-disposition"].lower()
    )


async def test_rename_to_an_invalid_name_is_422(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    body = await upload_raw(client, auth, "ok.txt", b"x")
    response = await client.patch(
        f"/api/v1/files/{body['id']}", json={"name": "a\x00b"}, headers=auth
    )
    assert_problem(response, 422, "invalid_file_name")


async def test_delete_removes_row_and_object(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    body = await upload_raw(client, auth, "doomed.txt", b"bye")
    keys_with = await stored_keys(running)
    response = await client.delete(f"/api/v1/files/{body['id']}", headers=auth)
    assert response.status_code == 204
    assert_problem(
        await client.get(f"/api/v1/files/{body['id']}", headers=auth), 404, "file_not_found"
    )
    assert_problem(
        await client.get(f"/api/v1/files/{body['id']}/content", headers=auth), 404, "file_not_found"
    )
    assert_problem(
        await client.delete(f"/api/v1/files/{body['id']}", headers=auth), 404, "file_not_found"
    )
    assert len(keys_with - await stored_keys(running)) == 1
