"""Take the README's screenshot of the web page: `python -m tests.web.screenshot [PATH]`.

A real `seau serve` on a temporary directory, a few files uploaded through the API,
then two uploads through the page, one of them slowed down by Chromium's network
throttling so that its progress bar is caught half-way.
"""

from __future__ import annotations

import mimetypes
import os
import sys
import tempfile
from pathlib import Path

import httpx
from playwright.sync_api import expect, sync_playwright

from tests.support.server import seau_server
from tests.web.browser import launch

EMAIL = "ada@example.com"
PASSWORD = "correct horse battery"
KiB = 1024
MiB = 1024 * KiB

EXISTING = [
    ("meeting-notes.md", 6 * KiB),
    ("budget-2025.xlsx", 48 * KiB),
    ("team-photo.jpg", 3 * MiB + 170 * KiB),
    ("Quarterly report Q3.pdf", 2 * MiB + 420 * KiB),
]
THROUGH_PAGE = [("slides.pdf", 900 * KiB), ("holiday-video.mp4", 48 * MiB)]
UPLOAD_BYTES_PER_SECOND = 8 * MiB


def main(output: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with seau_server({"SEAU_DATA_DIR": str(tmp / "data")}, cwd=tmp) as server:
            with httpx.Client(base_url=server.url, timeout=60) as api:
                api.post("/api/v1/users", json={"email": EMAIL, "password": PASSWORD})
                token = api.post(
                    "/api/v1/auth/token", data={"username": EMAIL, "password": PASSWORD}
                )
                auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
                for name, size in EXISTING:
                    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
                    api.post(
                        "/api/v1/files",
                        params={"name": name},
                        content=os.urandom(size),
                        headers={**auth, "Content-Type": kind},
                    ).raise_for_status()
            for name, size in THROUGH_PAGE:
                (tmp / name).write_bytes(os.urandom(size))

            with sync_playwright() as playwright:
                browser = launch(playwright)
                page = browser.new_page(
                    viewport={"width": 1200, "height": 980}, base_url=server.url
                )
                page.goto("/")
                form = page.get_by_role("form", name="Sign in")
                form.get_by_label("Email").fill(EMAIL)
                form.get_by_label("Password").fill(PASSWORD)
                form.get_by_role("button", name="Sign in").click()
                expect(page.locator("#file-rows > tr")).to_have_count(len(EXISTING))

                cdp = page.context.new_cdp_session(page)
                cdp.send(
                    "Network.emulateNetworkConditions",
                    {
                        "offline": False,
                        "latency": 0,
                        "downloadThroughput": -1,
                        "uploadThroughput": UPLOAD_BYTES_PER_SECOND,
                    },
                )
                page.locator("#file-input").set_input_files([tmp / n for n, _ in THROUGH_PAGE])
                expect(page.get_by_role("progressbar", name="slides.pdf")).to_have_attribute(
                    "value", "100"
                )
                expect(page.locator("#file-rows > tr")).to_have_count(len(EXISTING) + 1)
                video = page.get_by_role("progressbar", name="holiday-video.mp4")
                page.wait_for_function(
                    "bar => Number(bar.value) >= 55",
                    arg=video.element_handle(),
                    timeout=60_000,
                )
                page.evaluate("document.activeElement?.blur()")
                page.screenshot(path=str(output), full_page=True)
                browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshot.png"))
