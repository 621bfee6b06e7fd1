"""The page downloads through download links: the browser streams the file to disk,
and the page never holds its bytes (no Blob, no object URL), on either store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Request, expect

from tests.support.moto import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, make_bucket
from tests.support.server import Server, seau_server
from tests.web.test_page import browser_page, file_row, new_email, server_env, sign_up, token_of

MiB = 1024 * 1024
SIZE = 24 * MiB + 5

# Counts every way a page could hold a download's bytes: a Blob built by hand, a
# response read whole, an object URL handed to an anchor.
WATCH_MEMORY = """
window.held = [];
const record = (kind, size) => window.held.push([kind, size]);
const NativeBlob = window.Blob;
window.Blob = class extends NativeBlob {
  constructor(...args) { super(...args); record("Blob", this.size); }
};
for (const name of ["blob", "arrayBuffer", "bytes", "text"]) {
  const native = Response.prototype[name];
  if (native) Response.prototype[name] = async function (...args) {
    const value = await native.apply(this, args);
    record(`Response.${name}`, value.size ?? value.byteLength ?? value.length);
    return value;
  };
}
const nativeObjectUrl = URL.createObjectURL;
URL.createObjectURL = (object) => {
  record("createObjectURL", object.size);
  return nativeObjectUrl(object);
};
"""


@pytest.fixture(scope="module", params=["local", "s3"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(f"web-downloads-{request.param}")
    extra: dict[str, str] = {"SEAU_MAX_UPLOAD_BYTES": str(32 * MiB)}
    if request.param == "s3":
        moto = request.getfixturevalue("s3_server")
        extra |= {
            "SEAU_STORAGE_URL": f"s3://{make_bucket(moto.endpoint_url)}",
            "AWS_ENDPOINT_URL": moto.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_REGION": REGION,
            "SEAU_S3_PATH_STYLE": "true",
        }
    with seau_server(server_env(tmp / "data", **extra), cwd=tmp) as running:
        yield running


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    with browser_page(browser, server.url) as opened:
        yield opened


def test_the_page_downloads_through_a_link_without_holding_the_bytes(
    page: Page, server: Server, tmp_path: Path
) -> None:
    sign_up(page, new_email())
    data = os.urandom(SIZE)
    uploaded = httpx.post(
        f"{server.url}/api/v1/files",
        params={"name": "big.bin"},
        content=data,
        headers={"Authorization": f"Bearer {token_of(page)}"},
        timeout=60,
    )
    assert uploaded.status_code == 201, uploaded.text
    page.add_init_script(WATCH_MEMORY)
    page.reload()
    expect(file_row(page, "big.bin")).to_be_visible()
    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request))

    with page.expect_download() as info:
        page.get_by_role("button", name="Download big.bin").click()
    download = info.value
    assert download.suggested_filename == "big.bin"
    assert Path(download.path()).read_bytes() == data

    held = page.evaluate("window.held")
    assert not [entry for entry in held if entry[0] == "createObjectURL" or entry[1] >= MiB], held
    urls = [r.url for r in requests]
    assert any(url.endswith(f"/api/v1/files/{uploaded.json()['id']}/link") for url in urls)
    assert not any("/content" in url for url in urls), urls
    fetched = download.url
    if "X-Amz-Signature" in fetched:
        assert not fetched.startswith(server.url)  # from the bucket, not through seau
    else:
        assert fetched.startswith(f"{server.url}/api/v1/links/")
    expect(page.get_by_role("button", name="Download big.bin")).to_be_enabled()
