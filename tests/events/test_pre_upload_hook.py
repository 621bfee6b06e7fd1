"""The pre-upload hook, end to end: a real `seau serve` on each database asks a real
HTTP hook on 127.0.0.1, which checks every request with the `standardwebhooks`
package from PyPI, before any byte of a multipart, raw or tus upload is stored.

The hook refuses names ending in `.exe` with a reason, sleeps past seau's timeout
for names starting with `slow`, and answers 500 for names starting with `broken`.
A refused upload must leave nothing: no row, no object, no staging.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from standardwebhooks.webhooks import Webhook

from seau.settings import Settings
from tests.conftest import TEST_SECRET
from tests.support.databases import Kind, scratch_database
from tests.support.server import Server, seau_server

HOOK_SECRET = "whsec_" + base64.b64encode(b"seau pre-upload hook secret 32b").decode()
TIMEOUT = 0.5
PASSWORD = "correct horse battery"
TUS = {"Tus-Resumable": "1.0.0"}


@dataclass
class Hook:
    url: str = ""
    asked: list[dict[str, Any]] = field(default_factory=list)
    """Every verified request's body, in arrival order."""
    refused: list[str] = field(default_factory=list)
    """Why requests that failed verification did."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def names(self) -> list[str]:
        with self.lock:
            return [body["name"] for body in self.asked]


@pytest.fixture(scope="module")
def hook() -> Iterator[Hook]:
    state = Hook()
    verifier = Webhook(HOOK_SECRET)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            try:
                verifier.verify(body, {k.lower(): v for k, v in self.headers.items()})
            except Exception as exc:
                with state.lock:
                    state.refused.append(str(exc))
                self._answer(400, {})
                return
            asked = json.loads(body)
            with state.lock:
                state.asked.append(asked)
            name: str = asked["name"]
            if name.endswith(".exe"):
                self._answer(422, {"reason": "no executables, please"})
            elif name.startswith("slow"):
                time.sleep(TIMEOUT * 3)
                self._answer(200, {})
            elif name.startswith("broken"):
                self._answer(500, {"reason": "not shown"})
            else:
                self._answer(204, None)

        def _answer(self, status: int, payload: dict[str, str] | None) -> None:
            data = b"" if payload is None else json.dumps(payload).encode()
            # seau may have stopped waiting (the slow answer) and closed the connection.
            with suppress(ConnectionError):
                self.send_response(status)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/check"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Seau:
    server: Server
    database: str
    data: Path
    auth: dict[str, str]


@contextmanager
def _start(
    hook: Hook, database: str, tmp: Path, *, fail_open: bool
) -> Iterator[tuple[Server, dict[str, str]]]:
    env = {
        "SEAU_DATA_DIR": str(tmp / "data"),
        "SEAU_DATABASE_URL": database,
        "SEAU_STORAGE_URL": (tmp / "objects").as_uri(),
        "SEAU_SECRET_KEY": TEST_SECRET,
        "SEAU_PRE_UPLOAD_HOOK_URL": hook.url,
        "SEAU_PRE_UPLOAD_HOOK_SECRET": HOOK_SECRET,
        "SEAU_PRE_UPLOAD_HOOK_TIMEOUT_SECONDS": str(TIMEOUT),
        "SEAU_PRE_UPLOAD_HOOK_FAIL_OPEN": "true" if fail_open else "false",
        "SEAU_LOG_LEVEL": "warning",
    }
    with seau_server(env, cwd=tmp) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            email = f"hooked-{len(hook.asked)}-{time.monotonic_ns()}@example.com"
            made = client.post("/api/v1/users", json={"email": email, "password": PASSWORD})
            assert made.status_code == 201, made.text
            token = client.post(
                "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
            )
            assert token.status_code == 200, token.text
        yield server, {"Authorization": f"Bearer {token.json()['access_token']}"}


@pytest.fixture(
    scope="module",
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgresql),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ],
)
def seau(
    request: pytest.FixtureRequest, hook: Hook, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Seau]:
    kind: Kind = request.param
    tmp = tmp_path_factory.mktemp(f"hook-{kind}")
    with (
        scratch_database(kind, tmp) as database,
        _start(hook, database, tmp, fail_open=False) as (server, auth),
    ):
        yield Seau(server, database, tmp, auth)


def _stored(seau: Seau) -> tuple[int, int, list[str]]:
    """Rows of files, rows of resumable uploads, and every file of the store."""

    async def count() -> tuple[int, int]:
        engine = create_async_engine(seau.database)
        try:
            async with engine.connect() as connection:
                files = await connection.scalar(text("SELECT count(*) FROM user_file"))
                uploads = await connection.scalar(text("SELECT count(*) FROM upload"))
                return int(files or 0), int(uploads or 0)
        finally:
            await engine.dispose()

    files, uploads = asyncio.run(count())
    objects = seau.data / "objects"
    on_disk = sorted(str(p.relative_to(objects)) for p in objects.rglob("*") if p.is_file())
    return files, uploads, on_disk


def _raw(client: httpx.Client, seau: Seau, name: str, data: bytes) -> httpx.Response:
    return client.post("/api/v1/files", params={"name": name}, content=data, headers=seau.auth)


def _multipart(client: httpx.Client, seau: Seau, *names: str) -> httpx.Response:
    return client.post(
        "/api/v1/files",
        files=[("file", (name, b"x" * 1000, "application/octet-stream")) for name in names],
        headers=seau.auth,
    )


def _tus(client: httpx.Client, seau: Seau, name: str, *, length: int | None) -> httpx.Response:
    metadata = "filename " + base64.b64encode(name.encode()).decode()
    sizing = {"Upload-Length": str(length)} if length is not None else {"Upload-Defer-Length": "1"}
    return client.post(
        "/api/v1/uploads", headers={**seau.auth, **TUS, **sizing, "Upload-Metadata": metadata}
    )


def test_the_hook_is_asked_signed_for_every_kind_of_upload(seau: Seau, hook: Hook) -> None:
    with httpx.Client(base_url=seau.server.url, timeout=30) as client:
        me = client.get("/api/v1/users/me", headers=seau.auth)
        assert me.status_code == 200, me.text
        start = len(hook.asked)
        assert _raw(client, seau, "notes.txt", b"hello").status_code == 201
        assert _multipart(client, seau, "a.png", "b.csv").status_code == 201
        assert _tus(client, seau, "movie.mp4", length=12345).status_code == 201
        assert _tus(client, seau, "later.bin", length=None).status_code == 201
    asked = hook.asked[start:]
    assert hook.refused == []
    subject = me.json()["subject"]
    assert subject
    assert {body["subject"] for body in asked} == {subject}
    assert [{k: v for k, v in body.items() if k != "subject"} for body in asked] == [
        {"name": "notes.txt", "size": 5, "content_type": "text/plain", "via": "raw"},
        {"name": "a.png", "size": None, "content_type": "image/png", "via": "multipart"},
        {"name": "b.csv", "size": None, "content_type": "text/csv", "via": "multipart"},
        {"name": "movie.mp4", "size": 12345, "content_type": "video/mp4", "via": "tus"},
        {"name": "later.bin", "size": None, "content_type": "application/octet-stream",
         "via": "tus"},
    ]  # fmt: skip


def _refused_and_nothing_left(
    seau: Seau, answer: httpx.Response, before: tuple[int, int, list[str]], *, status: int
) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert _stored(seau) == before
    problem: dict[str, Any] = answer.json()
    return problem


@pytest.mark.parametrize("way", ["raw", "multipart", "tus"])
def test_a_refusal_answers_403_with_the_hooks_reason_and_stores_nothing(
    seau: Seau, hook: Hook, way: str
) -> None:
    before = _stored(seau)
    with httpx.Client(base_url=seau.server.url, timeout=30) as client:
        if way == "raw":
            answer = _raw(client, seau, "setup.exe", b"MZ" * 5000)
        elif way == "multipart":
            # The first file is stored, then the second is refused: the request
            # as a whole leaves nothing.
            answer = _multipart(client, seau, f"fine-{way}.txt", "setup.exe")
        else:
            answer = _tus(client, seau, "setup.exe", length=10000)
    problem = _refused_and_nothing_left(seau, answer, before, status=403)
    assert problem["code"] == "rejected_by_hook"
    assert problem["detail"] == "no executables, please"
    assert hook.names()[-1] == "setup.exe"


@pytest.mark.parametrize("way", ["raw", "multipart", "tus"])
@pytest.mark.parametrize("name", ["slow.txt", "broken.txt"])
def test_a_hook_that_does_not_answer_refuses_with_503_and_stores_nothing(
    seau: Seau, hook: Hook, way: str, name: str
) -> None:
    before = _stored(seau)
    started = time.monotonic()
    with httpx.Client(base_url=seau.server.url, timeout=30) as client:
        if way == "raw":
            answer = _raw(client, seau, name, b"data" * 1000)
        elif way == "multipart":
            answer = _multipart(client, seau, name)
        else:
            answer = _tus(client, seau, name, length=4000)
    elapsed = time.monotonic() - started
    problem = _refused_and_nothing_left(seau, answer, before, status=503)
    assert problem["code"] == "hook_unavailable"
    assert "not shown" not in problem["detail"]
    assert answer.headers["retry-after"] == "5"  # SEAU_RETRY_AFTER_SECONDS
    # seau's own timeout, not the hook's sleep, ends the wait.
    assert elapsed < TIMEOUT * 3


def test_a_hook_that_fails_open_lets_uploads_proceed(hook: Hook, tmp_path: Path) -> None:
    with (
        scratch_database("sqlite", tmp_path) as database,
        _start(hook, database, tmp_path, fail_open=True) as (server, auth),
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        slow = client.post(
            "/api/v1/files", params={"name": "slow.txt"}, content=b"slow", headers=auth
        )
        assert slow.status_code == 201, slow.text
        broken = client.post(
            "/api/v1/files", files=[("file", ("broken.txt", b"b", "text/plain"))], headers=auth
        )
        assert broken.status_code == 201, broken.text
        # Failing open is for an unanswering hook only: a refusal still refuses.
        refused = client.post(
            "/api/v1/files", params={"name": "tool.exe"}, content=b"MZ", headers=auth
        )
        assert refused.status_code == 403, refused.text
        listed = client.get("/api/v1/files", headers=auth).json()["items"]
        assert sorted(item["name"] for item in listed) == ["broken.txt", "slow.txt"]


def test_the_hook_needs_a_secret_to_sign_with(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SEAU_PRE_UPLOAD_HOOK_SECRET"):
        Settings(data_dir=tmp_path, pre_upload_hook_url="http://127.0.0.1:9/check")
    with pytest.raises(ValueError, match="absolute http"):
        Settings(data_dir=tmp_path, pre_upload_hook_url="ftp://example", webhook_secret=HOOK_SECRET)
    webhooks_secret = Settings(
        data_dir=tmp_path,
        pre_upload_hook_url="http://127.0.0.1:9/check",
        webhook_secret=HOOK_SECRET,
    )
    assert webhooks_secret.pre_upload_hook_signing_secret == HOOK_SECRET
