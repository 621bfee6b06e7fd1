"""The web page in a real browser, against a real `seau serve` process.

Playwright drives Debian's Chromium headless; the page talks to the server over
HTTP exactly as a person's browser would. Locators go by role and accessible name
where they can, so the tests also hold the page to its labels.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Locator,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from tests.support.databases import unavailable
from tests.support.server import Server, seau_server
from tests.web.browser import CHROMIUM, launch

MiB = 1024 * 1024
LIMIT = 16 * MiB
PASSWORD = "correct horse battery"
EXPIRED = "Your session has expired. Please sign in again."

# Records every value each upload's progress bar takes, to check they only grow.
WATCH_PROGRESS = """() => {
  window.progressSeen = {};
  const record = (bar) => {
    const name = document.getElementById(bar.getAttribute("aria-labelledby")).textContent;
    (window.progressSeen[name] ??= []).push(Number(bar.getAttribute("value")));
  };
  new MutationObserver((changes) => {
    for (const change of changes) {
      if (change.type === "attributes") record(change.target);
      for (const node of change.addedNodes) node.querySelectorAll?.("progress").forEach(record);
    }
  }).observe(document.getElementById("uploads"),
             { subtree: true, childList: true, attributes: true, attributeFilter: ["value"] });
}"""


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing: apt-get install chromium")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = launch(playwright)
    yield browser
    browser.close()


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "SEAU_DATA_DIR": str(data_dir),
        "SEAU_MAX_UPLOAD_BYTES": str(LIMIT),
        "SEAU_LOG_LEVEL": "warning",
        **extra,
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("web")
    with seau_server(server_env(tmp / "data"), cwd=tmp) as running:
        yield running


def _console_problem(message: ConsoleMessage) -> str | None:
    # Chromium logs every non-2xx answer as "Failed to load resource"; the tests
    # provoke those on purpose. Anything else (a CSP refusal, an exception) is a bug.
    if message.type == "error" and not message.text.startswith("Failed to load resource"):
        return f"console: {message.text}"
    return None


@contextmanager
def browser_page(browser: Browser, base_url: str) -> Iterator[Page]:
    context = browser.new_context(base_url=base_url, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: problems.extend(p for p in [_console_problem(message)] if p),
    )
    try:
        yield page
    finally:
        context.close()
    assert problems == []


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    with browser_page(browser, server.url) as opened:
        yield opened


def new_email() -> str:
    return f"web-{secrets.token_hex(5)}@example.com"


def signed_in(page: Page, email: str) -> None:
    expect(page.locator("#account-email")).to_have_text(email)
    expect(page.get_by_role("heading", name="Files", exact=True)).to_be_visible()


def sign_up(page: Page, email: str) -> None:
    page.goto("/")
    page.get_by_role("button", name="Create one").click()
    form = page.get_by_role("form", name="Create an account")
    form.get_by_label("Email").fill(email)
    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_role("button", name="Create account").click()
    signed_in(page, email)


def sign_in(page: Page, email: str) -> None:
    form = page.get_by_role("form", name="Sign in")
    form.get_by_label("Email").fill(email)
    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_role("button", name="Sign in").click()
    signed_in(page, email)


def upload_row(page: Page, name: str) -> Locator:
    return page.locator("#uploads > li").filter(has=page.get_by_text(name, exact=True))


def file_row(page: Page, name: str) -> Locator:
    return page.locator("#file-rows > tr").filter(has=page.get_by_text(name, exact=True))


def first_names(page: Page) -> list[str]:
    return page.locator("#file-rows .filename").all_inner_texts()


def token_of(page: Page) -> str:
    token: str = page.evaluate("JSON.parse(sessionStorage.getItem('seau.session')).token")
    return token


def names_on_server(server: Server, token: str) -> list[str]:
    listed = httpx.get(
        f"{server.url}/api/v1/files",
        params={"sort": "name"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert listed.status_code == 200, listed.text
    return [item["name"] for item in listed.json()["items"]]


def expect_uploaded(page: Page, name: str) -> None:
    expect(page.get_by_role("progressbar", name=name)).to_have_attribute("value", "100")
    expect(upload_row(page, name)).to_have_attribute("data-state", "done")


def test_page_and_assets_are_served_with_a_strict_content_security_policy(
    server: Server,
) -> None:
    page = httpx.get(f"{server.url}/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in page.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["require-trusted-types-for"] == "'script'"
    assert page.headers["x-content-type-options"] == "nosniff"

    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert sorted(assets) == ["/static/app.css", "/static/app.js", "/static/favicon.svg"]
    types = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
    for path in assets:
        asset = httpx.get(f"{server.url}{path}")
        assert asset.status_code == 200
        assert asset.headers["content-type"].startswith(types[Path(path).suffix])
        again = httpx.get(f"{server.url}{path}", headers={"If-None-Match": asset.headers["etag"]})
        assert again.status_code == 304

    for path in ("/static/routes.py", "/static/index.html", "/static/..%2Froutes.py"):
        missing = httpx.get(f"{server.url}{path}")
        assert missing.status_code == 404, path
        assert missing.headers["content-type"].startswith("application/problem+json")


def test_sign_up_upload_two_files_download_rename_and_delete(
    page: Page, server: Server, tmp_path: Path
) -> None:
    email = new_email()
    sign_up(page, email)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("alert").filter(has_text="You have signed out.")).to_be_visible()
    sign_in(page, email)

    small = tmp_path / "notes.txt"
    small.write_bytes(b"minutes of the meeting\n" * 100)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 * MiB + 123))
    page.evaluate(WATCH_PROGRESS)
    page.locator("#file-input").set_input_files([small, big])

    for path in (small, big):
        expect_uploaded(page, path.name)
        seen = page.evaluate("window.progressSeen")[path.name]
        assert seen == sorted(seen)
        assert seen[-1] == 100
    expect(page.locator("#file-rows > tr")).to_have_count(2)
    expect(file_row(page, "big.bin")).to_contain_text("12 MiB")
    expect(file_row(page, "notes.txt")).to_contain_text("text/plain")
    assert names_on_server(server, token_of(page)) == ["big.bin", "notes.txt"]

    with page.expect_download() as info:
        page.get_by_role("button", name="Download big.bin").click()
    download = info.value
    assert download.suggested_filename == "big.bin"
    assert Path(download.path()).read_bytes() == big.read_bytes()

    page.get_by_role("button", name="Rename notes.txt").click()
    field = page.get_by_label("New name for notes.txt")
    expect(field).to_be_focused()
    field.fill("minutes.txt")
    field.press("Enter")
    expect(file_row(page, "minutes.txt")).to_be_visible()
    expect(page.get_by_role("button", name="Rename minutes.txt")).to_be_focused()
    assert names_on_server(server, token_of(page)) == ["big.bin", "minutes.txt"]

    dialog = page.get_by_role("dialog", name="Delete file?")
    page.get_by_role("button", name="Delete minutes.txt").click()
    expect(dialog).to_contain_text("minutes.txt")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(file_row(page, "minutes.txt")).to_have_count(1)

    page.get_by_role("button", name="Delete minutes.txt").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(file_row(page, "minutes.txt")).to_have_count(0)
    expect(page.locator("#file-rows > tr")).to_have_count(1)
    assert names_on_server(server, token_of(page)) == ["big.bin"]


def test_a_file_over_the_size_limit_fails_on_its_own_row(
    page: Page, server: Server, tmp_path: Path
) -> None:
    sign_up(page, new_email())
    too_big = tmp_path / "too-big.iso"
    too_big.write_bytes(bytes(LIMIT + 1))
    fine = tmp_path / "fine.txt"
    fine.write_bytes(b"fits")
    page.locator("#file-input").set_input_files([too_big, fine])

    failed = upload_row(page, "too-big.iso")
    expect(failed.get_by_role("alert")).to_have_text(
        "File too large: the file exceeds the limit of 16 MiB"
    )
    expect(failed).to_have_attribute("data-state", "failed")
    expect_uploaded(page, "fine.txt")
    expect(page.locator("#file-rows > tr")).to_have_count(1)
    assert names_on_server(server, token_of(page)) == ["fine.txt"]


def test_a_network_failure_shows_on_its_upload_and_retry_completes_it(
    page: Page, tmp_path: Path
) -> None:
    sign_up(page, new_email())

    def is_upload(url: str) -> bool:
        return "/api/v1/files?name=" in url

    page.route(is_upload, lambda route: route.abort("connectionreset"))
    path = tmp_path / "report.pdf"
    path.write_bytes(b"%PDF-1.7 not really")
    page.locator("#file-input").set_input_files(path)

    row = upload_row(page, "report.pdf")
    expect(row.get_by_role("alert")).to_have_text("Network error: the server could not be reached.")
    page.unroute(is_upload)
    row.get_by_role("button", name="Retry upload of report.pdf").click()
    expect_uploaded(page, "report.pdf")
    expect(file_row(page, "report.pdf")).to_contain_text("application/pdf")


def test_the_drop_zone_works_from_the_keyboard_and_by_dropping(page: Page, tmp_path: Path) -> None:
    sign_up(page, new_email())
    zone = page.get_by_role("button", name="Drop files here or choose files")
    zone.focus()
    picked = tmp_path / "picked.txt"
    picked.write_bytes(b"chosen with the keyboard")
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    assert chooser.value.is_multiple()
    chooser.value.set_files(picked)
    expect_uploaded(page, "picked.txt")

    transfer = page.evaluate_handle(
        """() => {
          const transfer = new DataTransfer();
          transfer.items.add(new File(["dropped bytes"], "dropped.txt", { type: "text/plain" }));
          transfer.items.add(new File(["more"], "second.txt", { type: "text/plain" }));
          return transfer;
        }"""
    )
    zone.dispatch_event("dragenter", {"dataTransfer": transfer})
    expect(zone).to_have_class(re.compile(r"\bis-dragover\b"))
    zone.dispatch_event("drop", {"dataTransfer": transfer})
    expect(zone).not_to_have_class(re.compile(r"\bis-dragover\b"))
    expect_uploaded(page, "dropped.txt")
    expect_uploaded(page, "second.txt")
    expect(page.locator("#file-rows > tr")).to_have_count(3)


def test_the_list_sorts_by_column_pages_and_filters(page: Page, server: Server) -> None:
    email = new_email()
    with httpx.Client(base_url=server.url) as api:
        created = api.post("/api/v1/users", json={"email": email, "password": PASSWORD})
        assert created.status_code == 201
        token = api.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
        for i in range(12):
            # Sizes are a permutation unrelated to names and upload order: file-07 is largest.
            size = ((i * 5) % 12 + 1) * 1000
            uploaded = api.post(
                "/api/v1/files",
                params={"name": f"file-{i:02}.txt"},
                content=b"x" * size,
                headers=auth,
            )
            assert uploaded.status_code == 201
    page.goto("/")
    sign_in(page, email)

    page.get_by_label("Per page").select_option("10")
    expect(page.locator("#file-rows > tr")).to_have_count(10)
    assert first_names(page)[0] == "file-11.txt"  # newest first
    expect(page.get_by_role("columnheader", name="Uploaded")).to_have_attribute(
        "aria-sort", "descending"
    )
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#file-rows > tr")).to_have_count(2)
    assert first_names(page) == ["file-01.txt", "file-00.txt"]
    expect(page.get_by_role("button", name="Next")).to_be_disabled()
    page.get_by_role("button", name="Previous").click()
    expect(page.locator("#file-rows > tr")).to_have_count(10)

    name_header = page.get_by_role("columnheader", name="Name")
    name_header.get_by_role("button").click()
    expect(name_header).to_have_attribute("aria-sort", "ascending")
    expect(page.locator("#file-rows .filename").first).to_have_text("file-00.txt")
    name_header.get_by_role("button").click()
    expect(name_header).to_have_attribute("aria-sort", "descending")
    expect(page.locator("#file-rows .filename").first).to_have_text("file-11.txt")
    page.get_by_role("columnheader", name="Size").get_by_role("button").click()
    expect(page.locator("#file-rows .filename").first).to_have_text("file-07.txt")

    page.get_by_label("Search file names").fill("file-1")
    expect(page.locator("#file-rows > tr")).to_have_count(2)
    assert sorted(first_names(page)) == ["file-10.txt", "file-11.txt"]


def test_an_expired_session_returns_to_sign_in_with_a_message(
    browser: Browser, tmp_path: Path
) -> None:
    env = server_env(tmp_path / "data", SEAU_TOKEN_TTL_SECONDS="2")
    with seau_server(env, cwd=tmp_path) as short, browser_page(browser, short.url) as page:
        email = new_email()
        sign_up(page, email)
        time.sleep(2.5)
        # The next request carries an expired token: the server answers 401.
        page.get_by_label("Per page").select_option("50")
        expect(page.get_by_role("alert").filter(has_text=EXPIRED)).to_be_visible()
        form = page.get_by_role("form", name="Sign in")
        expect(form.get_by_label("Email")).to_have_value(email)
        expect(form.get_by_label("Password")).to_be_focused()
        assert page.evaluate("sessionStorage.getItem('seau.session')") is None

        sign_in(page, email)
        time.sleep(2.5)
        # A reload after expiry knows without asking the server.
        page.reload()
        expect(page.get_by_role("alert").filter(has_text=EXPIRED)).to_be_visible()


def test_sign_in_errors_are_shown_next_to_the_form(page: Page) -> None:
    page.goto("/")
    form = page.get_by_role("form", name="Sign in")
    form.get_by_role("button", name="Sign in").click()
    email = form.get_by_label("Email")
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(email).to_be_focused()
    expect(page.locator("#signin-email-error")).to_contain_text("Enter an email address")

    email.fill(new_email())
    form.get_by_label("Password").fill("not the password")
    form.get_by_role("button", name="Sign in").click()
    expect(form.get_by_role("alert")).to_contain_text("Wrong email or password")
