"""`seau upload --direct` against a real `seau serve`, on the local store and on S3
(moto): small files in one POST, a large one in parts, an interrupted one resumed, and
refusals that leave nothing behind."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from rich.filesize import decimal as human_size
from tests.cli.test_client import Cli, Relay, access_log, port_of, sign_up
from tests.support.moto import make_bucket, pending_multipart_uploads
from tests.support.server import Server, seau_server

MiB = 1024 * 1024
PART = 5 * MiB
"""The server's part size for the files here (its smallest)."""


@dataclass
class Site:
    """A `seau serve` with direct uploads, and where their parts go."""

    server: Server
    store: str
    data: Path
    store_relay: Relay | None = None
    """S3: moto behind a relay, the endpoint seau signs part URLs for."""
    bucket: str | None = None

    @contextmanager
    def parts_path(self, cli: Cli) -> Iterator[tuple[Relay, dict[str, str]]]:
        """A relay every part PUT of ``cli`` crosses, and the environment to run it
        with. On S3 the parts go to the bucket; on the local store to seau itself,
        so there the CLI reaches seau through a relay (the same one for every run:
        an upload is remembered for the server URL it went to)."""
        if self.store_relay is not None:
            yield self.store_relay, {}
            return
        with Relay(port_of(self.server)) as relay:
            yield relay, {"SEAU_SERVER": relay.url, "SEAU_TOKEN": cli.token()}

    def multipart_uploads(self) -> list[str]:
        """The multipart uploads the store holds, neither completed nor aborted."""
        if self.store_relay is not None:
            assert self.bucket is not None
            return pending_multipart_uploads(self.store_relay.url, self.bucket)
        return [p.name for p in (self.data / "objects" / ".tmp" / "direct").glob("*")]


