"""Downloads answered before FastAPI's router (`seau.files.routes.ContentLane`) say
exactly what the routes say: every request below is sent as it is (the lane answers)
and with a query parameter the lane does not know (it passes the request on to the
routes, which ignore that parameter), and the two answers must be the same."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from seau.deps import folding_principal
from seau.errors import InvalidToken
from seau.settings import Settings
from tests.api.helpers import upload_raw
from tests.api.test_access_tokens import make_token, service_key
from tests.conftest import TEST_SECRET, Running, sign_up

DATA = bytes(range(256)) * 20
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + DATA  # a type that may be shown inline

_VARYING = {"x-request-id", "date"}


def _answer(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    headers = {k: v for k, v in response.headers.items() if k not in _VARYING}
    body: Any = response.content
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        body = json.loads(body)
        body.pop("request_id", None)
    return response.status_code, headers, body


async def _same_both_ways(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    headers: dict[str, str],
    query: str = "",
) -> tuple[int, dict[str, str], Any]:
    lane = await client.request(method, f"{path}{query}", headers=headers)
    joiner = "&" if query else "?"
    routed = await client.request(method, f"{path}{query}{joiner}unknown=1", headers=headers)
    assert _answer(lane) == _answer(routed)
    return _answer(lane)


async def test_the_lane_and_the_routes_give_the_same_answers(
    client: httpx.AsyncClient, running: Running, auth: dict[str, str]
) -> None:
    stored = await upload_raw(client, auth, "rapport été.pdf", PDF, "application/pdf")
    path = f"/api/v1/files/{stored['id']}/content"
    etag = f'"{stored["sha256"]}"'
    cases: list[tuple[str, dict[str, str], str, int]] = [
        ("GET", {}, "", 200),
        ("HEAD", {}, "", 200),
        ("GET", {}, "?disposition=inline", 200),
        ("GET", {}, "?disposition=attachment", 200),
        ("GET", {}, "?disposition=sideways", 422),
        ("GET", {"Range": "bytes=10-99"}, "", 206),
        ("HEAD", {"Range": "bytes=-5"}, "", 206),
        ("GET", {"Range": "bytes=99999-"}, "", 416),
        ("GET", {"If-None-Match": etag}, "", 304),
        ("GET", {"If-Range": '"other"', "Range": "bytes=0-9"}, "", 200),
    ]
    for method, extra, query, status in cases:
        answer = await _same_both_ways(client, method, path, headers={**auth, **extra}, query=query)
        assert answer[0] == status, (method, extra, query)
    _, headers, body = await _same_both_ways(client, "GET", path, headers=auth)
    assert body == PDF
    assert headers["content-disposition"].startswith("attachment;")
    inline = await _same_both_ways(client, "GET", path, headers=auth, query="?disposition=inline")
    assert inline[1]["content-disposition"].startswith("inline;")

    refusals: list[tuple[str, dict[str, str], int]] = [
        (path, {}, 401),
        (path, {"Authorization": "Bearer not-a-token"}, 401),
        (path, {"Authorization": "Basic dXNlcjpwYXNz"}, 401),
        (f"/api/v1/files/{uuid.uuid4()}/content", auth, 404),
        ("/api/v1/files/not-a-uuid/content", auth, 404),
        (path, await sign_up(client), 404),  # another owner's file is not there
    ]
    writer = await make_token(client, auth, ["files:write"])
    refusals.append((path, {"Authorization": f"Bearer {writer['token']}"}, 403))
    reader = await make_token(client, auth, ["files:read"])
    refusals.append((path, {"Authorization": f"Bearer {reader['token']}"}, 200))
    key = await service_key(running, ["files:read", "act-as"])
    refusals.append((path, {"Authorization": f"Bearer {key}", "Seau-Subject": "someone"}, 404))
    for where, headers, expected in refusals:
        answer = await _same_both_ways(client, "GET", where, headers=headers)
        assert answer[0] == expected, (where, headers)

    # A signed-out token: the lane folds the owner check into the file's statement.
    gone = await sign_up(client)
    theirs = await upload_raw(client, gone, "a.bin", DATA)
    assert (await client.post("/api/v1/auth/logout", headers=gone)).status_code == 204
    for query in ("", "?disposition=inline"):
        answer = await _same_both_ways(
            client, "GET", f"/api/v1/files/{theirs['id']}/content", headers=gone, query=query
        )
        assert answer[0] == 401


async def test_the_lane_answers_without_the_routes_dependencies(
    client: httpx.AsyncClient, running: Running, auth: dict[str, str]
) -> None:
    """What makes the lane worth having: FastAPI's dependency solving never runs for
    the requests it takes (an override that refuses everyone is not consulted)."""
    stored = await upload_raw(client, auth, "a.bin", DATA)
    path = f"/api/v1/files/{stored['id']}/content"

    async def refuse_everyone() -> None:
        raise InvalidToken("overridden")

    overrides = running.app.dependency_overrides
    overrides[folding_principal] = refuse_everyone
    try:
        lane = await client.get(path, headers=auth)
        routed = await client.get(f"{path}?unknown=1", headers=auth)
    finally:
        overrides.pop(folding_principal)
    assert lane.status_code == 200
    assert lane.content == DATA
    assert routed.status_code == 401


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_lane_answers_carry_cors_headers(tmp_path: Any, method: str) -> None:
    from seau.app import create_app

    settings = Settings(
        data_dir=tmp_path, secret_key=TEST_SECRET, cors_origins=["https://app.example.com"]
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://seau.test"
        ) as client,
    ):
        auth = await sign_up(client)
        stored = await upload_raw(client, auth, "a.bin", DATA)
        response = await client.request(
            method,
            f"/api/v1/files/{stored['id']}/content",
            headers={**auth, "Origin": "https://app.example.com"},
        )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "ETag" in response.headers["access-control-expose-headers"]
