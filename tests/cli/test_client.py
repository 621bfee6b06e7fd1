"""The client commands against a real `seau serve`, run as the user runs them: subprocesses."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import httpx
import pytest
from typer.testing import CliRunner

from seau.cli.main import app as seau_app
from tests.support.server import SEAU, Server, free_port, seau_server

MiB = 1024 * 1024
LIMIT = 40 * MiB
PASSWORD = "correct horse battery"
CLIENT_COMMANDS = ("login", "logout", "upload", "ls", "info", "mv", "rm", "download")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("client-server")
    env = {
        "SEAU_DATA_DIR": str(tmp / "data"),
        "SEAU_MAX_UPLOAD_BYTES": str(LIMIT),
        # One server signs up every test's users, all from 127.0.0.1.
        "SEAU_SIGNUP_PER_ADDRESS_PER_HOUR": "0",
    }
    with seau_server(env, cwd=tmp) as running:
        yield running


@dataclass
class Cli:
    """`seau` as one user on one machine: its own HOME and config directory."""

    home: Path
    server: Server
    email: str

    @property
    def config_file(self) -> Path:
        return self.home / "config" / "seau" / "config.json"

    @property
    def upload_state(self) -> Path:
        return self.home / "cache" / "seau" / "uploads.json"

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SEAU_", "AWS_"))}
        env |= {
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / "config"),
            "XDG_CACHE_HOME": str(self.home / "cache"),
        }
        return env | (extra or {})

    def __call__(
        self, *args: str | Path, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SEAU, *map(str, args)],
            cwd=self.home,
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def popen(self, *args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [SEAU, *map(str, args)],
            cwd=self.home,
            env=self.env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def login(self) -> None:
        result = self(
            "login",
            "--server",
            self.server.url,
            env={"SEAU_EMAIL": self.email, "SEAU_PASSWORD": PASSWORD},
        )
        assert result.returncode == 0, result.stderr

    def token(self) -> str:
        token: str = json.loads(self.config_file.read_text())["tokens"][self.server.url]
        return token

    def ls(self) -> list[dict[str, object]]:
        result = self("ls", "--json")
        assert result.returncode == 0, result.stderr
        items: list[dict[str, object]] = json.loads(result.stdout)
        return items


def sign_up(server: Server) -> str:
    email = f"cli-{secrets.token_hex(4)}@example.com"
    response = httpx.post(
        f"{server.url}/api/v1/users", json={"email": email, "password": PASSWORD}, timeout=30
    )
    assert response.status_code == 201, response.text
    return email


@pytest.fixture
def fresh(server: Server, tmp_path: Path) -> Cli:
    """A user who has an account but has not logged in yet."""
    home = tmp_path / "home"
    home.mkdir()
    return Cli(home=home, server=server, email=sign_up(server))


@pytest.fixture
def cli(fresh: Cli) -> Cli:
    fresh.login()
    return fresh


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("seau: ")
    return lines[0]


def upload_one(cli: Cli, path: Path) -> dict[str, object]:
    result = cli("upload", path, "--json")
    assert result.returncode == 0, result.stderr
    uploaded: dict[str, object] = json.loads(result.stdout)["uploaded"][0]
    return uploaded


def port_of(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def access_log(server: Server) -> list[dict[str, object]]:
    """The server's access log entries (it logs JSON lines)."""
    entries = []
    for line in server.log.read_text().splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("logger") == "seau.access":
                entries.append(entry)
    return entries


# -- login and logout --------------------------------------------------------


