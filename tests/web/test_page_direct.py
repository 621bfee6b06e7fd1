"""The page on S3: large files go straight to the bucket (direct uploads), in parts,
and a reload resumes them from the parts the bucket already holds.

A real `seau serve` on moto's S3 server over HTTP, in Chromium: the page PUTs the
parts to moto's origin, which its CSP names and the bucket's CORS allows (exposing
`ETag`, as a deployment must: docs/direct-uploads.md). seau's own request-body byte counter
(`seau_received_bytes_total` on /metrics) shows it carried none of the bytes.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Request, Route, expect

from tests.faults.harness import s3_client
from tests.support.moto import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, MotoServer, make_bucket
from tests.support.server import Server, seau_server
from tests.web.test_page import (
    WATCH_PROGRESS,
    browser_page,
    expect_uploaded,
    file_row,
    new_email,
    server_env,
    sign_up,
    token_of,
)

MiB = 1024 * 1024
THRESHOLD = 8 * MiB
PART = 5 * MiB  # seau's part size below 50 GB: S3's smallest
SIZE = 3 * PART + 2 * MiB + 11  # four parts: 5, 5, 5 and 2 MiB


def allow_browser_uploads(endpoint: str, bucket: str, origin: str) -> None:
    """The bucket's CORS configuration a deployment sets (docs/direct-uploads.md)."""
    s3_client(endpoint).put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": [origin],
                    "AllowedMethods": ["PUT", "POST"],
                    "AllowedHeaders": ["*"],
                    "ExposeHeaders": ["ETag"],
                    "MaxAgeSeconds": 600,
                }
            ]
        },
    )


@pytest.fixture(scope="module")
def bucket(s3_server: MotoServer) -> str:
    return make_bucket(s3_server.endpoint_url)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, s3_server: MotoServer, bucket: str
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("web-direct")
    env = server_env(
        tmp / "data",
        SEAU_STORAGE_URL=f"s3://{bucket}",
        AWS_ENDPOINT_URL=s3_server.endpoint_url,
        AWS_ACCESS_KEY_ID=ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY,
        AWS_REGION=REGION,
        SEAU_S3_PATH_STYLE="true",
        SEAU_DIRECT_MULTIPART_THRESHOLD_BYTES=str(THRESHOLD),
        SEAU_MAX_UPLOAD_BYTES=str(64 * MiB),
    )
    with seau_server(env, cwd=tmp) as running:
        allow_browser_uploads(s3_server.endpoint_url, bucket, running.url)
        yield running


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    with browser_page(browser, server.url) as opened:
        yield opened


def received_bytes(server: Server) -> float:
    """seau's `seau_received_bytes_total`: every request body byte it has read."""
    text = httpx.get(f"{server.url}/metrics").text
    for line in text.splitlines():
        if line.startswith("seau_received_bytes_total "):
            return float(line.split()[1])
    raise AssertionError("no seau_received_bytes_total in /metrics")


def part_puts(page: Page, endpoint: str) -> list[int]:
    """The part numbers the page PUTs to the bucket, in order."""
    sent: list[int] = []

    def record(request: Request) -> None:
        if request.method == "PUT" and request.url.startswith(endpoint):
            sent.append(int(parse_qs(urlsplit(request.url).query)["partNumber"][0]))

    page.on("request", record)
    return sent


def seau_upload_paths(page: Page, server: Server) -> list[str]:
    """Requests to seau that could carry a file's bytes."""
    paths: list[str] = []

    def record(request: Request) -> None:
        url = urlsplit(request.url)
        if request.url.startswith(server.url) and request.method in ("POST", "PUT", "PATCH"):
            paths.append(f"{request.method} {url.path}")

    page.on("request", record)
    return paths


def listed(server: Server, token: str, name: str) -> dict[str, object]:
    items = httpx.get(
        f"{server.url}/api/v1/files", headers={"Authorization": f"Bearer {token}"}
    ).json()["items"]
    (item,) = [i for i in items if i["name"] == name]
    return dict(item)


def stored_direct_uploads(page: Page) -> list[str]:
    keys: list[str] = page.evaluate(
        "Object.keys(localStorage).filter((key) => key.startsWith('seau.direct::'))"
    )
    return keys


