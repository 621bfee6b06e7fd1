"""The page at /s/{token} works without JavaScript: the tests act as a browser with
script turned off would, following only the HTML's own forms."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlencode

import httpx
import pytest

from tests.api.helpers import upload_raw
from tests.conftest import Running

pytestmark = pytest.mark.parametrize(
    "running", [("sqlite", "local")], indirect=True, ids=["sqlite-local"]
)


class Forms(HTMLParser):
    """Every form of a page, with its method, action and fields; and whether the
    page holds any script."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, object]] = []
        self.scripts = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script" or any(name.startswith("on") for name in attributes):
            self.scripts += 1
        if tag == "form":
            self.forms.append(
                {
                    "method": (attributes.get("method") or "get").lower(),
                    "action": attributes.get("action"),
                    "fields": [],
                }
            )
        if tag == "input" and self.forms:
            fields = self.forms[-1]["fields"]
            assert isinstance(fields, list)
            fields.append((attributes.get("name"), attributes.get("type")))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Forms:
    forms = Forms()
    forms.feed(html)
    return forms


async def test_the_page_downloads_through_its_form_without_script(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    name = '<img src=x onerror="alert(1)">&amp;<script>.txt'
    file = await upload_raw(client, auth, name, b"hello, world\n")
    assert file["name"] == name
    made = (await client.post(f"/api/v1/files/{file['id']}/shares", json={}, headers=auth)).json()
    async with running.client() as browser:
        page = await browser.get(made["url"])
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src" not in page.headers["content-security-policy"]
        assert "form-action 'self'" in page.headers["content-security-policy"]
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["cache-control"] == "no-store"
        html = parse(page.text)
        assert html.scripts == 0  # the uploader's name is text, not markup
        assert name in "".join(html.text)
        assert "13 bytes" in "".join(html.text)
        [form] = html.forms
        assert form["method"] == "get"
        assert isinstance(form["action"], str)
        got = await browser.get(form["action"])
        assert got.status_code == 200
        assert got.content == b"hello, world\n"
        assert got.headers["content-disposition"].startswith("attachment;")


async def test_a_password_form_sends_the_password_and_downloads(
    client: httpx.AsyncClient, auth: dict[str, str], running: Running
) -> None:
    file = await upload_raw(client, auth, "locked.txt", b"locked bytes")
    made = (
        await client.post(
            f"/api/v1/files/{file['id']}/shares",
            json={"password": "open sesame"},
            headers=auth,
        )
    ).json()
    async with running.client() as browser:
        page = await browser.get(made["url"])
        assert page.status_code == 200
        html = parse(page.text)
        assert "locked.txt" not in page.text
        [form] = html.forms
        assert form["method"] == "post"
        assert ("password", "password") in form["fields"]  # type: ignore[operator]
        assert isinstance(form["action"], str)
        form_type = {"Content-Type": "application/x-www-form-urlencoded"}
        wrong = await browser.post(
            form["action"], content=urlencode({"password": "nope"}), headers=form_type
        )
        assert wrong.status_code == 401
        assert wrong.headers["www-authenticate"].startswith("Basic ")
        assert wrong.headers["content-type"].startswith("text/html")
        assert "Wrong password" in wrong.text
        assert parse(wrong.text).forms  # the form again, to try once more
        right = await browser.post(
            form["action"], content=urlencode({"password": "open sesame"}), headers=form_type
        )
        assert right.status_code == 200
        assert right.content == b"locked bytes"
        assert right.headers["content-disposition"].startswith("attachment;")
        assert right.headers["x-content-type-options"] == "nosniff"
    shares = (await client.get(f"/api/v1/files/{file['id']}/shares", headers=auth)).json()
    assert shares["items"][0]["downloads"] == 1


async def test_openapi_documents_the_share_routes_scopes_and_errors(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    expected = {
        ("post", "/api/v1/files/{file_id}/shares"): ["files:write"],
        ("get", "/api/v1/files/{file_id}/shares"): ["files:read"],
        ("get", "/api/v1/shares"): ["files:read"],
        ("delete", "/api/v1/shares/{share_id}"): ["files:write"],
    }
    for (method, path), scopes in expected.items():
        assert paths[path][method]["security"] == [{"bearer": scopes}, {"token": scopes}]
    content = paths["/s/{token}/content"]
    assert {"get", "head", "post"} <= set(content)
    assert {"200", "206", "304", "401", "404", "410", "416", "429"} <= set(
        content["get"]["responses"]
    )
    assert content["get"]["security"] == [{"share_password": []}]
    assert spec["components"]["securitySchemes"]["share_password"]["scheme"] == "basic"
    assert "text/html" in paths["/s/{token}"]["get"]["responses"]["200"]["content"]
    created = spec["components"]["schemas"]["ShareCreated"]["properties"]
    assert {"id", "url", "expires_at", "max_downloads", "downloads"} <= set(created)
    codes = str(spec)
    for code in ("share_not_found", "share_expired", "share_exhausted", "share_password_invalid"):
        assert code in codes, code