def test_login_keeps_the_token_in_a_private_file_and_logout_forgets_it(fresh: Cli) -> None:
    result = fresh(
        "login",
        "--server",
        fresh.server.url + "/",
        env={"SEAU_EMAIL": fresh.email.upper(), "SEAU_PASSWORD": PASSWORD},
    )
    assert result.returncode == 0, result.stderr
    assert fresh.email in result.stdout
    assert stat.S_IMODE(fresh.config_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(fresh.config_file.parent.stat().st_mode) == 0o700
    config = json.loads(fresh.config_file.read_text())
    assert config["server"] == fresh.server.url
    me = httpx.get(
        f"{fresh.server.url}/api/v1/users/me",
        headers={"Authorization": f"Bearer {fresh.token()}"},
    )
    assert me.json()["email"] == fresh.email

    assert fresh("ls").returncode == 0
    logged_out = fresh("logout")
    assert logged_out.returncode == 0, logged_out.stderr
    assert json.loads(fresh.config_file.read_text())["tokens"] == {}
    assert stat.S_IMODE(fresh.config_file.stat().st_mode) == 0o600
    after = fresh("ls")
    assert after.returncode == 1
    assert "not logged in" in one_error_line(after)


def test_login_prompts_for_what_the_environment_does_not_give(fresh: Cli) -> None:
    result = subprocess.run(
        [SEAU, "login", "--server", fresh.server.url, "--email", fresh.email],
        cwd=fresh.home,
        env=fresh.env(),
        input=f"{PASSWORD}\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert fresh.config_file.exists()


def test_logout_everywhere_revokes_the_token_on_the_server(cli: Cli) -> None:
    token = cli.token()
    result = cli("logout", "--everywhere")
    assert result.returncode == 0, result.stderr
    me = httpx.get(
        f"{cli.server.url}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
    )
    assert me.status_code == 401


def test_login_with_a_wrong_password_is_one_line_and_saves_nothing(fresh: Cli) -> None:
    result = fresh(
        "login",
        "--server",
        fresh.server.url,
        env={"SEAU_EMAIL": fresh.email, "SEAU_PASSWORD": "not the password"},
    )
    assert result.returncode == 1
    assert one_error_line(result) == ("seau: Wrong email or password (invalid_credentials)")
    assert not fresh.config_file.exists()


def test_a_stored_token_goes_only_to_the_server_it_came_from(cli: Cli) -> None:
    other = f"http://127.0.0.1:{free_port()}"
    result = cli("ls", env={"SEAU_SERVER": other})
    assert result.returncode == 1
    assert one_error_line(result) == (
        f"seau: not logged in to {other}; run `seau login` (or set SEAU_TOKEN)"
    )


# -- upload and managing files -----------------------------------------------


def test_upload_of_files_a_directory_and_a_glob_in_parallel(cli: Cli) -> None:
    work = cli.home / "work"
    paths = [
        write(work / "a.txt", b"alpha\n"),
        write(work / "b.bin", os.urandom(3 * MiB + 17)),
        write(work / "dir" / "c.txt", b"see\n"),
        write(work / "dir" / "sub" / "d.csv", b"x,y\n1,2\n"),
        write(work / "g1.log", b"one\n"),
        write(work / "g2.log", b"two\n"),
        write(work / "empty", b""),
    ]
    write(work / "skipped.txt", b"matched by nothing")
    expected = {p.name: p.read_bytes() for p in paths}
    with Relay(port_of(cli.server)) as relay:
        result = cli(
            "upload",
            "work/a.txt",
            "work/b.bin",
            "work/dir",
            "work/g*.log",  # quoted: the command expands it
            "work/empty",
            "work/a.txt",  # named twice, uploaded once
            "--jobs",
            "3",
            "--json",
            env={"SEAU_SERVER": relay.url, "SEAU_TOKEN": cli.token()},
        )
    connections = relay.connections
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["failed"] == []
    uploaded = {item["name"]: item for item in document["uploaded"]}
    assert set(uploaded) == set(expected)
    for name, data in expected.items():
        assert uploaded[name]["size"] == len(data)
        assert uploaded[name]["sha256"] == sha256(data)
    assert [item["path"] for item in document["uploaded"]] == [
        "work/a.txt",
        "work/b.bin",
        "work/dir/c.txt",
        "work/dir/sub/d.csv",
        "work/g1.log",
        "work/g2.log",
        "work/empty",
    ]
    summary = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"7 uploaded \(3\.1 MB in [\d.]+ s, .+/s\)", summary), summary
    # Uploads overlapped: one at a time would have reused a single kept-alive connection.
    assert connections >= 2
    listed = {item["id"] for item in cli.ls()}
    assert listed == {item["id"] for item in uploaded.values()}


def test_upload_without_json_prints_a_line_per_file_and_quiet_prints_nothing(cli: Cli) -> None:
    write(cli.home / "one.txt", b"1")
    write(cli.home / "two.txt", b"22")
    result = cli("upload", "one.txt", "two.txt")
    assert result.returncode == 0, result.stderr
    lines = sorted(result.stdout.strip().splitlines())
    assert len(lines) == 2
    assert re.fullmatch(r"uploaded one\.txt \(1 byte\) as [0-9a-f-]{36}", lines[0]), lines
    assert result.stderr.startswith("2 uploaded (3 bytes in ")
    quiet = cli("upload", "one.txt", "--quiet")
    assert quiet.returncode == 0
    assert quiet.stdout == ""
    assert quiet.stderr == ""


def test_a_failed_upload_in_a_batch_fails_the_command_and_keeps_the_others(cli: Cli) -> None:
    write(cli.home / "ok1.txt", b"fine")
    write(cli.home / "ok2.txt", b"also fine")
    with (cli.home / "huge.bin").open("wb") as handle:
        handle.truncate(LIMIT + 1)  # sparse: costs no disk
    result = cli("upload", "ok1.txt", "huge.bin", "ok2.txt", "missing.txt", "--jobs", "2")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = result.stderr.strip().splitlines()
    # huge.bin is above the resumable threshold: the tus endpoint refuses it.
    assert errors[:2] == [
        f"seau: huge.bin: File too large: the upload exceeds the limit of {LIMIT} bytes "
        "(file_too_large)",
        "seau: missing.txt: no such file or directory",
    ]
    assert re.fullmatch(r"2 uploaded \(13 bytes in [\d.]+ s, .+\), 2 failed", errors[2]), errors
    assert sorted(str(item["name"]) for item in cli.ls()) == ["ok1.txt", "ok2.txt"]

    as_json = cli("upload", "huge.bin", "ok1.txt", "--json")
    assert as_json.returncode == 1
    document = json.loads(as_json.stdout)
    assert [item["name"] for item in document["uploaded"]] == ["ok1.txt"]
    assert document["failed"] == [
        {
            "path": "huge.bin",
            "error": f"File too large: the upload exceeds the limit of {LIMIT} bytes "
            "(file_too_large)",
        }
    ]


# -- resumable uploads ---------------------------------------------------------


def uploads_log(server: Server, upload_id: object) -> list[dict[str, object]]:
    """The access log's requests to one resumable upload, in order."""
    return [e for e in access_log(server) if e["path"] == f"/api/v1/uploads/{upload_id}"]


def stored_upload_id(cli: Cli) -> str | None:
    """The id of the one upload the state file remembers, once it is there."""
    with contextlib.suppress(OSError, ValueError):
        (entry,) = json.loads(cli.upload_state.read_text()).values()
        return str(entry["url"]).rsplit("/", 1)[1]
    return None


def test_a_file_above_the_threshold_goes_in_resumable_chunks(cli: Cli) -> None:
    big = os.urandom(12 * MiB)
    write(cli.home / "big.bin", big)
    write(cli.home / "small.txt", b"small")
    result = cli("upload", "big.bin", "small.txt", "--resumable-threshold", "8M", "--json")
    assert result.returncode == 0, result.stderr
    uploaded = {item["name"]: item for item in json.loads(result.stdout)["uploaded"]}
    assert uploaded["big.bin"]["sha256"] == sha256(big)
    assert uploaded["small.txt"]["sha256"] == sha256(b"small")
    requests = [
        (e["method"], e["status"], e["bytes_in"])
        for e in uploads_log(cli.server, uploaded["big.bin"]["id"])
    ]
    assert requests == [("PATCH", 204, 10 * MiB), ("PATCH", 204, 2 * MiB)]
    assert uploads_log(cli.server, uploaded["small.txt"]["id"]) == []
    # Finished uploads are forgotten; the file stays private.
    assert json.loads(cli.upload_state.read_text()) == {}
    assert stat.S_IMODE(cli.upload_state.stat().st_mode) == 0o600


def test_a_killed_upload_continues_from_the_servers_offset_when_run_again(cli: Cli) -> None:
    data = os.urandom(24 * MiB)
    write(cli.home / "video.bin", data)
    command = ("upload", "video.bin", "--resumable-threshold", "8M")

    # One relay for both runs: an upload is remembered for the server URL it went to.
    with Relay(port_of(cli.server), upload_bytes_per_second=16 * MiB) as relay:
        env = {"SEAU_SERVER": relay.url, "SEAU_TOKEN": cli.token()}
        process = cli.popen(*command, env=env)
        deadline = time.monotonic() + 30
        upload_id = None
        while upload_id is None or not any(
            e["method"] == "PATCH" and e["status"] == 204
            for e in uploads_log(cli.server, upload_id)
        ):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no chunk ever arrived"
            time.sleep(0.02)
            upload_id = stored_upload_id(cli)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
        assert stored_upload_id(cli) == upload_id
        assert stat.S_IMODE(cli.upload_state.stat().st_mode) == 0o600

        relay.upload_bytes_per_second = None
        before = relay.drained()
        resumed = cli(*command, env=env)
        sent = bytes(relay.sent_by_clients[before:]).lower()
    assert resumed.returncode == 0, resumed.stderr
    # The finished upload is the file, with the same id.
    assert resumed.stdout.strip() == (
        f"uploaded video.bin (25.2 MB, resumed after 10.5 MB) as {upload_id}"
    )
    log = uploads_log(cli.server, upload_id)
    (asked,) = [i for i, e in enumerate(log) if e["method"] == "HEAD"]
    first_run, second_run = log[:asked], log[asked + 1 :]
    assert [e["bytes_in"] for e in first_run if e["status"] == 204] == [10 * MiB]
    assert {e["method"] for e in second_run} == {"PATCH"}
    assert [e["bytes_in"] for e in second_run if e["status"] == 204] == [10 * MiB, 4 * MiB]
    assert f"upload-offset: {10 * MiB}\r\n".encode() in sent
    assert b"post /api/v1/uploads " not in sent, "the same upload, not a new one"
    assert len(sent) < len(data) - 10 * MiB + 64 * 1024

    content = httpx.get(
        f"{cli.server.url}/api/v1/files/{upload_id}/content",
        headers={"Authorization": f"Bearer {cli.token()}"},
        timeout=60,
    ).content
    assert sha256(content) == sha256(data)
    assert [item["name"] for item in cli.ls()] == ["video.bin"]
    assert json.loads(cli.upload_state.read_text()) == {}


def test_an_upload_cut_by_the_network_continues_in_the_same_run(cli: Cli) -> None:
    data = os.urandom(16 * MiB)
    write(cli.home / "flaky.bin", data)
    with Relay(port_of(cli.server), cut_upload_after=13 * MiB) as flaky:
        result = cli(
            "upload",
            "flaky.bin",
            "--resumable-threshold",
            "8M",
            "--json",
            env={"SEAU_SERVER": flaky.url, "SEAU_TOKEN": cli.token()},
        )
    assert result.returncode == 0, result.stderr
    (file,) = json.loads(result.stdout)["uploaded"]
    assert file["sha256"] == sha256(data)
    log = uploads_log(cli.server, file["id"])
    assert "HEAD" in [e["method"] for e in log], "it asked the server where the upload stood"
    assert [e["bytes_in"] for e in log if e["status"] == 204] == [10 * MiB, 6 * MiB]


def test_upload_falls_back_to_a_plain_post_when_the_server_has_no_resumable_uploads(
    fresh: Cli, tmp_path: Path
) -> None:
    # The memory store cannot stage resumable uploads: the server answers 501.
    env = {"SEAU_DATA_DIR": str(tmp_path / "data"), "SEAU_STORAGE_URL": "memory://"}
    with seau_server(env, cwd=tmp_path) as plain:
        cli = Cli(home=fresh.home, server=plain, email=sign_up(plain))
        cli.login()
        first, second = os.urandom(2 * MiB), os.urandom(MiB)
        write(cli.home / "first.bin", first)
        write(cli.home / "second.bin", second)
        result = cli(
            "upload", "first.bin", "second.bin", "--resumable-threshold", "1M", "-j", "1", "--json"
        )
        assert result.returncode == 0, result.stderr
        uploaded = json.loads(result.stdout)["uploaded"]
        assert [item["sha256"] for item in uploaded] == [sha256(first), sha256(second)]
        log = access_log(plain)
    # Asked once; both files then went as plain uploads.
    assert [e["status"] for e in log if e["path"] == "/api/v1/uploads"] == [501]
    assert [e["status"] for e in log if e["path"] == "/api/v1/files"] == [201, 201]


def test_ls_info_mv_and_rm(cli: Cli) -> None:
    write(cli.home / "report.pdf", b"%PDF-1.4 not really" * 100)
    write(cli.home / "notes.txt", b"notes")
    result = cli("upload", "report.pdf", "notes.txt", "--json")
    assert result.returncode == 0, result.stderr
    ids = {item["name"]: item["id"] for item in json.loads(result.stdout)["uploaded"]}

    table = cli("ls", "--sort", "name", env={"COLUMNS": "120"})
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.strip().splitlines()
    assert header.split() == ["name", "size", "type", "date", "id"]
    date = r"\d{4}-\d\d-\d\d \d\d:\d\d"
    pdf = rf"report\.pdf\s+1\.9 kB\s+application/pdf\s+{date}\s+{ids['report.pdf']}"
    assert re.fullmatch(pdf, rows[1]), rows
    notes = rf"notes\.txt\s+5 bytes\s+text/plain\s+{date}\s+{ids['notes.txt']}"
    assert re.fullmatch(notes, rows[0]), rows
    assert cli("ls", "--search", "NOTES", "--json").stdout.count('"id"') == 1

    info = cli("info", ids["report.pdf"])
    assert info.returncode == 0, info.stderr
    assert "application/pdf" in info.stdout
    assert sha256(b"%PDF-1.4 not really" * 100) in info.stdout
    assert json.loads(cli("info", "notes.txt", "--json").stdout)["id"] == ids["notes.txt"]

    moved = cli("mv", ids["notes.txt"], "renamed.txt")
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.strip() == f"renamed notes.txt to renamed.txt ({ids['notes.txt']})"
    assert sorted(str(item["name"]) for item in cli.ls()) == ["renamed.txt", "report.pdf"]

    removed = cli("rm", "renamed.txt", ids["report.pdf"], str(uuid.uuid4()))
    assert removed.returncode == 1
    assert removed.stdout.splitlines() == [
        f"deleted renamed.txt ({ids['notes.txt']})",
        f"deleted report.pdf ({ids['report.pdf']})",
    ]
    assert "File not found (file_not_found)" in one_error_line(removed)
    assert cli.ls() == []
    assert cli("ls").stdout.strip() == "no files"


# -- download ----------------------------------------------------------------


def test_download_by_id_and_by_name_checks_the_bytes(cli: Cli) -> None:
    data = os.urandom(2 * MiB + 5)
    file = upload_one(cli, write(cli.home / "photo.raw", data))
    (cli.home / "out").mkdir()

    by_id = cli("download", str(file["id"]), "-o", "out/by-id.raw")
    assert by_id.returncode == 0, by_id.stderr
    assert by_id.stdout.strip() == "downloaded photo.raw to out/by-id.raw (2.1 MB), SHA-256 ok"
    assert (cli.home / "out" / "by-id.raw").read_bytes() == data

    by_name = cli("download", "photo.raw", "-o", "out/")
    assert by_name.returncode == 0, by_name.stderr
    assert (cli.home / "out" / "photo.raw").read_bytes() == data
    assert not list((cli.home / "out").glob("*.part"))

    again = cli("download", "photo.raw", "-o", "out")
    assert again.returncode == 1
    assert one_error_line(again) == "seau: out/photo.raw already exists; use --force to replace it"
    assert cli("download", "photo.raw", "-o", "out", "--force").returncode == 0

    empty = upload_one(cli, write(cli.home / "src" / "empty.txt", b""))
    assert cli("download", str(empty["id"]), "-o", "out/").returncode == 0
    assert (cli.home / "out" / "empty.txt").read_bytes() == b""


def test_download_by_an_ambiguous_name_lists_the_ids(cli: Cli) -> None:
    write(cli.home / "a" / "same.txt", b"one")
    write(cli.home / "b" / "same.txt", b"two")
    result = cli("upload", "a", "b", "--json")
    ids = sorted(item["id"] for item in json.loads(result.stdout)["uploaded"])
    download = cli("download", "same.txt")
    assert download.returncode == 1
    line = one_error_line(download)
    assert line.startswith("seau: 2 files are named 'same.txt'; give one id: ")
    assert sorted(line.rsplit(": ", 1)[1].split(", ")) == ids


def test_download_resumes_after_the_connection_drops(cli: Cli) -> None:
    data = os.urandom(6 * MiB)
    file = upload_one(cli, write(cli.home / "src" / "big.bin", data))
    part = cli.home / "big.bin.part"
    with Relay(port_of(cli.server), cut_after=2 * MiB) as relay:
        env = {"SEAU_SERVER": relay.url, "SEAU_TOKEN": cli.token()}
        cut = cli("download", str(file["id"]), env=env)
        assert cut.returncode == 1
        assert one_error_line(cut).endswith("; run the same command again to resume")
        kept = part.stat().st_size
        assert 1 * MiB < kept < 2 * MiB
        assert part.read_bytes() == data[:kept]

        before = relay.bytes_answered
        resumed = cli("download", str(file["id"]), env=env)
        assert resumed.returncode == 0, resumed.stderr
        assert "resumed after" in resumed.stdout
        # Only the rest crossed the wire the second time (plus metadata and headers).
        assert relay.bytes_answered - before < len(data) - kept + 64 * 1024
    assert (cli.home / "big.bin").read_bytes() == data
    assert not part.exists()

    def statuses() -> list[int]:
        return sorted(
            cast(int, entry["status"])
            for entry in access_log(cli.server)
            if entry["path"] == f"/api/v1/files/{file['id']}/content"
        )

    # The cut download is logged when the server notices the drop, which can be
    # after the resumed request has finished, or after the relay has closed (just
    # now): compare without order, and give the server a moment to notice.
    deadline = time.monotonic() + 10
    while len(statuses()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert statuses() == [200, 206]


class Relay:
    """A TCP relay to the server that records what clients send, counts connections,
    and can slow the answers or the requests, or cut them after some bytes."""

    def __init__(
        self,
        port: int,
        *,
        bytes_per_second: int | None = None,
        cut_after: int | None = None,
        upload_bytes_per_second: int | None = None,
        cut_upload_after: int | None = None,
    ) -> None:
        self._upstream = port
        self._rate = bytes_per_second
        self._cut_after = cut_after
        # Public: a test may lift the limit and go on through the same URL.
        self.upload_bytes_per_second = upload_bytes_per_second
        self._cut_upload_after = cut_upload_after
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.sent_by_clients = bytearray()
        self.bytes_answered = 0
        self.connections = 0
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> Relay:
        return self

    def drained(self, *, quiet: float = 0.3, timeout: float = 10) -> int:
        """The bytes clients sent, once what a dead client left in the relay's socket
        buffers has gone through (nothing new for ``quiet`` seconds)."""
        deadline = time.monotonic() + timeout
        seen = -1
        while seen != len(self.sent_by_clients) and time.monotonic() < deadline:
            seen = len(self.sent_by_clients)
            time.sleep(quiet)
        return seen

    def __exit__(self, *_: object) -> None:
        # shutdown() wakes the thread blocked in accept(); close() alone may not.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        for sock in [self._listener, *self._sockets]:
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self._upstream))
            self._sockets += [client, upstream]
            for source, sink, upwards in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self._pump, args=(source, sink, upwards), daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upwards: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(32 * 1024):
                if upwards:
                    if self._cut_upload_after is not None:
                        room = max(0, self._cut_upload_after - len(self.sent_by_clients))
                        if len(data) >= room:
                            self._cut_upload_after = None  # one cut; later bytes pass
                            self.sent_by_clients += data[:room]
                            sink.sendall(data[:room])
                            break
                    if self.upload_bytes_per_second:
                        time.sleep(len(data) / self.upload_bytes_per_second)
                    self.sent_by_clients += data
                else:
                    if self._cut_after is not None:
                        data = data[: max(0, self._cut_after - self.bytes_answered)]
                    if self._rate:
                        time.sleep(len(data) / self._rate)
                    self.bytes_answered += len(data)
                sink.sendall(data)
                cut = self._cut_after
                if not upwards and cut is not None and self.bytes_answered >= cut:
                    self._cut_after = None  # one cut; later connections pass
                    break
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def test_a_killed_download_resumes_from_the_partial_file_with_range(cli: Cli) -> None:
    data = os.urandom(8 * MiB)
    file = upload_one(cli, write(cli.home / "src" / "video.bin", data))
    port = port_of(cli.server)
    part = cli.home / "video.bin.part"

    with Relay(port, bytes_per_second=4 * MiB) as slow:
        env = {"SEAU_SERVER": slow.url, "SEAU_TOKEN": cli.token()}
        process = cli.popen("download", str(file["id"]), env=env)
        deadline = time.monotonic() + 30
        while not (part.exists() and part.stat().st_size >= MiB):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the partial file never grew"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    kept = part.stat().st_size
    assert MiB <= kept < len(data)
    assert not (cli.home / "video.bin").exists()

    with Relay(port) as recorder:
        env = {"SEAU_SERVER": recorder.url, "SEAU_TOKEN": cli.token()}
        resumed = cli("download", str(file["id"]), env=env)
    assert resumed.returncode == 0, resumed.stderr
    request = bytes(recorder.sent_by_clients).lower()
    assert f"range: bytes={kept}-\r\n".encode() in request
    assert f'if-range: "{file["sha256"]}"\r\n'.encode() in request
    assert (cli.home / "video.bin").read_bytes() == data
    assert not part.exists()


