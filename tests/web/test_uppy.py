"""Uppy (@uppy/core, @uppy/aws-s3: pinned in tests/web/uppy/package.json, unmodified)
uploads through seau's direct-upload API, in Chromium, to moto's S3 server.

The client is the js block of docs/direct-uploads.md, taken from the file as it is
and bundled with esbuild (pinned beside Uppy). It runs on a page of another origin
(a static server here, named in seau's SEAU_CORS_ORIGINS), as an application using
seau would. seau's request-body byte counter (`seau_received_bytes_total`) and its
resident memory (sampled from /proc) show it carried none of the bytes.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.support.ceph import CephCluster
from tests.support.databases import unavailable
from tests.support.moto import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, MotoServer, make_bucket
from tests.support.server import Server, free_port, seau_server
from tests.web.test_page import PASSWORD, browser_page, new_email, server_env
from tests.web.test_page_direct import allow_browser_uploads, received_bytes

MiB = 1024 * 1024
ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "direct-uploads.md"
UPPY = Path(__file__).parent / "uppy"
MARKER = "<!-- tests/web/test_uppy.py runs the next js block -->"

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>Uppy to seau</title>
<input type="file" id="files" multiple>
<script src="/bundle.js"></script>
<script src="/run.js"></script>
"""

# Picks files from the input into Uppy and records what `uppy.upload()` answers.
RUN = """
window.start = (seau, token) => {
  const uppy = window.seauUppy({ seau, getToken: async () => token });
  window.uppy = uppy;
  window.progress = [];
  uppy.on("progress", (percent) => window.progress.push(percent));
  document.getElementById("files").addEventListener("change", async (event) => {
    window.result = null;
    window.progress = [];
    for (const file of event.target.files) {
      uppy.addFile({ name: file.name, type: file.type, data: file });
    }
    try {
      const { successful, failed } = await uppy.upload();
      window.result = {
        successful: successful.map((f) => f.meta.seauFile),
        failed: failed.map((f) => String(f.error)),
      };
    } catch (error) {
      window.result = { successful: [], failed: [String(error)] };
    }
    uppy.clear();
  });
};
"""


def doc_client() -> str:
    """The js block of docs/direct-uploads.md that follows the marker, as it is."""
    text = DOC.read_text()
    after = text[text.index(MARKER) + len(MARKER) :]
    found = re.match(r"\s*```js\n(.*?)\n```", after, re.DOTALL)
    assert found is not None, "no js block after the marker"
    return found.group(1) + "\n"


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The application's static files: Uppy and the documented client, bundled."""
    esbuild = UPPY / "node_modules" / ".bin" / "esbuild"
    if not esbuild.exists():
        unavailable(f"{esbuild} is missing: npm ci --prefix {UPPY}")
    out = tmp_path_factory.mktemp("uppy-app")
    (out / "seau-uppy.js").write_text(doc_client())
    (out / "entry.js").write_text(
        'import { seauUppy } from "./seau-uppy.js";\nwindow.seauUppy = seauUppy;\n'
    )
    subprocess.run(
        [str(esbuild), "entry.js", "--bundle", "--format=iife", "--outfile=bundle.js"],
        cwd=out,
        # Bare imports (@uppy/...) resolve from the pinned install.
        env={**os.environ, "NODE_PATH": str(UPPY / "node_modules")},
        check=True,
        capture_output=True,
    )
    (out / "index.html").write_text(PAGE)
    (out / "run.js").write_text(RUN)
    return out


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def app_url(app_dir: Path) -> Iterator[str]:
    """Another origin than seau's and the bucket's, serving the application's page."""
    port = free_port()
    handler = functools.partial(_Quiet, directory=str(app_dir))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def seau_with_bucket(
    endpoint: str, tmp: Path, app_url: str
) -> contextlib.AbstractContextManager[Server]:
    """seau on a bucket of its own at ``endpoint``, whose CORS lets the application in."""
    bucket = make_bucket(endpoint)
    allow_browser_uploads(endpoint, bucket, app_url)
    env = server_env(
        tmp / "data",
        SEAU_STORAGE_URL=f"s3://{bucket}",
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID=ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY,
        AWS_REGION=REGION,
        SEAU_S3_PATH_STYLE="true",
        SEAU_MAX_UPLOAD_BYTES=str(1024 * MiB),
        SEAU_CORS_ORIGINS=json.dumps([app_url]),
    )
    return seau_server(env, cwd=tmp)


@pytest.fixture(scope="module", params=["moto", pytest.param("ceph", marks=pytest.mark.ceph)])
def endpoint(request: pytest.FixtureRequest) -> str:
    """The S3 server: moto's, or Ceph's RADOS Gateway (marked ``ceph``: it fails in CI
    and skips elsewhere without Ceph's packages). seau and the test do the same on both."""
    s3: MotoServer | CephCluster = request.getfixturevalue(
        "s3_server" if request.param == "moto" else "ceph_server"
    )
    return s3.endpoint_url


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, endpoint: str, app_url: str
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("uppy-seau")
    with seau_with_bucket(endpoint, tmp, app_url) as running:
        yield running


