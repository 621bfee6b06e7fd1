"""Two real `seau serve` processes sharing one MariaDB and one S3 server."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.support.databases import scratch_database
from tests.support.moto import make_bucket
from tests.support.server import Server, seau_server


@pytest.fixture
def two_instances(s3_server: object, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    endpoint = s3_server.endpoint_url  # type: ignore[attr-defined]
    with scratch_database("mysql", tmp_path) as database_url:
        env = {
            "SEAU_DATABASE_URL": database_url.replace("mysql+aiomysql://", "mariadb://"),
            "SEAU_STORAGE_URL": f"s3://{make_bucket(endpoint)}",
            "SEAU_SECRET_KEY": secrets.token_urlsafe(40),
            "SEAU_S3_PATH_STYLE": "true",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        }
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        with ExitStack() as stack, ThreadPoolExecutor(2) as pool:
            # Both start at once: their migrations race and must not collide.
            futures = [
                pool.submit(stack.enter_context, seau_server(env, cwd=tmp_path / d))
                for d in ("a", "b")
            ]
            a, b = (f.result() for f in futures)
            yield a, b


def test_upload_through_one_instance_and_use_it_through_the_other(
    two_instances: tuple[Server, Server],
) -> None:
    a, b = two_instances
    email, password = f"multi-{secrets.token_hex(4)}@example.com", "shared password"
    with (
        httpx.Client(base_url=a.url, timeout=30) as ca,
        httpx.Client(base_url=b.url, timeout=30) as cb,
    ):
        assert (
            ca.post("/api/v1/users", json={"email": email, "password": password}).status_code == 201
        )
        token = cb.post("/api/v1/auth/token", data={"username": email, "password": password})
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}

        data = os.urandom(7 * 1024 * 1024 + 5)
        created = ca.post(
            "/api/v1/files",
            headers=auth,
            files=[("file", ("shared.bin", data, "application/octet-stream"))],
        )
        assert created.status_code == 201, created.text
        file = created.json()["files"][0]

        listed = cb.get("/api/v1/files", headers=auth).json()["items"]
        assert [f["id"] for f in listed] == [file["id"]]
        download = cb.get(f"/api/v1/files/{file['id']}/content", headers=auth)
        assert download.status_code == 200
        assert hashlib.sha256(download.content).hexdigest() == hashlib.sha256(data).hexdigest()
        part = cb.get(
            f"/api/v1/files/{file['id']}/content", headers={**auth, "Range": "bytes=1000-1999"}
        )
        assert part.content == data[1000:2000]

        assert (
            ca.patch(
                f"/api/v1/files/{file['id']}", json={"name": "renamed.bin"}, headers=auth
            ).status_code
            == 200
        )
        assert cb.get(f"/api/v1/files/{file['id']}", headers=auth).json()["name"] == "renamed.bin"

        assert cb.delete(f"/api/v1/files/{file['id']}", headers=auth).status_code == 204
        assert ca.get(f"/api/v1/files/{file['id']}", headers=auth).status_code == 404
        assert ca.get(f"/api/v1/files/{file['id']}/content", headers=auth).status_code == 404
        assert ca.get("/api/v1/files", headers=auth).json()["items"] == []
