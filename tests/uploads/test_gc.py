"""`seau gc` reclaims expired resumable uploads and says how many."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.moto import make_bucket, pending_multipart_uploads
from tests.support.server import SEAU, seau_server, server_env
from tests.uploads.helpers import OFFSET_STREAM, TUS, metadata

MiB = 1024 * 1024


@pytest.mark.parametrize("store", ["local", "s3"])
def test_seau_gc_removes_expired_uploads_and_counts_them(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = {"SEAU_DATA_DIR": str(tmp_path / "data"), "SEAU_UPLOAD_EXPIRY_SECONDS": "1"}
    bucket = endpoint = ""
    if store == "s3":
        endpoint = request.getfixturevalue("s3_server").endpoint_url
        bucket = make_bucket(endpoint)
        env |= {
            "SEAU_STORAGE_URL": f"s3://{bucket}",
            "SEAU_S3_PATH_STYLE": "true",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        }
    with seau_server(env, cwd=tmp_path) as server:
        email, password = f"gc-{secrets.token_hex(4)}@example.com", "collect me please"
        httpx.post(f"{server.url}/api/v1/users", json={"email": email, "password": password})
        token = httpx.post(
            f"{server.url}/api/v1/auth/token", data={"username": email, "password": password}
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}", **TUS}
        created = httpx.post(
            f"{server.url}/api/v1/uploads",
            headers={
                **auth,
                "Upload-Length": str(20 * MiB),
                "Upload-Metadata": metadata(filename="x"),
            },
        )
        location = f"{server.url}{created.headers['location']}"
        sent = httpx.patch(
            location,
            headers={**auth, **OFFSET_STREAM, "Upload-Offset": "0"},
            content=os.urandom(7 * MiB),
        )
        assert sent.status_code == 204
        time.sleep(1.5)
        assert httpx.head(location, headers=auth).status_code == 410

    done = subprocess.run(
        [SEAU, "gc"], env=server_env(env), cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "expired_uploads: 1 removed" in done.stdout, done.stdout
    if store == "s3":
        assert pending_multipart_uploads(endpoint, bucket) == []
    else:
        assert list((tmp_path / "data" / "objects" / ".tmp" / "uploads").iterdir()) == []
