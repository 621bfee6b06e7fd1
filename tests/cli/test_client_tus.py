"""The client's resumable uploads (`seau.cli.client_tus`) against a real `seau serve`."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from seau.cli.client_errors import ResumableUploadError
from seau.cli.client_tus import upload_file
from seau.files.types import detect
from tests.support.server import Server, seau_server

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("tus-client-server")
    env = {"SEAU_DATA_DIR": str(tmp / "data"), "SEAU_MAX_UPLOAD_BYTES": str(32 * MiB)}
    with seau_server(env, cwd=tmp) as running:
        yield running


@pytest.fixture
async def http(server: Server) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """A client of the server, and the headers that authenticate a fresh user."""
    email, password = f"tus-{secrets.token_hex(4)}@example.com", "client password"
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        await client.post("/api/v1/users", json={"email": email, "password": password})
        token = (
            await client.post("/api/v1/auth/token", data={"username": email, "password": password})
        ).json()["access_token"]
        yield client, {"Authorization": f"Bearer {token}"}


class Interrupted(Exception):
    pass


async def test_upload_in_chunks_returns_the_file_and_reports_progress(
    http: tuple[httpx.AsyncClient, dict[str, str]], tmp_path: Path
) -> None:
    client, auth = http
    path = tmp_path / "report.pdf"
    path.write_bytes(os.urandom(5 * MiB + 17))
    seen: list[int] = []
    file, resumed = await upload_file(
        client,
        path,
        headers=auth,
        chunk_size=2 * MiB,
        progress=lambda done, total: seen.append(done),
    )
    assert resumed == 0
    assert file["name"] == "report.pdf"
    # The name's claim is kept; random bytes are detected as what they are.
    data = path.read_bytes()
    assert (file["content_type"], file["declared_type"]) == (detect(data), "application/pdf")
    assert file["sha256"] == hashlib.sha256(data).hexdigest()
    assert seen == sorted(seen), "nothing was lost, so progress never went back"
    assert {0, MiB, 2 * MiB, 4 * MiB, 5 * MiB + 17} <= set(seen)


async def test_an_interrupted_upload_resumes_from_the_state_file(
    http: tuple[httpx.AsyncClient, dict[str, str]], tmp_path: Path
) -> None:
    client, auth = http
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(7 * MiB))
    state = tmp_path / "state" / "uploads.json"

    def stop_inside_the_third_chunk(done: int, total: int) -> None:
        if done >= 5 * MiB:
            raise Interrupted

    with pytest.raises(Interrupted):
        await upload_file(
            client,
            path,
            headers=auth,
            chunk_size=2 * MiB,
            state_file=state,
            progress=stop_inside_the_third_chunk,
        )
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert str(path) in state.read_text()

    seen: list[int] = []
    file, resumed = await upload_file(
        client,
        path,
        headers=auth,
        chunk_size=2 * MiB,
        state_file=state,
        progress=lambda done, total: seen.append(done),
        retry_delay=0.1,
    )
    # The cut third chunk was covered by a checksum: the server kept none of it.
    assert resumed == 4 * MiB
    assert seen[0] == 4 * MiB, "the second run starts where the server stands"
    assert file["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    listed = (await client.get("/api/v1/files", params={"q": "big.bin"}, headers=auth)).json()
    assert len(listed["items"]) == 1
    assert json.loads(state.read_text()) == {}


async def test_a_file_changed_between_runs_is_not_left_on_the_server(
    http: tuple[httpx.AsyncClient, dict[str, str]], tmp_path: Path
) -> None:
    client, auth = http
    path = tmp_path / "edited.bin"
    path.write_bytes(os.urandom(3 * MiB))
    state = tmp_path / "uploads.json"

    def stop_after_the_first_chunk(done: int, total: int) -> None:
        if done > MiB:
            raise Interrupted

    with pytest.raises(Interrupted):
        await upload_file(
            client,
            path,
            headers=auth,
            chunk_size=MiB,
            state_file=state,
            progress=stop_after_the_first_chunk,
        )
    # Same size and modification time, other bytes in what the server already has:
    # only the final SHA-256 comparison can tell.
    before = path.stat()
    with path.open("r+b") as handle:
        handle.write(b"edited")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    with pytest.raises(ResumableUploadError, match="the file changed while it was uploaded"):
        await upload_file(
            client, path, headers=auth, chunk_size=MiB, state_file=state, retry_delay=0.1
        )
    listed = (await client.get("/api/v1/files", params={"q": "edited.bin"}, headers=auth)).json()
    assert listed["items"] == []
    assert json.loads(state.read_text()) == {}, "the next run starts over"


async def test_a_file_above_the_limit_is_refused_with_the_servers_reason(
    http: tuple[httpx.AsyncClient, dict[str, str]], tmp_path: Path
) -> None:
    client, auth = http
    path = tmp_path / "huge.bin"
    with path.open("wb") as out:
        out.truncate(33 * MiB)
    with pytest.raises(ResumableUploadError, match="file_too_large") as caught:
        await upload_file(client, path, headers=auth)
    assert caught.value.status == 413
    assert not caught.value.resumable
