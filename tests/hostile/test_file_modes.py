"""What seau writes under its data directory is its own user's alone, whatever the umask.

Issue 17, finding 7: the data directory, `seau.db` (password hashes) and every stored
object and staging file were created 0755/0644 under the usual umask 022.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.server import seau_server

TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_STREAM = {"Content-Type": "application/offset+octet-stream"}


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    # The server inherits it when it is started; the test process gets its own back.
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def _modes(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (``root`` included) whose mode is not 0700/0600."""
    wrong: dict[str, str] = {}
    for path in [root, *root.rglob("*")]:
        info = path.lstat()
        mode = stat.S_IMODE(info.st_mode)
        expected = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
        if mode != expected:
            wrong[str(path.relative_to(root.parent))] = oct(mode)
    return wrong


def test_data_directory_objects_staging_and_database_are_private_under_umask_022(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    env = {
        "SEAU_DATA_DIR": str(data),
        "SEAU_LOG_LEVEL": "warning",
        "SEAU_GC_INTERVAL_SECONDS": "0",
    }
    with _umask(0o022), seau_server(env, cwd=tmp_path) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            email, password = "modes@example.com", "correct horse battery"
            assert (
                client.post("/api/v1/users", json={"email": email, "password": password})
            ).status_code == 201
            token = client.post(
                "/api/v1/auth/token", data={"username": email, "password": password}
            ).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}

            raw = client.post(
                "/api/v1/files", params={"name": "raw.txt"}, content=b"raw", headers=auth
            )
            assert raw.status_code == 201, raw.text
            multipart = client.post(
                "/api/v1/files", files={"file": ("form.txt", b"form")}, headers=auth
            )
            assert multipart.status_code == 201, multipart.text

            # One tus upload finished, one left half way: its staging file stays.
            for length, sent in ((6, b"tusdat"), (10, b"half")):
                created = client.post(
                    "/api/v1/uploads",
                    headers={**auth, **TUS, "Upload-Length": str(length)},
                )
                assert created.status_code == 201, created.text
                patched = client.patch(
                    created.headers["location"],
                    headers={**auth, **TUS, **OFFSET_STREAM, "Upload-Offset": "0"},
                    content=sent,
                )
                assert patched.status_code == 204, patched.text

        staging = list((data / "objects" / ".tmp").rglob("*"))
        assert [p for p in staging if p.is_file()], "no staging file to look at"
        names = {p.name for p in data.iterdir()}
        assert {"seau.db", "seau.db-wal", "seau.db-shm", "secret_key", "objects"} <= names
        assert _modes(data) == {}
