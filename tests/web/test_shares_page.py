"""Share links in Chromium: the page's Share button and list with revoke, and the
link's own page opened with JavaScript turned off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.server import Server, seau_server
from tests.web.test_page import (
    browser_page,
    expect_uploaded,
    file_row,
    new_email,
    server_env,
    sign_up,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("web-shares")
    with seau_server(server_env(tmp / "data"), cwd=tmp) as running:
        yield running


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    with browser_page(browser, server.url) as opened:
        yield opened


def test_share_a_file_download_it_without_script_and_revoke_the_link(
    page: Page, browser: Browser, server: Server, tmp_path: Path
) -> None:
    sign_up(page, new_email())
    notes = tmp_path / "plan.txt"
    notes.write_bytes(b"the plan, step by step\n" * 50)
    page.locator("#file-input").set_input_files([notes])
    expect_uploaded(page, "plan.txt")
    expect(file_row(page, "plan.txt")).to_be_visible()

    page.get_by_role("button", name="Share plan.txt").click()
    dialog = page.get_by_role("dialog", name="Share plan.txt")
    dialog.get_by_label("Password (optional)").fill("for the team")
    dialog.get_by_label("Downloads allowed (optional)").fill("2")
    dialog.get_by_role("button", name="Create link").click()
    link = dialog.get_by_label("Link (shown only now)")
    expect(link).to_be_visible()
    url = link.input_value()
    assert url.startswith(f"{server.url}/s/")
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("button", name="Share plan.txt")).to_be_focused()
    shares = page.locator("#share-rows > tr")
    expect(shares).to_have_count(1)
    expect(shares.first).to_contain_text("0 of 2")

    # Someone else, script off: the server's page, its password form, the download.
    context = browser.new_context(java_script_enabled=False, accept_downloads=True)
    try:
        visitor = context.new_page()
        visitor.goto(url)
        expect(visitor.get_by_role("heading")).to_have_text("This file is protected by a password")
        visitor.get_by_label("Password").fill("for the team")
        with visitor.expect_download() as info:
            visitor.get_by_role("button", name="Download").click()
        assert info.value.suggested_filename == "plan.txt"
        assert Path(info.value.path()).read_bytes() == notes.read_bytes()
    finally:
        context.close()

    page.reload()
    expect(page.locator("#share-rows > tr").first).to_contain_text("1 of 2")
    page.get_by_role("button", name="Revoke the link to plan.txt").click()
    expect(page.locator("#share-rows > tr")).to_have_count(0)
    expect(page.get_by_text("No share links.")).to_be_visible()
    assert httpx.get(f"{url}/content", auth=("", "for the team")).status_code == 404