@pytest.fixture(scope="module", params=["local", "s3"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp(f"direct-cli-{request.param}")
    env = {
        "SEAU_DATA_DIR": str(tmp / "data"),
        "SEAU_SIGNUP_PER_ADDRESS_PER_HOUR": "0",
        "SEAU_DIRECT_MULTIPART_THRESHOLD_BYTES": str(6 * MiB),
    }
    if request.param == "local":
        with seau_server(env, cwd=tmp) as running:
            yield Site(server=running, store="local", data=tmp / "data")
        return
    moto = request.getfixturevalue("s3_server")
    with Relay(moto.port) as relay:
        bucket = make_bucket(relay.url)
        env |= {
            "SEAU_STORAGE_URL": f"s3://{bucket}",
            "SEAU_S3_PATH_STYLE": "true",
            "AWS_ENDPOINT_URL": relay.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        }
        with seau_server(env, cwd=tmp) as running:
            yield Site(
                server=running, store="s3", data=tmp / "data", store_relay=relay, bucket=bucket
            )


@pytest.fixture
def cli(site: Site, tmp_path: Path) -> Cli:
    home = tmp_path / "home"
    home.mkdir()
    made = Cli(home=home, server=site.server, email=sign_up(site.server))
    made.login()
    return made


def direct_entries(cli: Cli) -> dict[str, str]:
    """The direct uploads the CLI remembers: fingerprint to the upload's path."""
    try:
        document = json.loads(cli.upload_state.read_text())
    except FileNotFoundError:
        return {}
    return {k: v["url"] for k, v in document.items() if k.startswith("direct|")}


def stored_parts(cli: Cli, upload_id: str) -> httpx.Response:
    return httpx.get(
        f"{cli.server.url}/api/v1/direct-uploads/{upload_id}/parts",
        headers={"Authorization": f"Bearer {cli.token()}"},
        timeout=30,
    )


# Anywhere: on a kept-alive connection a request follows the last byte of the body before.
_PUT = re.compile(rb"PUT (/\S*) HTTP/1\.1\r\n")
_NUMBER = re.compile(r"/parts/(\d+)\?|[?&]partNumber=(\d+)")


def parts_put(sent: bytes) -> list[int]:
    """The part numbers of the PUTs in ``sent`` (what clients sent through a relay):
    seau's own part URLs, or S3's."""
    numbers = []
    for target in _PUT.findall(sent):
        found = _NUMBER.search(target.decode())
        if found is not None:
            numbers.append(int(found[1] or found[2]))
    return sorted(numbers)


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


def test_an_interrupted_multipart_upload_resumes_without_sending_held_parts_again(
    site: Site, cli: Cli
) -> None:
    # Six parts, the last shorter. Enough that some are left when Ctrl-C comes: the
    # parts in flight may still arrive whole, from the sockets' buffers.
    data = os.urandom(5 * PART + 3 * MiB)
    numbers = set(range(1, 7))
    (cli.home / "video.bin").write_bytes(data)
    command = ("upload", "--direct", "video.bin")
    with site.parts_path(cli) as (relay, env):
        # Slow parts (two go at once), so that Ctrl-C comes with some of them stored.
        relay.upload_bytes_per_second = 4 * MiB
        try:
            process = cli.popen(*command, env=env)
            deadline = time.monotonic() + 60
            held: list[int] = []
            upload_id = ""
            while not held:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "no part was ever stored"
                time.sleep(0.05)
                for path in direct_entries(cli).values():
                    upload_id = path.rsplit("/", 1)[1]
                    held = [p["number"] for p in stored_parts(cli, upload_id).json()["parts"]]
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=30)
        finally:
            relay.upload_bytes_per_second = None
        assert process.returncode == 130
        assert stderr.strip() == (
            "seau: interrupted; the files sent in parts resume when uploaded again"
        )
        # Kept, not aborted: the store still has its parts, and the CLI remembers it.
        before = relay.drained()
        listed = stored_parts(cli, upload_id)
        assert listed.status_code == 200, listed.text
        held = sorted(p["number"] for p in listed.json()["parts"])
        assert 1 <= len(held) < len(numbers)
        assert list(direct_entries(cli).values()) == [f"/api/v1/direct-uploads/{upload_id}"]

        resumed = cli(*command, env=env, timeout=120)
        sent = bytes(relay.sent_by_clients[before:])
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == (
        f"uploaded video.bin ({human_size(len(data))}, "
        f"resumed after {human_size(sum(min(PART, len(data) - (n - 1) * PART) for n in held))}) "
        f"as {upload_id}"
    )
    assert parts_put(sent) == sorted(numbers - set(held))
    assert direct_entries(cli) == {}

    out = cli.home / "back.bin"
    fetched = cli("download", upload_id, "-o", out, timeout=120)
    assert fetched.returncode == 0, fetched.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert site.multipart_uploads() == []


def test_upload_direct_of_a_lie_leaves_nothing(site: Site, cli: Cli, tmp_path: Path) -> None:
    # Executables named as images: the name's type is what the client declares. The
    # large one goes in parts, and is remembered until the server refuses it.
    program = Path("/bin/true").read_bytes()
    fake = tmp_path / "cat.png"
    fake.write_bytes(program)
    large = tmp_path / "cats.png"
    large.write_bytes(program + os.urandom(7 * MiB))
    logged = len(access_log(cli.server))
    result = cli("upload", "--direct", fake, large, timeout=120)
    assert result.returncode == 1
    failed = [line for line in result.stderr.splitlines() if "verification_failed" in line]
    assert len(failed) == 2, result.stderr
    assert "resume" not in result.stderr
    assert cli.ls() == []
    # Refused, so forgotten and aborted: nothing to resume, nothing left in the store.
    assert direct_entries(cli) == {}
    assert json.loads(cli.upload_state.read_text()) == {}

    def completed() -> set[str]:
        return {
            found[1]
            for entry in access_log(cli.server)[logged:]
            if (found := re.fullmatch(r"/api/v1/direct-uploads/(.+)/complete", str(entry["path"])))
        }

    # The server may log a request just after its answer has gone.
    deadline = time.monotonic() + 10
    while len(completed()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(completed()) == 2
    for upload_id in completed():
        gone = stored_parts(cli, upload_id)
        assert gone.status_code == 404, gone.text
    assert site.multipart_uploads() == []
