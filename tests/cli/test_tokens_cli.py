"""`seau token`, `seau whoami` and `seau apikey` against a real `seau serve`, run as
the user runs them: subprocesses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from seau.cli.client_tokens import parse_duration, parse_scope_list
from seau.cli.main import app as seau_app
from tests.cli.test_client import Cli, one_error_line, sign_up, write
from tests.support.server import SEAU, Server, seau_server

NEW_COMMANDS = (
    "token create",
    "token list",
    "token revoke",
    "whoami",
    "apikey create",
    "apikey list",
    "apikey revoke",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("tokens-server")
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


def admin(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    """`seau apikey ...` on the server's machine: same data directory, straight to the database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEAU_", "AWS_"))}
    return subprocess.run(
        [SEAU, "apikey", *args],
        cwd=server.log.parent,
        env=env | {"SEAU_DATA_DIR": str(server.log.parent / "data")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def created_token(result: subprocess.CompletedProcess[str], prefix: str) -> str:
    assert result.returncode == 0, result.stderr
    found = re.findall(rf"\b{prefix}[A-Za-z0-9_-]{{43}}\b", result.stdout)
    assert found, result.stdout
    assert len(set(found)) == 1
    return str(found[0])


def listed(cli: Cli, **env: str) -> list[dict[str, object]]:
    result = cli("token", "list", "--json", env=env)
    assert result.returncode == 0, result.stderr
    tokens: list[dict[str, object]] = json.loads(result.stdout)
    return tokens


# -- personal access tokens ----------------------------------------------------


def test_token_create_shows_it_once_and_how_to_use_it(cli: Cli) -> None:
    made = cli("token", "create", "--name", "backups", "--scopes", "files:read,files:write",
               "--expires-in", "30d")  # fmt: skip
    token = created_token(made, "seau_pat_")
    assert f"SEAU_TOKEN={token}" in made.stdout
    assert "shown only now" in made.stdout
    assert "files:read, files:write" in made.stdout
    assert "expires " in made.stdout

    tokens = listed(cli)
    assert [t["name"] for t in tokens] == ["backups"]
    (entry,) = tokens
    assert entry["scopes"] == ["files:read", "files:write"]
    assert entry["last_used_at"] is None
    assert "token" not in entry
    # 30 days, as the server counts them.
    created = entry["created_at"]
    expires = entry["expires_at"]
    assert isinstance(created, str)
    assert isinstance(expires, str)
    lifetime = datetime.fromisoformat(expires) - datetime.fromisoformat(created)
    assert abs(lifetime - timedelta(days=30)) < timedelta(seconds=5)

    table = cli("token", "list")
    assert table.returncode == 0, table.stderr
    assert token not in table.stdout
    for header in ("id", "name", "scopes", "created", "last used", "expires"):
        assert header in table.stdout
    assert str(entry["id"]) in table.stdout
    assert "backups" in table.stdout
    assert "never" in table.stdout  # not used yet


def test_a_personal_token_in_seau_token_drives_the_client_commands(cli: Cli) -> None:
    token = created_token(
        cli("token", "create", "--name", "ci", "--scopes", "files:read,files:write"), "seau_pat_"
    )
    as_token = {"SEAU_TOKEN": token}
    write(cli.home / "report.txt", b"quarterly")
    uploaded = cli("upload", "report.txt", "--json", env=as_token)
    assert uploaded.returncode == 0, uploaded.stderr
    assert [f["name"] for f in cli.ls()] == ["report.txt"]  # the sign-in sees it too

    who = cli("whoami", "--json", env=as_token)
    assert who.returncode == 0, who.stderr
    me = json.loads(who.stdout)
    assert me["via"] == "personal"
    assert me["scopes"] == ["files:read", "files:write"]
    assert me["email"] == cli.email
    plain = cli("whoami", env=as_token)
    assert "personal access token" in plain.stdout
    assert cli.email in plain.stdout
    # Used: the list says when.
    assert listed(cli)[0]["last_used_at"] is not None

    revoked = cli("token", "revoke", "ci")
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.strip().startswith("revoked token ci (")
    refused = cli("ls", env=as_token)
    assert refused.returncode == 1
    assert "(token_invalid)" in one_error_line(refused)
    assert listed(cli) == []


def test_a_read_only_token_is_one_clear_error_line_when_it_writes(cli: Cli) -> None:
    write(cli.home / "kept.txt", b"kept")
    assert cli("upload", "kept.txt").returncode == 0
    token = created_token(
        cli("token", "create", "--name", "reader", "--scopes", "files:read"), "seau_pat_"
    )
    reader = {"SEAU_TOKEN": token}
    assert [f["name"] for f in cli.ls()] == ["kept.txt"]
    download = cli("download", "kept.txt", "-o", "copy.txt", env=reader)
    assert download.returncode == 0, download.stderr
    assert (cli.home / "copy.txt").read_bytes() == b"kept"

    scope = (
        "The token does not allow this: this needs a token with the 'files:write' scope "
        "(insufficient_scope)"
    )
    for args, prefix in ((("rm", "kept.txt"), "kept.txt: "), (("mv", "kept.txt", "x.txt"), "")):
        refused = cli(*args, env=reader)
        assert refused.returncode == 1
        assert one_error_line(refused) == f"seau: {prefix}{scope}"
    sent = cli("upload", "kept.txt", env=reader)
    assert sent.returncode == 1
    error, summary = sent.stderr.splitlines()
    assert error == f"seau: kept.txt: {scope}"
    assert summary.startswith("0 uploaded (0 bytes")
    assert summary.endswith(", 1 failed")
    assert [f["name"] for f in cli.ls()] == ["kept.txt"]


def test_a_personal_token_cannot_make_or_list_tokens(cli: Cli) -> None:
    made = cli("token", "create", "--name", "all", "--scopes", "files:write files:read", "--json")
    assert made.returncode == 0, made.stderr
    document = json.loads(made.stdout)
    token = document["token"]
    assert token.startswith("seau_pat_")
    assert document["scopes"] == ["files:read", "files:write"]
    assert document["expires_at"] is None
    for args in (("create", "--name", "next", "--scopes", "files:read"), ("list",)):
        refused = cli("token", *args, env={"SEAU_TOKEN": token})
        assert refused.returncode == 1
        assert one_error_line(refused) == (
            "seau: The token does not allow this: this needs a token with the "
            "'tokens' scope (insufficient_scope)"
        )
    assert [t["name"] for t in listed(cli)] == ["all"]


def test_token_errors_are_one_line(cli: Cli) -> None:
    for scopes in ("act-as", "files:read,admin", "files:delete"):
        bad = cli("token", "create", "--name", "x", "--scopes", scopes)
        assert bad.returncode == 1
        assert one_error_line(bad).endswith("(invalid_scopes)")
    usage = cli("token", "create", "--name", "x", "--scopes", "files:read", "--expires-in", "soon")
    assert usage.returncode == 2
    assert "not a duration" in usage.stderr
    missing = cli("token", "revoke", str(uuid.uuid4()))
    assert missing.returncode == 1
    assert one_error_line(missing).endswith("(token_not_found)")
    unknown = cli("token", "revoke", "no-such-name")
    assert one_error_line(unknown) == "seau: no token named 'no-such-name' (and it is not an id)"
    assert listed(cli) == []

    for name in ("twin", "twin"):
        assert cli("token", "create", "--name", name, "--scopes", "files:read").returncode == 0
    ambiguous = cli("token", "revoke", "twin")
    assert "2 tokens are named 'twin'; give one id: " in one_error_line(ambiguous)
    assert len(listed(cli)) == 2


def test_token_ids_of_another_user_are_not_found(cli: Cli, server: Server, tmp_path: Path) -> None:
    assert cli("token", "create", "--name", "mine", "--scopes", "files:read").returncode == 0
    (mine,) = listed(cli)
    home = tmp_path / "other"
    home.mkdir()
    other = Cli(home=home, server=server, email=sign_up(server))
    other.login()
    refused = other("token", "revoke", str(mine["id"]))
    assert refused.returncode == 1
    assert one_error_line(refused).endswith("(token_not_found)")
    assert other("token", "list").stdout.strip() == "no tokens"
    assert listed(cli) == [mine]


def test_whoami_after_login(cli: Cli) -> None:
    result = cli("whoami")
    assert result.returncode == 0, result.stderr
    assert "seau account (email and password)" in result.stdout
    assert cli.email in result.stdout
    me = json.loads(cli("whoami", "--json").stdout)
    assert me["via"] == "session"
    assert me["scopes"] == ["files:read", "files:write", "tokens"]
    assert me["subject"] in result.stdout

    logged_out = cli("whoami", env={"SEAU_TOKEN": "not-a-token"})
    assert logged_out.returncode == 1
    assert one_error_line(logged_out).endswith("(token_invalid); run `seau login`")


# -- service keys --------------------------------------------------------------


def test_apikey_create_list_and_revoke_on_the_server_side(cli: Cli, server: Server) -> None:
    made = admin(server, "create", "--name", "backend", "--scopes",
                 "files:read,files:write,act-as", "--expires-in", "2w")  # fmt: skip
    key = created_token(made, "seau_sk_")
    assert "Seau-Subject" in made.stdout
    assert "act-as, files:read, files:write" in made.stdout

    acting = {"Authorization": f"Bearer {key}", "Seau-Subject": "user_2abc"}
    sent = httpx.post(
        f"{server.url}/api/v1/files?name=for-user.txt", content=b"hello", headers=acting
    )
    assert sent.status_code == 201, sent.text
    # The client commands take a service key too; without a subject it is nobody.
    nobody = cli("whoami", env={"SEAU_TOKEN": key})
    assert nobody.returncode == 0, nobody.stderr
    assert "service key" in nobody.stdout
    assert "nobody" in nobody.stdout
    no_subject = cli("ls", env={"SEAU_TOKEN": key})
    assert one_error_line(no_subject).endswith("(subject_required)")

    keys = json.loads(admin(server, "list", "--json").stdout)
    mine = [k for k in keys if k["name"] == "backend"]
    assert len(mine) == 1
    assert mine[0]["scopes"] == ["act-as", "files:read", "files:write"]
    assert mine[0]["last_used_at"] is not None
    assert mine[0]["expires_at"] is not None
    assert "token" not in mine[0]
    table = admin(server, "list")
    assert str(mine[0]["id"]) in table.stdout
    assert key not in table.stdout

    revoked = admin(server, "revoke", str(mine[0]["id"]))
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.strip() == f"revoked service key backend ({mine[0]['id']})"
    refused = httpx.get(f"{server.url}/api/v1/files", headers=acting)
    assert refused.status_code == 401
    assert refused.json()["code"] == "token_invalid"

    again = admin(server, "revoke", str(mine[0]["id"]))
    assert again.returncode == 1
    assert again.stderr.strip() == f"seau: no service key '{mine[0]['id']}'"


def test_apikey_refuses_scopes_a_service_key_cannot_have(server: Server) -> None:
    for scopes in ("tokens", "files:read,files:delete"):
        refused = admin(server, "create", "--name", "bad", "--scopes", scopes)
        assert refused.returncode == 1
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1, refused.stderr
        assert lines[0].startswith("seau: not allowed here: ")
    assert not any(k["name"] == "bad" for k in json.loads(admin(server, "list", "--json").stdout))


# -- the commands themselves ---------------------------------------------------


def test_every_new_command_has_help() -> None:
    runner = CliRunner()
    for command in NEW_COMMANDS:
        result = runner.invoke(seau_app, [*command.split(), "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output, command
    overview = runner.invoke(seau_app, ["--help"]).output
    for command in ("token", "whoami", "apikey"):
        assert command in overview


def test_durations_and_scope_lists() -> None:
    assert parse_duration("3600") == 3600
    assert parse_duration("90m") == 90 * 60
    assert parse_duration("12h") == 12 * 3600
    assert parse_duration("30d") == 30 * 86400
    assert parse_duration("2W") == 14 * 86400
    assert parse_duration(None) is None
    for bad in ("", "0", "0d", "1y", "-5", "1.5h", "soon"):
        with pytest.raises(typer.BadParameter):
            parse_duration(bad)
    assert parse_scope_list("files:read, files:write,files:read") == ["files:read", "files:write"]
    with pytest.raises(typer.BadParameter):
        parse_scope_list(" , ")


def test_the_token_commands_import_no_server_module() -> None:
    code = (
        "import sys, seau.cli.client_tokens; "
        "print([m for m in sys.modules if m.startswith(('seau.db', 'seau.files', "
        "'seau.storage', 'seau.auth', 'seau.app', 'fastapi', 'sqlalchemy'))])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
