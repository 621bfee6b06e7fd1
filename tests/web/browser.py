"""Debian's Chromium driven by Playwright, for the web page's tests and screenshot.

Playwright's own browser download does not work here, so it drives the system
Chromium (`apt-get install chromium`). As root, Chromium needs `--no-sandbox`; the
other flags stop background services that would try to reach the internet.
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, Playwright

CHROMIUM = Path("/usr/bin/chromium")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
