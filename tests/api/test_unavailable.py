"""A store that does not answer gives a prompt 503 problem, never a hang or a 500."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from seau.app import create_app
from seau.settings import Settings
from tests.api.helpers import assert_problem
from tests.conftest import TEST_SECRET, sign_up


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def dead_store_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        data_dir=tmp_path,
        storage_url="s3://nowhere",
        secret_key=TEST_SECRET,
        aws_endpoint_url=f"http://127.0.0.1:{closed_port()}",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        aws_region="us-east-1",
        s3_path_style=True,
        storage_timeout_seconds=2,
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://seau.test"
        ) as client,
    ):
        yield client


async def test_upload_to_an_unreachable_store_is_a_prompt_503(
    dead_store_client: httpx.AsyncClient,
) -> None:
    auth = await sign_up(dead_store_client)
    started = time.monotonic()
    response = await dead_store_client.post(
        "/api/v1/files", params={"name": "x.bin"}, content=b"x" * 100_000, headers=auth
    )
    assert time.monotonic() - started < 20
    assert_problem(response, 503, "storage_unavailable")
    assert int(response.headers["retry-after"]) >= 1
    listed = await dead_store_client.get("/api/v1/files", headers=auth)
    assert listed.json()["items"] == []


async def test_readiness_reports_the_unreachable_store(
    dead_store_client: httpx.AsyncClient,
) -> None:
    response = await dead_store_client.get("/readyz")
    assert_problem(response, 503, "storage_unavailable")
    assert (await dead_store_client.get("/healthz")).status_code == 200


async def test_readiness_reports_a_missing_bucket(s3_server: object, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        storage_url="s3://no-such-bucket-here",
        secret_key=TEST_SECRET,
        aws_endpoint_url=s3_server.endpoint_url,  # type: ignore[attr-defined]
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        aws_region="us-east-1",
        s3_path_style=True,
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://seau.test"
        ) as client,
    ):
        assert_problem(await client.get("/readyz"), 503, "storage_unavailable")
