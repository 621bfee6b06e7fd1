"""seau's own resumable client (`seau.uploads.client`) against a real server."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from seau.uploads.client import ResumableUploadError, upload_file
from tests.support.server import Server, seau_server

MiB = 1024 * 1024


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    env = {"SEAU_DATA_DIR": str(tmp_path / "data"), "SEAU_MAX_UPLOAD_BYTES": str(32 * MiB)}
    with seau_server(env, cwd=tmp_path) as running:
        yield running


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    email, password = f"cli-{secrets.token_hex(4)}@example.com", "client password"
    with httpx.Client(base_url=server.url, timeout=60) as client:
        client.post("/api/v1/users", json={"email": email, "password": password})
        token = client.post(
            "/api/v1/auth/token", data={"username": email, "password": password}
        ).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


class Interrupted(Exception):
    pass


def test_upload_in_chunks_returns_the_file(http: httpx.Client, tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(os.urandom(5 * MiB + 17))
    seen: list[int] = []
    file = upload_file(
        http, path, chunk_size=2 * MiB, progress=lambda sent, total: seen.append(sent)
    )
    assert file["name"] == "report.pdf"
    assert file["content_type"] == "application/pdf"
    assert file["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert seen == [0, 2 * MiB, 4 * MiB, 5 * MiB + 17]


def test_an_interrupted_upload_resumes_from_the_state_file(
    http: httpx.Client, tmp_path: Path
) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(7 * MiB))
    state = tmp_path / "state" / "uploads.json"

    def stop_after_two_chunks(sent: int, total: int) -> None:
        if sent >= 4 * MiB:
            raise Interrupted

    with pytest.raises(Interrupted):
        upload_file(
            http, path, chunk_size=2 * MiB, state_file=state, progress=stop_after_two_chunks
        )
    assert state.exists()

    seen: list[int] = []
    file = upload_file(
        http, path, chunk_size=2 * MiB, state_file=state, progress=lambda s, t: seen.append(s)
    )
    assert seen[0] == 4 * MiB, "the second run starts where the first stopped"
    assert file["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    listed = http.get("/api/v1/files", params={"q": "big.bin"}).json()["items"]
    assert len(listed) == 1
    assert "big.bin" not in state.read_text()


def test_a_file_above_the_limit_is_refused_with_the_servers_reason(
    http: httpx.Client, tmp_path: Path
) -> None:
    path = tmp_path / "huge.bin"
    with path.open("wb") as out:
        out.truncate(33 * MiB)
    with pytest.raises(ResumableUploadError, match="file_too_large") as caught:
        upload_file(http, path)
    assert caught.value.status == 413
