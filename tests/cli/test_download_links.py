"""`seau download` against a server that redirects downloads to links
(SEAU_DOWNLOAD_REDIRECT): it follows the 307 and resumes with Range through the link,
on S3 straight from the bucket."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.test_client import Cli, Relay, access_log, port_of, sign_up, upload_one, write
from tests.support.moto import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, make_bucket
from tests.support.server import Server, seau_server

MiB = 1024 * 1024


@dataclass
class Redirecting:
    server: Server
    bucket: Relay | None
    """On S3, the relay every S3 request (seau's and the links') goes through."""


@pytest.fixture(scope="module", params=["local", "s3"])
def redirecting(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Redirecting]:
    tmp = tmp_path_factory.mktemp(f"cli-links-{request.param}")
    env = {
        "SEAU_DATA_DIR": str(tmp / "data"),
        "SEAU_SIGNUP_PER_ADDRESS_PER_HOUR": "0",
        "SEAU_DOWNLOAD_REDIRECT": "true",
    }
    if request.param == "local":
        with seau_server(env, cwd=tmp) as running:
            yield Redirecting(server=running, bucket=None)
        return
    moto = request.getfixturevalue("s3_server")
    with Relay(moto.port) as bucket:
        env |= {
            "SEAU_STORAGE_URL": f"s3://{make_bucket(moto.endpoint_url)}",
            "AWS_ENDPOINT_URL": bucket.url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_REGION": REGION,
            "SEAU_S3_PATH_STYLE": "true",
        }
        with seau_server(env, cwd=tmp) as running:
            yield Redirecting(server=running, bucket=bucket)


@pytest.fixture
def cli(redirecting: Redirecting, tmp_path: Path) -> Cli:
    home = tmp_path / "home"
    home.mkdir()
    user = Cli(home=home, server=redirecting.server, email=sign_up(redirecting.server))
    user.login()
    return user


def test_download_follows_the_redirect_and_resumes_with_range(
    cli: Cli, redirecting: Redirecting
) -> None:
    data = os.urandom(4 * MiB + 3)
    file = upload_one(cli, write(cli.home / "src" / "big.bin", data))
    whole = cli("download", str(file["id"]), "-o", "whole.bin")
    assert whole.returncode == 0, whole.stderr
    assert (cli.home / "whole.bin").read_bytes() == data

    # What a cut download leaves; the rest comes with Range through the link.
    kept = 3 * MiB + 17
    write(cli.home / "big.bin.part", data[:kept])
    with Relay(port_of(cli.server)) as seau:
        bucket_before = redirecting.bucket.bytes_answered if redirecting.bucket else 0
        resumed = cli(
            "download", str(file["id"]), env={"SEAU_SERVER": seau.url, "SEAU_TOKEN": cli.token()}
        )
        assert resumed.returncode == 0, resumed.stderr
        assert "resumed after" in resumed.stdout
        if redirecting.bucket is not None:
            # The bytes came from the bucket, and only the missing ones.
            assert seau.bytes_answered < 64 * 1024
            sent = redirecting.bucket.bytes_answered - bucket_before
            assert len(data) - kept <= sent < len(data) - kept + 64 * 1024
        else:
            assert len(data) - kept <= seau.bytes_answered < len(data) - kept + 64 * 1024
    assert (cli.home / "big.bin").read_bytes() == data
    assert not (cli.home / "big.bin.part").exists()
    answers = {
        (str(entry["path"]), entry["status"])
        for entry in access_log(cli.server)
        if entry["method"] == "GET"
        and (
            str(entry["path"]).endswith("/content")
            or str(entry["path"]).startswith("/api/v1/links/")
        )
    }
    assert (f"/api/v1/files/{file['id']}/content", 307) in answers
    assert not any(status in (200, 206) for path, status in answers if path.endswith("/content"))
    if redirecting.bucket is None:
        assert any(path.startswith("/api/v1/links/") and status == 206 for path, status in answers)