def test_ctrl_c_stops_a_download_with_one_line_and_keeps_the_partial_file(cli: Cli) -> None:
    data = os.urandom(4 * MiB)
    file = upload_one(cli, write(cli.home / "src" / "slow.bin", data))
    part = cli.home / "slow.bin.part"
    with Relay(port_of(cli.server), bytes_per_second=2 * MiB) as slow:
        env = {"SEAU_SERVER": slow.url, "SEAU_TOKEN": cli.token()}
        process = cli.popen("download", str(file["id"]), env=env)
        deadline = time.monotonic() + 30
        while not (part.exists() and part.stat().st_size >= MiB):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the partial file never grew"
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130
    assert stderr.strip() == "seau: interrupted; run the same command to resume"
    assert part.read_bytes() == data[: part.stat().st_size]
    assert not (cli.home / "slow.bin").exists()


def test_a_corrupted_partial_download_fails_the_sha256_check_and_is_removed(cli: Cli) -> None:
    data = os.urandom(MiB)
    file = upload_one(cli, write(cli.home / "src" / "doc.bin", data))
    part = write(cli.home / "doc.bin.part", bytes(len(data) // 2))  # zeros, not the bytes
    result = cli("download", str(file["id"]))
    assert result.returncode == 1
    line = one_error_line(result)
    assert line.startswith(f"seau: SHA-256 mismatch for 'doc.bin': expected {file['sha256']}, got ")
    assert not part.exists()
    assert not (cli.home / "doc.bin").exists()
    # Nothing wrong was left in place: the next run starts over and succeeds.
    assert cli("download", str(file["id"])).returncode == 0
    assert (cli.home / "doc.bin").read_bytes() == data


# -- errors, help, layering ------------------------------------------------------


def test_errors_are_one_line_built_from_the_problem_details(cli: Cli) -> None:
    missing = cli("info", str(uuid.uuid4()))
    assert missing.returncode == 1
    assert one_error_line(missing) == "seau: File not found (file_not_found)"

    bad_name = cli("mv", str(upload_one(cli, write(cli.home / "x.txt", b"x"))["id"]), "a\x01b")
    assert bad_name.returncode == 1
    assert "(invalid_file_name)" in one_error_line(bad_name)

    expired = cli("ls", env={"SEAU_TOKEN": "not-a-token"})
    assert expired.returncode == 1
    assert one_error_line(expired) == (
        "seau: Invalid token: the token is not valid (token_invalid); run `seau login`"
    )

    down = f"http://127.0.0.1:{free_port()}"
    unreachable = cli("ls", env={"SEAU_SERVER": down, "SEAU_TOKEN": "t"})
    assert unreachable.returncode == 1
    assert one_error_line(unreachable) == f"seau: cannot reach {down}: Connection refused"

    usage = cli("upload", "--jobs", "0", "x.txt")
    assert usage.returncode == 2


def test_every_command_has_help_and_there_is_a_version(fresh: Cli) -> None:
    version = fresh("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("seau ")
    runner = CliRunner()
    for command in [*CLIENT_COMMANDS, "user disable", "user delete"]:
        result = runner.invoke(seau_app, [*command.split(), "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output, command
    overview = runner.invoke(seau_app, ["--help"]).output
    for command in CLIENT_COMMANDS:
        assert command in overview


def test_the_client_commands_import_no_server_module() -> None:
    # The client reaches a server over HTTP only; it must not even load the server.
    code = (
        "import sys, seau.cli.client; "
        "print([m for m in sys.modules if m.startswith(('seau.db', 'seau.files', "
        "'seau.storage', 'seau.auth', 'seau.app', 'fastapi', 'sqlalchemy'))])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_uploads_and_downloads_stream_through_little_memory(cli: Cli) -> None:
    big = cli.home / "sparse.bin"
    with big.open("wb") as handle:
        handle.truncate(LIMIT)

    def peak_rss(*args: str) -> int:
        """ru_maxrss of the one child a fresh interpreter runs, in bytes."""
        code = (
            "import resource, subprocess, sys; "
            "subprocess.run(sys.argv[1:], check=True, capture_output=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
        )
        result = subprocess.run(
            [sys.executable, "-c", code, SEAU, *args],
            cwd=cli.home,
            env=cli.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return int(result.stdout) * 1024

    baseline = peak_rss("--version")
    uploaded = peak_rss("upload", "sparse.bin", "--quiet")
    downloaded = peak_rss("download", "sparse.bin", "-o", "copy.bin", "--quiet")
    assert (cli.home / "copy.bin").stat().st_size == LIMIT
    print(
        f"peak RSS: --version {baseline >> 20} MiB, upload {uploaded >> 20} MiB, "
        f"download {downloaded >> 20} MiB of a {LIMIT >> 20} MiB file"
    )
    assert uploaded - baseline < LIMIT // 2
    assert downloaded - baseline < LIMIT // 2


# -- server-side account commands, as the account's client sees them -----------


def admin(server: Server, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`seau user ...` on the server's machine: same data directory, straight to the database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEAU_", "AWS_"))}
    return subprocess.run(
        [SEAU, "user", *args],
        cwd=server.log.parent,
        env=env | {"SEAU_DATA_DIR": str(server.log.parent / "data")},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def object_path(server: Server, file_id: str) -> Path:
    hex_id = uuid.UUID(file_id).hex
    return server.log.parent / "data" / "objects" / "files" / hex_id[:2] / hex_id


def test_user_disable_locks_the_account_out_at_once(cli: Cli) -> None:
    assert cli("ls").returncode == 0
    disabled = admin(cli.server, "disable", "--email", cli.email.upper())
    assert disabled.returncode == 0, disabled.stderr
    assert disabled.stdout.startswith(f"disabled {cli.email} (")

    after = cli("ls")
    assert after.returncode == 1
    assert "(token_invalid)" in one_error_line(after)
    again = cli(
        "login",
        "--server",
        cli.server.url,
        env={"SEAU_EMAIL": cli.email, "SEAU_PASSWORD": PASSWORD},
    )
    assert again.returncode == 1
    assert "(invalid_credentials)" in one_error_line(again)
    with sqlite3.connect(cli.server.log.parent / "data" / "seau.db") as database:
        active = database.execute(
            "SELECT is_active FROM user_account WHERE email = ?", [cli.email]
        ).fetchone()
    assert active == (0,)


def test_user_delete_removes_the_account_its_rows_and_its_objects(cli: Cli) -> None:
    write(cli.home / "one.txt", b"first")
    write(cli.home / "two.txt", b"second")
    uploaded = json.loads(cli("upload", "one.txt", "two.txt", "--json").stdout)["uploaded"]
    ids = [str(item["id"]) for item in uploaded]
    assert all(object_path(cli.server, i).exists() for i in ids)

    refused = admin(cli.server, "delete", "--email", cli.email, stdin="n\n")
    assert refused.returncode == 1
    assert len(cli.ls()) == 2

    deleted = admin(cli.server, "delete", "--email", cli.email, "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == f"deleted {cli.email} and 2 files (11 bytes)"
    assert not any(object_path(cli.server, i).exists() for i in ids)
    with sqlite3.connect(cli.server.log.parent / "data" / "seau.db") as database:
        placeholders = ",".join("?" * len(ids))
        rows = database.execute(
            f"SELECT count(*) FROM user_file WHERE id IN ({placeholders})",  # noqa: S608
            [uuid.UUID(i).hex for i in ids],
        ).fetchone()
        users = database.execute(
            "SELECT count(*) FROM user_account WHERE email = ?", [cli.email]
        ).fetchone()
    assert rows == (0,)
    assert users == (0,)
    assert "(token_invalid)" in one_error_line(cli("ls"))

    missing = admin(cli.server, "delete", "--email", cli.email, "--yes")
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"seau: no account with the email {cli.email}"


class AnswerDropper:
    """A TCP relay to the server that lets everything through except the answer to
    the first plain upload (`POST /api/v1/files`): it forwards the request whole,
    then closes the connection when the server starts answering, so the file is
    stored and the client never hears of it."""

    def __init__(self, port: int) -> None:
        self._upstream = port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.dropped = 0
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> AnswerDropper:
        return self

    def __exit__(self, *_: object) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        for sock in [self._listener, *self._sockets]:
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._upstream))
            self._sockets += [client, upstream]
            sent = bytearray()
            threading.Thread(target=self._up, args=(client, upstream, sent), daemon=True).start()
            threading.Thread(target=self._down, args=(upstream, client, sent), daemon=True).start()

    def _up(self, client: socket.socket, upstream: socket.socket, sent: bytearray) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(32 * 1024):
                sent += data
                upstream.sendall(data)

    def _down(self, upstream: socket.socket, client: socket.socket, sent: bytearray) -> None:
        with contextlib.suppress(OSError):
            while data := upstream.recv(32 * 1024):
                # Without pipelining, an answer that comes after the upload's request
                # was sent is the upload's answer.
                if not self.dropped and b"POST /api/v1/files?" in sent:
                    self.dropped += 1
                    break
                client.sendall(data)
        for sock in (upstream, client):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def test_an_upload_whose_answer_is_lost_is_sent_again_and_stored_once(cli: Cli) -> None:
    data = os.urandom(64 * 1024)
    write(cli.home / "once.bin", data)
    with AnswerDropper(port_of(cli.server)) as lossy:
        result = cli(
            "upload",
            "once.bin",
            "--json",
            env={"SEAU_SERVER": lossy.url, "SEAU_TOKEN": cli.token()},
        )
        assert result.returncode == 0, result.stderr
        assert lossy.dropped == 1
    (file,) = json.loads(result.stdout)["uploaded"]
    assert file["sha256"] == sha256(data)
    # Sent twice with one Idempotency-Key: the second answer is the first file.
    assert [item["id"] for item in cli.ls()] == [file["id"]]
    posts = [
        entry
        for entry in access_log(cli.server)
        if entry["method"] == "POST" and entry["path"] == "/api/v1/files"
    ]
    assert [entry["status"] for entry in posts[-2:]] == [201, 201]
