"""An upgrade from the last release finds everything the release stored.

The last release is commit 1d80489 (migration head 0002), the last to pass CI before
the work that added migrations 0003 to 0007 (e-mail collation, name search, owners as
subjects, webhooks, shares). It is taken from this checkout's git history, installed
into a scratch virtual environment (requirements.lock, hashes checked, then the release
itself without dependencies) and served on a fresh database and store, where a user
signs up and uploads: a raw body, a multipart request of two files, a finished tus
upload and one left half-way. Then the current `seau serve` starts on the same
database and store, which migrates them at start-up (`SEAU_AUTO_MIGRATE`, on by
default), and must find the account, every file with the same bytes, and the half-way
upload where it was left, ready to resume.

A clone has the history this needs; without it (a shallow clone, an unpacked wheel)
the test skips, saying so: the missing history is the checkout's, not seau's.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import os
import subprocess
import tarfile
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from seau.db.migrate import alembic_config
from tests.support.databases import Kind, scratch_database
from tests.support.server import Server, seau_server

ROOT = Path(__file__).resolve().parents[2]
RELEASE = "1d80489cc65d858667afd90be57f979ac72384a1"
RELEASE_HEAD = "0002"
SECRET = "upgrade-test-secret-" + "u" * 44
PASSWORD = "correct horse battery"
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture(scope="module")
def release_seau(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The release's `seau` command, installed into a virtual environment of its own."""
    tmp = tmp_path_factory.mktemp("release")
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", RELEASE],
        capture_output=True,
        check=False,
        timeout=60,
    )
    if archive.returncode != 0:
        pytest.skip(f"no release {RELEASE[:7]} in git history: {archive.stderr.decode()!r}")
    source = tmp / "source"
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(source, filter="data")
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=True)
    # --no-compile: no bytecode written ahead for a throwaway environment (about a
    # quarter of the install's time).
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile"]
    # The release's dependencies are a subset of today's lock, at the versions it had.
    lock = str(ROOT / "requirements.lock")
    subprocess.run([*pip, "--require-hashes", "-r", lock], check=True, timeout=600)
    subprocess.run(
        [*pip, "--no-deps", "--no-build-isolation", str(source)], check=True, timeout=300
    )
    return str(env_dir / "bin" / "seau")


@dataclass(frozen=True)
class Stored:
    name: str
    sha256: str
    size: int


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _token(client: httpx.Client, email: str) -> dict[str, str]:
    answer = client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _listing(client: httpx.Client, auth: dict[str, str]) -> dict[str, Stored]:
    answer = client.get("/api/v1/files", headers=auth, params={"limit": 1000})
    assert answer.status_code == 200, answer.text
    found: dict[str, Stored] = {}
    for item in answer.json()["items"]:
        content = client.get(f"/api/v1/files/{item['id']}/content", headers=auth)
        assert content.status_code == 200, content.text
        found[item["id"]] = Stored(item["name"], _digest(content.content), len(content.content))
    return found


def _current_head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _schema_revision(url: str) -> str:
    async def read() -> str:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                result = await connection.execute(text("SELECT version_num FROM alembic_version"))
                return str(result.scalar_one())
        finally:
            await engine.dispose()

    return asyncio.run(read())


@dataclass
class Before:
    email: str
    files: dict[str, Stored]
    pending_path: str
    pending_data: bytes
    pending_offset: int


def _fill(server: Server) -> Before:
    """What a user of the release leaves behind: files of every kind of upload and a
    resumable upload half-way."""
    email = f"upgrader-{os.getpid()}@example.com"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        signed_up = client.post("/api/v1/users", json={"email": email, "password": PASSWORD})
        assert signed_up.status_code == 201, signed_up.text
        auth = _token(client, email)

        raw = os.urandom(300_000)
        made = client.post("/api/v1/files", params={"name": "raw.bin"}, content=raw, headers=auth)
        assert made.status_code == 201, made.text

        parts = {"first.txt": b"first file\n" * 1000, "second.bin": os.urandom(70_000)}
        made = client.post(
            "/api/v1/files",
            files=[
                ("file", (name, data, "application/octet-stream")) for name, data in parts.items()
            ],
            headers=auth,
        )
        assert made.status_code == 201, made.text
        assert len(made.json()["files"]) == 2

        finished = os.urandom(250_000)
        location = _tus_create(client, auth, len(finished), "resumed.bin")
        _tus_patch(client, auth, location, finished[:100_000], offset=0)
        _tus_patch(client, auth, location, finished[100_000:], offset=100_000)

        pending = os.urandom(200_000)
        pending_path = _tus_create(client, auth, len(pending), "half-way.bin")
        _tus_patch(client, auth, pending_path, pending[:120_000], offset=0)

        files = _listing(client, auth)
    expected = {
        Stored("raw.bin", _digest(raw), len(raw)),
        *(Stored(name, _digest(data), len(data)) for name, data in parts.items()),
        Stored("resumed.bin", _digest(finished), len(finished)),
    }
    assert set(files.values()) == expected
    return Before(email, files, pending_path, pending, 120_000)


def _tus_create(client: httpx.Client, auth: dict[str, str], length: int, name: str) -> str:
    metadata = "filename " + base64.b64encode(name.encode()).decode()
    created = client.post(
        "/api/v1/uploads",
        headers={**auth, **TUS, "Upload-Length": str(length), "Upload-Metadata": metadata},
    )
    assert created.status_code == 201, created.text
    return httpx.URL(created.headers["location"]).path


def _tus_patch(
    client: httpx.Client, auth: dict[str, str], path: str, data: bytes, *, offset: int
) -> httpx.Response:
    answer = client.patch(
        path,
        headers={
            **auth,
            **TUS,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
        },
        content=data,
    )
    assert answer.status_code == 204, answer.text
    return answer


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgresql),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ]
)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    kind: Kind = request.param
    with scratch_database(kind, tmp_path) as url:
        yield url


def test_an_upgrade_from_the_last_release_finds_everything(
    release_seau: str, database: str, tmp_path: Path
) -> None:
    env = {
        "SEAU_DATA_DIR": str(tmp_path / "data"),
        "SEAU_DATABASE_URL": database,
        "SEAU_SECRET_KEY": SECRET,
        "SEAU_LOG_LEVEL": "warning",
    }
    with seau_server(env, cwd=tmp_path, seau=release_seau) as old:
        before = _fill(old)
    assert _schema_revision(database).startswith(RELEASE_HEAD)

    with seau_server(env, cwd=tmp_path) as new:
        assert _schema_revision(database) == _current_head()
        with httpx.Client(base_url=new.url, timeout=30) as client:
            assert client.get("/readyz").status_code == 200
            auth = _token(client, before.email)
            assert _listing(client, auth) == before.files

            # The upload left half-way resumes where it stopped, and completes.
            state = client.head(before.pending_path, headers={**auth, **TUS})
            assert state.status_code == 200, state.text
            assert int(state.headers["upload-offset"]) == before.pending_offset
            rest = before.pending_data[before.pending_offset :]
            _tus_patch(client, auth, before.pending_path, rest, offset=before.pending_offset)
            after = _listing(client, auth)
    pending = before.pending_data
    assert set(after.values()) == {
        *before.files.values(),
        Stored("half-way.bin", _digest(pending), len(pending)),
    }
    assert "Traceback" not in new.log.read_text(errors="replace")
