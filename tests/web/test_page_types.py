"""The page shows each file's type as detected from its bytes, the claim beside it when
they differ, and an upload refused by `SEAU_ALLOWED_TYPES` fails on its own row
naming the detected type."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.server import Server, seau_server
from tests.web.test_page import (
    browser_page,
    expect_uploaded,
    file_row,
    names_on_server,
    new_email,
    server_env,
    sign_up,
    token_of,
    upload_row,
)

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99"
    b"=\x1d\x00\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("web-types")
    env = server_env(tmp / "data", SEAU_ALLOWED_TYPES="image/*,text/plain")
    with seau_server(env, cwd=tmp) as running:
        yield running


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    with browser_page(browser, server.url) as opened:
        yield opened


def test_the_list_shows_the_detected_type_and_a_refused_type_fails_its_row(
    page: Page, server: Server, tmp_path: Path
) -> None:
    sign_up(page, new_email())
    # A PNG named .txt (the browser claims text/plain), text named .png, and a page
    # named .png that the allow-list refuses.
    picture = tmp_path / "picture.txt"
    picture.write_bytes(PNG)
    notes = tmp_path / "notes.png"
    notes.write_bytes(b"minutes of the meeting\n" * 20)
    page_html = tmp_path / "cat.png"
    page_html.write_bytes(b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>")
    page.locator("#file-input").set_input_files([picture, notes, page_html])

    expect_uploaded(page, "picture.txt")
    expect_uploaded(page, "notes.png")
    failed = upload_row(page, "cat.png")
    expect(failed.get_by_role("alert")).to_contain_text("text/html")
    expect(failed).to_have_attribute("data-state", "failed")

    for name, detected, declared in (
        ("picture.txt", "image/png", "text/plain"),
        ("notes.png", "text/plain", "image/png"),
    ):
        cell = file_row(page, name).locator("td.col-type")
        expect(cell).to_have_text(detected)
        expect(cell).to_have_attribute("title", f"{detected} (detected; declared {declared})")
    assert names_on_server(server, token_of(page)) == ["notes.png", "picture.txt"]