def test_the_page_may_reach_the_bucket_and_knows_the_threshold(
    server: Server, s3_server: MotoServer
) -> None:
    options = httpx.get(f"{server.url}/api/v1/auth/options").json()
    assert options["direct_uploads"] == {"multipart_threshold_bytes": THRESHOLD}
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in httpx.get(f"{server.url}/").headers["content-security-policy"].split(";")
    )
    # Path style: the endpoint's origin is where every part goes, and no other.
    assert policy["connect-src"] == f"'self' {s3_server.endpoint_url}"


def test_a_large_file_goes_straight_to_the_bucket_in_parts(
    page: Page, server: Server, s3_server: MotoServer, tmp_path: Path
) -> None:
    sign_up(page, new_email())
    puts = part_puts(page, s3_server.endpoint_url)
    to_seau = seau_upload_paths(page, server)
    path = tmp_path / "survey.bin"
    path.write_bytes(os.urandom(SIZE))
    small = tmp_path / "notes.txt"
    small.write_bytes(b"under the threshold: through seau\n")
    before = received_bytes(server)
    page.evaluate(WATCH_PROGRESS)
    page.locator("#file-input").set_input_files([path, small])

    expect_uploaded(page, "survey.bin")
    expect_uploaded(page, "notes.txt")
    received = received_bytes(server) - before
    assert sorted(puts) == [1, 2, 3, 4]
    # seau read JSON bodies and the small file only, never the large file's bytes.
    assert received < 64 * 1024, received
    assert not [p for p in to_seau if p.startswith(("PATCH", "PUT")) or "/uploads" in p]
    assert [p for p in to_seau if p == "POST /api/v1/files"] == ["POST /api/v1/files"]
    seen = page.evaluate("window.progressSeen")["survey.bin"]
    assert seen[-1] == 100
    assert any(0 < value < 100 for value in seen)

    item = listed(server, token_of(page), "survey.bin")
    assert item["size"] == SIZE
    assert item["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    expect(file_row(page, "survey.bin")).to_contain_text("17 MiB")
    assert stored_direct_uploads(page) == []


def test_after_a_reload_the_same_file_sends_only_the_missing_parts(
    page: Page, server: Server, s3_server: MotoServer, bucket: str, tmp_path: Path
) -> None:
    sign_up(page, new_email())
    endpoint = s3_server.endpoint_url
    held: list[Route] = []

    def hold_late_parts(route: Route) -> None:
        number = parse_qs(urlsplit(route.request.url).query).get("partNumber", ["0"])[0]
        if route.request.method == "PUT" and int(number) > 2:
            held.append(route)  # never answered: the reload cuts it
        else:
            route.continue_()

    page.route(f"{endpoint}/**", hold_late_parts)
    path = tmp_path / "archive.bin"
    path.write_bytes(os.urandom(SIZE))
    page.locator("#file-input").set_input_files(path)

    # Parts 1 and 2 reach the bucket; 3 and 4 hang.
    s3 = s3_client(endpoint)
    deadline = time.monotonic() + 30
    while True:
        parts = [
            part["PartNumber"]
            for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
            for part in s3.list_parts(
                Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            ).get("Parts", [])
        ]
        if sorted(parts) == [1, 2] and len(held) == 2:
            break
        assert time.monotonic() < deadline, (parts, len(held))
        page.wait_for_timeout(200)  # Playwright runs the route handlers meanwhile
    assert len(stored_direct_uploads(page)) == 1

    # The reload cuts the held PUTs. Only then may the route go: unrouting stops
    # Chromium's interception, which lets held requests through.
    page.reload()
    expect(page.locator("#account-email")).to_be_visible()
    page.unroute(f"{endpoint}/**")
    puts = part_puts(page, endpoint)
    listings: list[str] = []
    page.on(
        "request",
        lambda r: (
            listings.append(r.url) if r.method == "GET" and r.url.endswith("/parts") else None
        ),
    )
    before = received_bytes(server)
    page.locator("#file-input").set_input_files(path)

    expect_uploaded(page, "archive.bin")
    assert sorted(puts) == [3, 4]
    assert len(listings) == 1
    assert received_bytes(server) - before < 64 * 1024
    item = listed(server, token_of(page), "archive.bin")
    assert item["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert stored_direct_uploads(page) == []
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
