"""Issue 17, finding 11, in a browser: `/docs` and `/redoc` render the API's operations
from the package's own assets, with no script or style refused by their CSP and no
request leaving the server's origin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.support.databases import unavailable
from tests.support.server import Server, seau_server
from tests.web.browser import CHROMIUM, launch

REPORT_VIOLATIONS = """document.addEventListener("securitypolicyviolation", (e) => {
  (window.violations ??= []).push([e.effectiveDirective, e.blockedURI]);
});"""
# ReDoc's side menu shows a "by Redocly" logo from their CDN: the CSP refuses it, which
# is the point (no visitor's address or page sent to a third party), and nothing breaks.
REFUSED_ON_PURPOSE = {("img-src", "https://cdn.redoc.ly/redoc/logo-mini.svg")}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing: apt-get install chromium")
    with sync_playwright() as driver:
        browser = launch(driver)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp: Path = tmp_path_factory.mktemp("api-docs")
    env = {"SEAU_DATA_DIR": str(tmp / "data"), "SEAU_LOG_LEVEL": "warning"}
    with seau_server(env, cwd=tmp) as server:
        yield server


@pytest.mark.parametrize(
    ("path", "operation"),
    [
        # Swagger UI: one block per operation.
        ("/docs", ".opblock"),
        # ReDoc: one section per operation.
        ("/redoc", "[id^='tag/files/operation/']"),
    ],
    ids=["swagger-ui", "redoc"],
)
def test_docs_pages_render_with_nothing_refused_by_their_csp(
    browser: Browser, server: Server, path: str, operation: str
) -> None:
    page = browser.new_page()
    outside: list[str] = []
    page.on(
        "request",
        lambda request: (
            outside.append(request.url)
            if not request.url.startswith((server.url, "blob:", "data:"))
            else None
        ),
    )
    page.add_init_script(REPORT_VIOLATIONS)
    try:
        page.goto(server.url + path)
        page.locator(operation).first.wait_for(timeout=20_000)
        assert page.locator(operation).count() >= 5
        violations = {tuple(v) for v in page.evaluate("window.violations ?? []")}
    finally:
        page.close()
    assert violations <= REFUSED_ON_PURPOSE, violations
    # Attempted, never made: only the refused logo may have been asked for.
    assert set(outside) <= {uri for _, uri in REFUSED_ON_PURPOSE}, outside
