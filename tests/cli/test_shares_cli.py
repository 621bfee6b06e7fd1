"""`seau share`, `seau shares`, `seau unshare` against a real `seau serve`, run as the
user runs them; the link downloaded by curl, the password by `curl -u :secret`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_client import Cli, one_error_line, sign_up, upload_one, write
from tests.support.server import Server, seau_server

CURL = shutil.which("curl")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("shares-server")
    env = {"SEAU_DATA_DIR": str(tmp / "data"), "SEAU_SIGNUP_PER_ADDRESS_PER_HOUR": "0"}
    with seau_server(env, cwd=tmp) as running:
        yield running


@pytest.fixture
def cli(server: Server, tmp_path: Path) -> Cli:
    home = tmp_path / "home"
    home.mkdir()
    user = Cli(home=home, server=server, email=sign_up(server))
    user.login()
    return user


def curl(*args: str, output: Path) -> tuple[int, str]:
    """curl's HTTP status and the response headers; the body goes to ``output``."""
    assert CURL is not None, "the tests need curl"
    result = subprocess.run(
        [CURL, "--silent", "--show-error", "--dump-header", "-", "--output", str(output), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    status = int(result.stdout.split()[1])
    return status, result.stdout.lower()


def test_share_with_password_download_with_curl_list_and_unshare(cli: Cli, tmp_path: Path) -> None:
    data = b"for my colleagues\n" * 100
    uploaded = upload_one(cli, write(tmp_path / "notes.txt", data))
    made = cli(
        "share",
        "notes.txt",
        "--expires-in",
        "2d",
        "--password",
        "--max-downloads",
        "2",
        env={"SEAU_SHARE_PASSWORD": "colleagues only"},
    )
    assert made.returncode == 0, made.stderr
    url = made.stdout.strip()
    assert re.fullmatch(rf"{re.escape(cli.server.url)}/s/[A-Za-z0-9_-]{{43}}", url), url

    body = tmp_path / "got"
    status, headers = curl(f"{url}/content", output=body)
    assert status == 401
    assert "www-authenticate: basic" in headers
    status, headers = curl("-u", ":colleagues only", f"{url}/content", output=body)
    assert status == 200
    assert body.read_bytes() == data
    assert "content-disposition: attachment;" in headers
    # A resumed transfer (`curl -C`) is not a second download.
    body.write_bytes(data[:100])
    resumed = tmp_path / "resumed"
    status, _ = curl("-u", "anyone:colleagues only", "-r", "100-", f"{url}/content", output=resumed)
    assert status == 206
    assert body.read_bytes()[:100] + resumed.read_bytes() == data

    listed = cli("shares", "notes.txt", "--json")
    assert listed.returncode == 0, listed.stderr
    [item] = json.loads(listed.stdout)
    assert item["file_id"] == uploaded["id"]
    assert item["downloads"] == 1
    assert item["max_downloads"] == 2
    assert item["has_password"] is True
    table = cli("shares")
    assert table.returncode == 0, table.stderr
    assert item["id"] in table.stdout
    assert "1/2" in table.stdout

    revoked = cli("unshare", item["id"])
    assert revoked.returncode == 0, revoked.stderr
    status, _ = curl("-u", ":colleagues only", f"{url}/content", output=body)
    assert status == 404
    again = cli("unshare", item["id"])
    assert again.returncode == 1
    assert "share" in one_error_line(again).lower()
    assert json.loads(cli("shares", "--json").stdout) == []


def test_share_of_a_missing_file_is_one_error_line(cli: Cli) -> None:
    result = cli("share", "no such file.txt")
    assert result.returncode == 1
    assert "no such file.txt" in one_error_line(result)
