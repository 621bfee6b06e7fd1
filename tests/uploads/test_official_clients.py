"""The official tus clients, unmodified, against a real `seau serve`, on both stores.

tuspy (PyPI) runs as a subprocess of its own, tus-js-client (npm) under Node,
each through a small script that uses only their public API and their own URL
storage for resuming. Interruptions happen in the middle of a request: a
throttling proxy lets the test kill the client, or the server, once a PATCH is
well under way. Then the same client, run again, must finish the upload, and
the stored file must be byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest

from tests.support.databases import unavailable
from tests.support.moto import make_bucket
from tests.support.server import Server, seau_server
from tests.uploads.proxy import throttling_proxy

MiB = 1024 * 1024
HERE = Path(__file__).parent
JS_DIR = HERE / "js"
CLIENTS = ["tuspy", "tus-js-client"]
STORES = ["local", "s3"]
# Slow enough that a 6 MiB request takes most of a second.
RATE = 8 * MiB


@dataclass
class Deployment:
    env: dict[str, str]
    cwd: Path
    stack: ExitStack
    server: Server
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def restart_after_crash(self) -> Server:
        """SIGKILL the server (a crash: no graceful end) and start a new one."""
        self.server.process.send_signal(signal.SIGKILL)
        self.server.process.wait(10)
        self.server = self.stack.enter_context(seau_server(self.env, cwd=self.cwd))
        return self.server


@pytest.fixture(params=STORES)
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    env = {
        "SEAU_DATA_DIR": str(tmp_path / "data"),
        "SEAU_MAX_UPLOAD_BYTES": str(64 * MiB),
        # A crashed server's lock frees quickly, so resuming tests stay short.
        "SEAU_UPLOAD_LEASE_SECONDS": "2",
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
    with ExitStack() as stack:
        server = stack.enter_context(seau_server(env, cwd=tmp_path))
        yield Deployment(
            env=env, cwd=tmp_path, stack=stack, server=server, token=sign_in(server.url)
        )


def sign_in(url: str) -> str:
    email, password = f"tus-{secrets.token_hex(4)}@example.com", "resumable password"
    created = httpx.post(f"{url}/api/v1/users", json={"email": email, "password": password})
    assert created.status_code == 201, created.text
    token = httpx.post(f"{url}/api/v1/auth/token", data={"username": email, "password": password})
    access: str = token.json()["access_token"]
    return access


def client_command(
    client: str, *, endpoint: str, token: str, file: Path, state: Path, args: list[str]
) -> tuple[list[str], Path]:
    if client == "tuspy":
        script = str(HERE / "tuspy_upload.py")
        return [sys.executable, script, endpoint, token, str(file), str(state), *args], HERE
    node = shutil.which("node")
    if node is None or not (JS_DIR / "node_modules" / "tus-js-client").is_dir():
        unavailable("Node or tus-js-client is missing: run `npm ci` in tests/uploads/js")
    assert node is not None
    return [node, "upload.mjs", endpoint, token, str(file), str(state), *args], JS_DIR


def start_client(
    client: str,
    deployment: Deployment,
    *,
    endpoint: str,
    file: Path,
    state: Path,
    args: list[str],
    path: str = "/api/v1/uploads",
) -> subprocess.Popen[str]:
    command, cwd = client_command(
        client,
        endpoint=f"{endpoint}{path}",
        token=deployment.token,
        file=file,
        state=state,
        args=args,
    )
    return subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def run_client(
    client: str,
    deployment: Deployment,
    *,
    file: Path,
    state: Path,
    args: list[str] | None = None,
    endpoint: str | None = None,
    path: str = "/api/v1/uploads",
) -> list[dict[str, object]]:
    process = start_client(
        client,
        deployment,
        endpoint=endpoint or deployment.server.url,
        file=file,
        state=state,
        args=args or [],
        path=path,
    )
    output, _ = process.communicate(timeout=180)
    assert process.returncode == 0, output
    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert events[-1]["event"] == "success", output
    return events


def random_file(directory: Path, size: int) -> Path:
    path = directory / f"file-{secrets.token_hex(4)}.bin"
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, MiB))
            out.write(block)
            left -= len(block)
    return path


def assert_stored_once(deployment: Deployment, path: Path) -> None:
    """The server lists exactly one file of that name, byte-identical to ``path``."""
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    url = deployment.server.url
    listed = httpx.get(
        f"{url}/api/v1/files", params={"q": path.name}, headers=deployment.auth
    ).json()["items"]
    assert [(f["name"], f["size"], f["sha256"]) for f in listed] == [
        (path.name, path.stat().st_size, expected)
    ]
    content = httpx.get(
        f"{url}/api/v1/files/{listed[0]['id']}/content", headers=deployment.auth, timeout=60
    )
    assert hashlib.sha256(content.content).hexdigest() == expected


@pytest.mark.parametrize("client", CLIENTS)
def test_whole_file_in_one_request(client: str, deployment: Deployment, tmp_path: Path) -> None:
    path = random_file(tmp_path, 12 * MiB + 3)
    events = run_client(client, deployment, file=path, state=tmp_path / "state.json")
    assert [e["event"] for e in events].count("chunk") <= 1
    assert_stored_once(deployment, path)


@pytest.mark.parametrize("client", CLIENTS)
def test_chunked_upload(client: str, deployment: Deployment, tmp_path: Path) -> None:
    path = random_file(tmp_path, 12 * MiB + 3)
    # 3 MiB chunks end in the middle of 5 MiB S3 parts; tuspy sends sha1 checksums.
    args = [str(3 * MiB), "--checksum"] if client == "tuspy" else [str(3 * MiB)]
    events = run_client(client, deployment, file=path, state=tmp_path / "state.json", args=args)
    assert [e["event"] for e in events].count("chunk") == 5
    assert_stored_once(deployment, path)


@pytest.mark.parametrize("client", CLIENTS)
def test_endpoint_with_a_trailing_slash(
    client: str, deployment: Deployment, tmp_path: Path
) -> None:
    """`/api/v1/uploads/`, as tus documentation writes it: no redirect in the way."""
    path = random_file(tmp_path, 3 * MiB + 5)
    events = run_client(
        client,
        deployment,
        file=path,
        state=tmp_path / "state.json",
        args=[str(2 * MiB)],
        path="/api/v1/uploads/",
    )
    assert [e["event"] for e in events].count("chunk") == 2
    assert_stored_once(deployment, path)


def test_tus_js_client_creation_with_upload_and_deferred_length(
    deployment: Deployment, tmp_path: Path
) -> None:
    for mode in ("with-upload", "deferred"):
        path = random_file(tmp_path, 7 * MiB)
        run_client(
            "tus-js-client",
            deployment,
            file=path,
            state=tmp_path / f"{mode}.json",
            args=[str(3 * MiB), mode],
        )
        assert_stored_once(deployment, path)


@pytest.mark.parametrize("client", CLIENTS)
def test_client_killed_mid_request_resumes_where_the_server_stopped(
    client: str, deployment: Deployment, tmp_path: Path
) -> None:
    path = random_file(tmp_path, 16 * MiB)
    state = tmp_path / "state.json"
    args = [str(6 * MiB)]
    with throttling_proxy(_port(deployment), rate=RATE) as proxy:
        process = start_client(
            client, deployment, endpoint=proxy.url, file=path, state=state, args=args
        )
        try:
            # In the middle of the second 6 MiB request.
            proxy.wait_forwarded(9 * MiB)
        finally:
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
        # The server records what arrived once it notices the client is gone.
        offset = _wait_for_offset_above(deployment, state, 6 * MiB)
        assert offset < 16 * MiB
        events = run_client(
            client, deployment, file=path, state=state, args=args, endpoint=proxy.url
        )
    assert events[0]["event"] == "resume"
    assert_stored_once(deployment, path)


@pytest.mark.parametrize("client", CLIENTS)
def test_server_crash_mid_request_then_restart_resumes(
    client: str, deployment: Deployment, tmp_path: Path
) -> None:
    path = random_file(tmp_path, 16 * MiB)
    state = tmp_path / "state.json"
    args = [str(6 * MiB)]
    with throttling_proxy(_port(deployment), rate=RATE) as proxy:
        process = start_client(
            client, deployment, endpoint=proxy.url, file=path, state=state, args=args
        )
        try:
            proxy.wait_forwarded(9 * MiB)
            server = deployment.restart_after_crash()
            proxy.upstream_port = _port(deployment)
            output, _ = process.communicate(timeout=180)
        finally:
            if process.poll() is None:
                process.kill()
                # Reaped and its pipe closed here, not by the garbage collector during
                # a later test (a ResourceWarning that failed an unrelated test in CI).
                process.communicate(timeout=30)
        assert process.returncode == 0, output
        assert server.process.poll() is None
    assert_stored_once(deployment, path)


def _port(deployment: Deployment) -> int:
    return int(deployment.server.url.rsplit(":", 1)[1])


def _wait_for_offset_above(deployment: Deployment, state: Path, floor: int) -> int:
    deadline = time.monotonic() + 15
    while (offset := _offset_of_only_upload(deployment, state)) <= floor:
        assert time.monotonic() < deadline, f"the bytes after {floor} were not kept"
        time.sleep(0.1)
    return offset


def _offset_of_only_upload(deployment: Deployment, state: Path) -> int:
    """Asks the server (HEAD) where the upload the client recorded stands."""
    text = state.read_text()
    urls = list(_urls_in(json.loads(text)))
    assert len(urls) == 1, text
    path = "/api/v1/uploads/" + urls[0].rstrip("/").rsplit("/", 1)[-1]
    head = httpx.head(
        f"{deployment.server.url}{path}", headers={**deployment.auth, "Tus-Resumable": "1.0.0"}
    )
    assert head.status_code == 200, head.headers
    return int(head.headers["upload-offset"])


def _urls_in(value: object) -> Iterator[str]:
    if isinstance(value, str) and "/api/v1/uploads/" in value:
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _urls_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _urls_in(item)


APP_SECRET = "the-application-backend-secret-" + "t" * 16


def app_token(subject: str, serial: int) -> str:
    """A token the application's backend signs (HS256); each serial makes another token."""
    now = int(time.time())
    claims = {"sub": subject, "iat": now, "exp": now + 300, "jti": f"{subject}-{serial}"}
    return jwt.encode(claims, APP_SECRET, algorithm="HS256")


