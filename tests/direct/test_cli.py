"""`seau upload --direct` against a real `seau serve`, on the local store and on S3
(moto): small files in one POST, a large one in parts, and a refusal that leaves
nothing behind."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.cli.test_client import Cli, sign_up
from tests.support.moto import make_bucket
from tests.support.server import Server, seau_server

MiB = 1024 * 1024


@pytest.fixture(scope="module", params=["local", "s3"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str]]:
    tmp = tmp_path_factory.mktemp(f"direct-cli-{request.param}")
    env = {
        "SEAU_DATA_DIR": str(tmp / "data"),
        "SEAU_SIGNUP_PER_ADDRESS_PER_HOUR": "0",
        "SEAU_DIRECT_MULTIPART_THRESHOLD_BYTES": str(6 * MiB),
    }
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_server").endpoint_url
        env |= {
            "SEAU_STORAGE_URL": f"s3://{make_bucket(endpoint)}",
            "SEAU_S3_PATH_STYLE": "true",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        }
    with seau_server(env, cwd=tmp) as running:
        yield running, request.param


@pytest.fixture
def cli(server: tuple[Server, str], tmp_path: Path) -> Cli:
    home = tmp_path / "home"
    home.mkdir()
    made = Cli(home=home, server=server[0], email=sign_up(server[0]))
    made.login()
    return made


def test_upload_direct_sends_small_and_large_files(cli: Cli, tmp_path: Path) -> None:
    small = tmp_path / "notes.txt"
    small.write_bytes(b"plain words and not much else\n" * 100)
    large = tmp_path / "big.bin"
    large.write_bytes(os.urandom(11 * MiB + 17))
    result = cli("upload", "--direct", "--json", small, large, timeout=120)
    assert result.returncode == 0, result.stderr
    uploaded = {f["name"]: f for f in json.loads(result.stdout)["uploaded"]}
    for path in (small, large):
        data = path.read_bytes()
        assert uploaded[path.name]["size"] == len(data)
        assert uploaded[path.name]["sha256"] == hashlib.sha256(data).hexdigest()
    assert uploaded["notes.txt"]["content_type"] == "text/plain"
    out = tmp_path / "back.bin"
    fetched = cli("download", uploaded["big.bin"]["id"], "-o", out, timeout=120)
    assert fetched.returncode == 0, fetched.stderr
    assert out.read_bytes() == large.read_bytes()


def test_upload_direct_of_a_lie_leaves_nothing(cli: Cli, tmp_path: Path) -> None:
    # An executable named as an image: the name's type is what the client declares.
    fake = tmp_path / "cat.png"
    fake.write_bytes(Path("/bin/true").read_bytes())
    result = cli("upload", "--direct", fake, timeout=120)
    assert result.returncode == 1
    assert "verification_failed" in result.stderr
    assert cli.ls() == []