def sign_up_token(server: Server) -> str:
    email = new_email()
    with httpx.Client(base_url=server.url) as api:
        assert api.post("/api/v1/users", json={"email": email, "password": PASSWORD}).is_success
        answer = api.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
        access: str = answer.json()["access_token"]
        return access


@contextlib.contextmanager
def uppy_page(browser: Browser, app_url: str, server: Server, token: str) -> Iterator[Page]:
    with browser_page(browser, app_url) as opened:
        opened.goto("/")
        opened.evaluate("([seau, token]) => window.start(seau, token)", [server.url, token])
        yield opened


def upload(page: Page, path: Path, *, timeout_ms: float = 60_000) -> dict[str, object]:
    page.locator("#files").set_input_files(path)
    page.wait_for_function("window.result", timeout=timeout_ms)
    result = page.evaluate("window.result")
    assert result["failed"] == [], result
    (made,) = result["successful"]
    return dict(made)


def listed_sha256(server: Server, token: str, file_id: object) -> str:
    answer = httpx.get(
        f"{server.url}/api/v1/files/{file_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200, answer.text
    value: str = answer.json()["sha256"]
    return value


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class RssSampler:
    """seau's resident memory every 50 ms while a block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(rss_bytes(self.pid))
            time.sleep(0.05)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def bucket_requests(page: Page, endpoint: str) -> list[str]:
    """The requests the page sends to the bucket: method and query (the part number)."""
    sent: list[str] = []
    page.on(
        "request",
        lambda r: (
            sent.append(f"{r.method} {urlsplit(r.url).query}")
            if r.url.startswith(endpoint) and r.method != "OPTIONS"
            else None
        ),
    )
    return sent


def test_a_small_file_goes_in_one_part_and_is_completed(
    browser: Browser, app_url: str, server: Server, endpoint: str, tmp_path: Path
) -> None:
    token = sign_up_token(server)
    with uppy_page(browser, app_url, server, token) as page:
        path = tmp_path / "notes.txt"
        path.write_bytes(b"the minutes of the meeting\n" * 1000)
        sent = bucket_requests(page, endpoint)
        before = received_bytes(server)
        made = upload(page, path)
        # One PUT of part 1 to the bucket (no form POST: docs/direct-uploads.md says why).
        assert [r.split(" ")[0] for r in sent] == ["PUT"], sent
        assert "partNumber=1" in sent[0].split("&"), sent
        assert received_bytes(server) - before < 16 * 1024
        assert made["name"] == "notes.txt"
        assert made["size"] == path.stat().st_size
        assert made["content_type"] == "text/plain"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert listed_sha256(server, token, made["id"]) == digest


def test_uppy_sends_256_mib_to_the_bucket_and_seau_carries_none_of_it(
    browser: Browser, app_url: str, server: Server, endpoint: str, tmp_path: Path
) -> None:
    """About 10 s for the 256 MiB on moto, 6 s on Ceph (two cores, Chromium, the S3
    server and seau on one machine)."""
    token = sign_up_token(server)
    with uppy_page(browser, app_url, server, token) as page:
        sends_256_mib(page, server, token, endpoint, tmp_path)


def sends_256_mib(page: Page, server: Server, token: str, endpoint: str, tmp_path: Path) -> None:
    # One upload first: seau's S3 client and code paths are loaded, so what follows
    # measures the upload alone.
    warm = tmp_path / "warm.bin"
    warm.write_bytes(os.urandom(6 * MiB))
    upload(page, warm)

    path = tmp_path / "video.bin"
    hashed = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(256):
            chunk = os.urandom(MiB)
            hashed.update(chunk)
            out.write(chunk)
    digest = hashed.hexdigest()
    puts: list[str] = []
    page.on(
        "request",
        lambda r: puts.append(r.url) if r.method == "PUT" and r.url.startswith(endpoint) else None,
    )

    before = received_bytes(server)
    baseline = rss_bytes(server.pid)
    started = time.monotonic()
    with RssSampler(server.pid) as rss:
        made = upload(page, path, timeout_ms=600_000)
    elapsed = time.monotonic() - started
    received = received_bytes(server) - before
    growth = max(rss.samples) - baseline
    print(
        f"\nUppy 256 MiB: {elapsed:.1f} s, {len(puts)} part PUTs, seau received "
        f"{received / 1024:.1f} KiB, RSS {baseline / MiB:.0f} MiB -> peak "
        f"{max(rss.samples) / MiB:.0f} MiB over {len(rss.samples)} samples"
    )

    assert made["size"] == 256 * MiB
    # Uppy reported the upload as it went (its total progress, in percent).
    progress: list[float] = page.evaluate("window.progress")
    assert any(0 < value < 100 for value in progress), progress
    assert max(progress) == 100, progress
    assert listed_sha256(server, token, made["id"]) == digest
    # Uppy's default chunk: 5 MiB parts, each PUT straight to the bucket.
    assert len(puts) == 52
    assert received < 1 * MiB, received
    # Flat: the read-back that verifies the SHA-256 streams; holding the file would
    # have added 256 MiB.
    assert growth < 32 * MiB, (baseline, max(rss.samples))
    assert len(rss.samples) > 10