def run_js_client(
    server: Server, *, tokens: list[str], file: Path, state: Path, chunk: int
) -> tuple[int, list[dict[str, object]], str]:
    """tus-js-client with request n carrying ``tokens[n]`` (the last one from then on)."""
    command, cwd = client_command(
        "tus-js-client",
        endpoint=f"{server.url}/api/v1/uploads",
        token=",".join(tokens),
        file=file,
        state=state,
        args=[str(chunk)],
    )
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done.returncode, events, done.stdout + done.stderr


def sent_with(events: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(e["method"], e["token"]) for e in events if e["event"] == "request"]


def test_tus_js_client_swapping_in_refreshed_tokens_finishes_and_another_subject_gets_404(
    tmp_path: Path,
) -> None:
    """An upload belongs to its subject, not to the token that created it."""
    env = {
        "SEAU_DATA_DIR": str(tmp_path / "data"),
        "SEAU_MAX_UPLOAD_BYTES": str(64 * MiB),
        "SEAU_APP_JWT_SECRET": APP_SECRET,
    }
    ada = [app_token("ada", serial) for serial in range(4)]
    bob = app_token("bob", 0)
    assert len({*ada, bob}) == 5
    path = random_file(tmp_path, 5 * MiB + 11)
    state = tmp_path / "state.json"
    with seau_server(env, cwd=tmp_path) as server:
        # Created with one token, one PATCH with a refreshed one, then bob's: 404, which
        # tus-js-client does not retry.
        code, events, output = run_js_client(
            server, tokens=[ada[0], ada[1], bob], file=path, state=state, chunk=2 * MiB
        )
        assert code == 1, output
        assert sent_with(events) == [("POST", 0), ("PATCH", 1), ("PATCH", 2)]
        assert "response code: 404" in str(events[-1]["message"]), output
        (upload_url,) = _urls_in(json.loads(state.read_text()))
        tus = {"Tus-Resumable": "1.0.0"}
        for token in (bob, ada[2]):
            head = httpx.head(upload_url, headers={**tus, "Authorization": f"Bearer {token}"})
            assert head.status_code == (404 if token == bob else 200), token
        assert head.headers["upload-offset"] == str(2 * MiB)
        patch = httpx.patch(
            upload_url,
            content=b"not bob's",
            headers={
                **tus,
                "Authorization": f"Bearer {bob}",
                "Upload-Offset": str(2 * MiB),
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert patch.status_code == 404

        # Resumed with yet other tokens of ada's, each request with a new one.
        code, events, output = run_js_client(
            server, tokens=ada[2:], file=path, state=state, chunk=2 * MiB
        )
        assert code == 0, output
        assert sent_with(events) == [("HEAD", 0), ("PATCH", 1), ("PATCH", 1)]
        assert events[-1] == {"event": "success", "url": upload_url}

        def names(token: str) -> list[str]:
            listed = httpx.get(
                f"{server.url}/api/v1/files", headers={"Authorization": f"Bearer {token}"}
            )
            assert listed.status_code == 200, listed.text
            return [item["name"] for item in listed.json()["items"]]

        assert names(ada[0]) == [path.name]
        assert names(bob) == []
        file_id = upload_url.rsplit("/", 1)[1]  # the finished upload is the file
        content = httpx.get(
            f"{server.url}/api/v1/files/{file_id}/content",
            headers={"Authorization": f"Bearer {ada[3]}"},
        )
        assert content.content == path.read_bytes()
