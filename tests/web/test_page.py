"""The web page in a real browser, against a real `seau serve` process.

Playwright drives Debian's Chromium headless; the page talks to the server over
HTTP exactly as a person's browser would. Locators go by role and accessible name
where they can, so the tests also hold the page to its labels.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Locator,
    Page,
    Request,
    Route,
    expect,
)

from tests.support.databases import unavailable
from tests.support.server import Server, seau_server

MiB = 1024 * 1024
LIMIT = 16 * MiB
# app.js: files from RESUMABLE_FROM_BYTES on go with tus, in RESUMABLE_CHUNK_BYTES PATCHes.
CHUNK = 8 * MiB
TUS_JS = Path(__file__).parents[1] / "uploads" / "js"
STATIC = Path(__file__).parents[2] / "src" / "seau" / "web" / "static"
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
    # No identity provider: the page reaches its own origin only, and shows the form.
    assert policy["connect-src"] == "'self'"
    options = httpx.get(f"{server.url}/api/v1/auth/options")
    # The local store: no direct uploads, the page sends every byte through seau.
    assert options.json() == {"local_accounts": True, "oidc": None, "direct_uploads": None}

    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert sorted(assets) == [
        "/static/app.css",
        "/static/app.js",
        "/static/favicon.svg",
        "/static/tus.min.js",
    ]
    types = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
    for path in assets:
        asset = httpx.get(f"{server.url}{path}")
        assert asset.status_code == 200
        assert asset.headers["content-type"].startswith(types[Path(path).suffix])
        again = httpx.get(f"{server.url}{path}", headers={"If-None-Match": asset.headers["etag"]})
        assert again.status_code == 304

    notice = httpx.get(f"{server.url}/static/tus.min.js.LICENSE.txt")
    assert notice.status_code == 200
    assert notice.headers["content-type"] == "text/plain; charset=utf-8"
    assert "Copyright (c) 2015 tus - Resumable File Uploads" in notice.text

    for path in ("/static/routes.py", "/static/index.html", "/static/..%2Froutes.py"):
        missing = httpx.get(f"{server.url}{path}")
        assert missing.status_code == 404, path
        assert missing.headers["content-type"].startswith("application/problem+json")


def test_the_shipped_tus_client_is_the_pinned_one_with_its_licences() -> None:
    lock = json.loads((TUS_JS / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/tus-js-client"]["version"]
    notice = (STATIC / "tus.min.js.LICENSE.txt").read_text()
    assert f"tus-js-client {pinned} (MIT)" in notice
    installed = TUS_JS / "node_modules" / "tus-js-client"
    if not installed.is_dir():
        unavailable(f"{installed} is missing: npm ci --prefix {TUS_JS}")
    assert json.loads((installed / "package.json").read_text())["version"] == pinned
    shipped = (STATIC / "tus.min.js").read_bytes()
    assert shipped == (installed / "dist" / "tus.min.js").read_bytes()


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
    # What the files use (GET /api/v1/usage), no quota set.
    expect(page.locator("#usage")).to_have_text("Using 12 MiB · 2 files")
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
    expect(page.locator("#usage")).to_have_text("Using 12 MiB · 1 file")


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
    # Over 8 MiB it goes with tus: the server refuses its Upload-Length at creation.
    expect(failed.get_by_role("alert")).to_have_text(
        "File too large: the upload exceeds the limit of 16 MiB"
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


def test_retrying_an_upload_whose_answer_was_lost_stores_it_once(
    page: Page, server: Server, tmp_path: Path
) -> None:
    sign_up(page, new_email())
    keys: list[str | None] = []

    def is_upload(url: str) -> bool:
        return "/api/v1/files?name=" in url

    def lose_the_answer(route: Route) -> None:
        keys.append(route.request.headers.get("idempotency-key"))
        # The request reaches the server (the file is stored), the answer never the page.
        stored = route.fetch()
        assert stored.status == 201, stored.text()
        route.abort("connectionreset")

    page.route(is_upload, lose_the_answer)
    path = tmp_path / "minutes.txt"
    path.write_bytes(b"the minutes of the meeting")
    page.locator("#file-input").set_input_files(path)
    row = upload_row(page, "minutes.txt")
    expect(row.get_by_role("alert")).to_have_text("Network error: the server could not be reached.")
    page.unroute(is_upload)
    with page.expect_request(lambda request: is_upload(request.url)) as retried:
        row.get_by_role("button", name="Retry upload of minutes.txt").click()
    expect_uploaded(page, "minutes.txt")
    # The retry carried the first try's key, so the server answered the stored file.
    assert keys[0]
    assert retried.value.headers.get("idempotency-key") == keys[0]
    answer = retried.value.response()
    assert answer is not None
    assert answer.headers.get("idempotent-replayed") == "true"
    assert names_on_server(server, token_of(page)) == ["minutes.txt"]
    expect(page.locator("#file-rows > tr")).to_have_count(1)


@dataclass(frozen=True)
class Sent:
    """One upload request as the browser sent it."""

    method: str
    path: str
    name: str | None  # ?name= of a plain POST
    offset: int | None  # Upload-Offset of a tus request


def record_uploads(page: Page) -> list[Sent]:
    sent: list[Sent] = []

    def record(request: Request) -> None:
        url = urlsplit(request.url)
        if url.path.startswith("/api/v1/uploads") or (
            url.path == "/api/v1/files" and request.method == "POST"
        ):
            offset = request.headers.get("upload-offset")
            sent.append(
                Sent(
                    method=request.method,
                    path=url.path,
                    name=parse_qs(url.query).get("name", [None])[0],
                    offset=None if offset is None else int(offset),
                )
            )

    page.on("request", record)
    return sent


def tus_requests(sent: list[Sent]) -> list[tuple[str, int | None]]:
    return [(s.method, s.offset) for s in sent if s.path.startswith("/api/v1/uploads")]


def on_second_patch(page: Page, act: Callable[[Route], None]) -> None:
    """Lets every tus request through except the second PATCH, which `act` handles."""
    patches = 0

    def handle(route: Route) -> None:
        nonlocal patches
        if route.request.method == "PATCH":
            patches += 1
            if patches == 2:
                act(route)
                return
        route.continue_()

    page.route("**/api/v1/uploads/*", handle)


def at_offset(offset: int) -> Callable[[Request], bool]:
    """A PATCH sending bytes from `offset` on."""
    return lambda r: r.method == "PATCH" and r.headers.get("upload-offset") == str(offset)


def stored_resumable_uploads(page: Page) -> list[str]:
    keys: list[str] = page.evaluate(
        "Object.keys(localStorage).filter((key) => key.startsWith('tus::'))"
    )
    return keys


def expect_downloads_as(page: Page, path: Path) -> None:
    with page.expect_download() as info:
        page.get_by_role("button", name=f"Download {path.name}").click()
    assert Path(info.value.path()).read_bytes() == path.read_bytes()


def test_a_large_file_goes_up_with_tus_and_a_small_one_in_one_post(
    page: Page, server: Server, tmp_path: Path
) -> None:
    sign_up(page, new_email())
    sent = record_uploads(page)
    large = tmp_path / "holiday.mp4"
    large.write_bytes(os.urandom(CHUNK + 4 * MiB + 7))
    small = tmp_path / "small.txt"
    small.write_bytes(b"a few bytes\n")
    page.evaluate(WATCH_PROGRESS)
    page.locator("#file-input").set_input_files([large, small])

    expect_uploaded(page, "holiday.mp4")
    expect_uploaded(page, "small.txt")
    seen = page.evaluate("window.progressSeen")["holiday.mp4"]
    assert seen == sorted(seen)
    assert tus_requests(sent) == [("POST", None), ("PATCH", 0), ("PATCH", CHUNK)]
    assert [s.name for s in sent if s.path == "/api/v1/files"] == ["small.txt"]
    # The finished upload is the file, with the upload's id.
    upload_ids = {s.path.rsplit("/", 1)[1] for s in sent if s.method == "PATCH"}
    assert len(upload_ids) == 1
    (upload_id,) = upload_ids
    expect(file_row(page, "holiday.mp4")).to_have_attribute("data-id", upload_id)
    # Random bytes, whatever the name says: the type is detected from them.
    expect(file_row(page, "holiday.mp4")).to_contain_text("application/octet-stream")
    assert names_on_server(server, token_of(page)) == ["holiday.mp4", "small.txt"]
    expect_downloads_as(page, large)
    # Done: nothing is left to resume.
    assert stored_resumable_uploads(page) == []


def test_a_dropped_chunk_is_resent_from_the_servers_offset(page: Page, tmp_path: Path) -> None:
    sign_up(page, new_email())
    sent = record_uploads(page)
    on_second_patch(page, lambda route: route.abort("connectionreset"))
    path = tmp_path / "disk.img"
    path.write_bytes(os.urandom(CHUNK + 3 * MiB + 1))
    page.locator("#file-input").set_input_files(path)

    expect_uploaded(page, "disk.img")
    # Not started over: tus-js-client asks where the server stands, then sends the rest.
    assert tus_requests(sent) == [
        ("POST", None),
        ("PATCH", 0),
        ("PATCH", CHUNK),
        ("HEAD", None),
        ("PATCH", CHUNK),
    ]
    expect(upload_row(page, "disk.img").locator(".upload-error")).to_have_text("")
    expect_downloads_as(page, path)


def test_an_upload_waits_while_offline_and_continues_when_back_online(
    page: Page, tmp_path: Path
) -> None:
    sign_up(page, new_email())
    sent = record_uploads(page)

    def cut_the_network(route: Route) -> None:
        page.context.set_offline(True)
        route.abort("internetdisconnected")

    on_second_patch(page, cut_the_network)
    path = tmp_path / "backup.tar"
    path.write_bytes(os.urandom(CHUNK + 2 * MiB))
    page.locator("#file-input").set_input_files(path)

    row = upload_row(page, "backup.tar")
    expect(row).to_contain_text("waiting for the network")
    expect(row).to_have_attribute("data-state", "uploading")
    page.wait_for_timeout(1500)  # longer than tus-js-client's first retry delays
    assert tus_requests(sent) == [("POST", None), ("PATCH", 0), ("PATCH", CHUNK)]
    page.context.set_offline(False)

    expect_uploaded(page, "backup.tar")
    assert tus_requests(sent)[3:] == [("HEAD", None), ("PATCH", CHUNK)]
    expect_downloads_as(page, path)


def test_picking_the_same_file_after_a_reload_continues_its_upload(
    page: Page, tmp_path: Path
) -> None:
    sign_up(page, new_email())
    sent = record_uploads(page)
    held: list[Route] = []
    on_second_patch(page, held.append)  # never answered: the reload cuts it
    path = tmp_path / "archive.zip"
    path.write_bytes(os.urandom(CHUNK + MiB))
    with page.expect_request(at_offset(CHUNK)):
        page.locator("#file-input").set_input_files(path)
    assert len(stored_resumable_uploads(page)) == 1

    page.reload()
    expect(page.locator("#account-email")).to_be_visible()  # sessionStorage kept the session
    sent.clear()
    page.locator("#file-input").set_input_files(path)
    expect_uploaded(page, "archive.zip")
    assert tus_requests(sent) == [("HEAD", None), ("PATCH", CHUNK)]
    assert stored_resumable_uploads(page) == []
    expect(page.locator("#file-rows > tr")).to_have_count(1)
    expect_downloads_as(page, path)


def test_cancelling_a_resumable_upload_terminates_it_on_the_server(
    page: Page, server: Server, tmp_path: Path
) -> None:
    sign_up(page, new_email())
    sent = record_uploads(page)
    held: list[Route] = []
    on_second_patch(page, held.append)
    path = tmp_path / "movie.mkv"
    path.write_bytes(os.urandom(CHUNK + MiB))
    with page.expect_request(at_offset(CHUNK)):
        page.locator("#file-input").set_input_files(path)

    with page.expect_response(lambda r: r.request.method == "DELETE") as answer:
        page.get_by_role("button", name="Cancel upload of movie.mkv").click()
    assert answer.value.status == 204
    expect(upload_row(page, "movie.mkv")).to_have_attribute("data-state", "cancelled")
    upload_path = answer.value.request.url
    assert [s.method for s in sent if s.method == "DELETE"] == ["DELETE"]
    gone = httpx.head(
        upload_path,
        headers={"Authorization": f"Bearer {token_of(page)}", "Tus-Resumable": "1.0.0"},
    )
    assert gone.status_code == 404
    assert stored_resumable_uploads(page) == []
    assert names_on_server(server, token_of(page)) == []


def test_signing_out_terminates_resumable_uploads_and_forgets_them(
    page: Page, tmp_path: Path
) -> None:
    sign_up(page, new_email())
    token = token_of(page)
    held: list[Route] = []
    page.route(
        "**/api/v1/uploads/*",
        lambda route: held.append(route) if at_offset(CHUNK)(route.request) else route.continue_(),
    )
    interrupted = tmp_path / "taxes.pdf"
    interrupted.write_bytes(os.urandom(CHUNK + MiB))
    with page.expect_request(at_offset(CHUNK)):
        page.locator("#file-input").set_input_files(interrupted)
    page.reload()  # taxes.pdf stays resumable
    expect(page.locator("#account-email")).to_be_visible()
    running = tmp_path / "medical.pdf"
    running.write_bytes(os.urandom(CHUNK + MiB))
    with page.expect_request(at_offset(CHUNK)):
        page.locator("#file-input").set_input_files(running)
    assert len(stored_resumable_uploads(page)) == 2

    with page.expect_response(lambda r: r.request.method == "DELETE") as answer:
        page.get_by_role("button", name="Sign out").click()
    assert answer.value.status == 204
    gone = httpx.head(
        answer.value.url, headers={"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
    )
    assert gone.status_code == 404
    # The interrupted one is not terminated (no token any more) but no longer named here.
    assert stored_resumable_uploads(page) == []


def test_the_drop_zone_works_from_the_keyboard_and_by_dropping(page: Page, tmp_path: Path) -> None:
    # Subscribing makes Playwright intercept file choosers, without waiting for Chromium
    # to confirm; done only at expect_file_chooser, a loaded machine could press Enter
    # first, and the chooser would open unseen (puppeteer/puppeteer#6040).
    page.on("filechooser", lambda _: None)
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
