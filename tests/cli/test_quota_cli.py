"""`seau quota set|show` (server side) and `seau usage` (client), as people run them,
against a real `seau serve`; the commands run in-process (typer's runner), the upload
that meets the quota as its own process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from seau.cli.main import app as seau_app
from tests.cli.test_client import Cli, sign_up, upload_one, write
from tests.support.server import Server, seau_server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """The server and its data directory (where the server-side commands work)."""
    tmp = tmp_path_factory.mktemp("quota-server")
    env = {"SEAU_DATA_DIR": str(tmp / "data"), "SEAU_SIGNUP_PER_ADDRESS_PER_HOUR": "0"}
    with seau_server(env, cwd=tmp) as running:
        yield running, tmp / "data"


def test_an_admin_sets_a_quota_and_the_user_sees_it_and_meets_it(
    served: tuple[Server, Path], tmp_path: Path
) -> None:
    server, data_dir = served
    home = tmp_path / "home"
    home.mkdir()
    user = Cli(home=home, server=server, email=sign_up(server))
    user.login()
    subject = str(json.loads(user("whoami", "--json").stdout)["subject"])
    runner = CliRunner()

    def admin(*args: str) -> Result:
        return runner.invoke(seau_app, ["quota", *args], env={"SEAU_DATA_DIR": str(data_dir)})

    def usage(*args: str) -> Result:
        env = {"SEAU_SERVER": server.url, "SEAU_TOKEN": user.token(), **user.env()}
        return runner.invoke(seau_app, ["usage", *args], env=env)

    made = admin("set", "--subject", subject, "--bytes", "1KiB", "--files", "5", "--json")
    assert made.exit_code == 0, made.output
    shown = json.loads(made.stdout)
    assert (shown["quota_bytes"], shown["own_quota_bytes"], shown["quota_files"]) == (1024, 1024, 5)

    upload_one(user, write(tmp_path / "a.txt", b"a" * 1000))
    over = user("upload", write(tmp_path / "b.txt", b"b" * 25))
    assert over.returncode != 0
    assert "quota" in over.stderr.lower(), over.stderr

    found = usage("--json")
    assert found.exit_code == 0, found.output
    assert json.loads(found.stdout) == {
        "used_bytes": 1000,
        "used_files": 1,
        "reserved_bytes": 0,
        "quota_bytes": 1024,
        "quota_files": 5,
    }
    table = usage().stdout
    assert "1,000" in table
    assert "1,024" in table

    # Back to the server's default (unlimited); the file quota stays as it was.
    reset = admin("set", "--subject", subject, "--bytes", "default")
    assert reset.exit_code == 0, reset.output
    assert "unlimited (server default)" in reset.stdout
    listed = admin("show", "--subject", subject, "--json")
    assert json.loads(listed.stdout)["own_quota_bytes"] is None
    assert json.loads(listed.stdout)["own_quota_files"] == 5
    assert "owner" in admin("show", "--subject", subject).stdout

    nothing = admin("set", "--subject", subject)
    assert nothing.exit_code == 2
    assert "give --bytes, --files or both" in nothing.output
    assert admin("set", "--subject", subject, "--bytes", "lots").exit_code == 2
    assert admin("set", "--subject", subject, "--files", "many").exit_code == 2
    bad = admin("show", "--subject", "bad\x01subject")
    assert bad.exit_code == 1
