"""A revoked personal token or service key is refused at once by every instance: two
real `seau serve` processes sharing one database (SQLite file, PostgreSQL, MariaDB)
and one object store, with the service key made and revoked by `seau apikey`."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.support.databases import Kind, scratch_database
from tests.support.server import SEAU, Server, seau_server, server_env

PASSWORD = "shared password"


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def cluster(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[dict[str, str], Server, Server]]:
    kind: Kind = request.param
    with scratch_database(kind, tmp_path) as database_url, ExitStack() as stack:
        env = {
            "SEAU_DATABASE_URL": database_url,
            "SEAU_STORAGE_URL": (tmp_path / "objects").as_uri(),
            "SEAU_SECRET_KEY": secrets.token_urlsafe(40),
            "SEAU_DATA_DIR": str(tmp_path / "data"),
        }
        servers = []
        for directory in ("a", "b"):
            (tmp_path / directory).mkdir()
            # One after the other: the first migrates, the second finds it done.
            servers.append(stack.enter_context(seau_server(env, cwd=tmp_path / directory)))
        yield env, servers[0], servers[1]


def apikey(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`seau apikey …` on a server's machine: the servers' settings, straight to the database."""
    return subprocess.run(
        [SEAU, "apikey", *args],
        cwd=cwd,
        env=server_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_revoked_token_is_refused_by_the_other_instance_at_once(
    cluster: tuple[dict[str, str], Server, Server], tmp_path: Path
) -> None:
    env, a, b = cluster
    email = f"pat-{secrets.token_hex(4)}@example.com"
    with (
        httpx.Client(base_url=a.url, timeout=30) as ca,
        httpx.Client(base_url=b.url, timeout=30) as cb,
    ):
        assert ca.post("/api/v1/users", json={"email": email, "password": PASSWORD}).is_success
        signed_in = ca.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
        session = bearer(signed_in.json()["access_token"])
        made = ca.post(
            "/api/v1/tokens",
            json={"name": "script", "scopes": ["files:read", "files:write"]},
            headers=session,
        )
        assert made.status_code == 201, made.text
        pat = bearer(made.json()["token"])
        kept = ca.post(
            "/api/v1/tokens", json={"name": "kept", "scopes": ["files:read"]}, headers=session
        ).json()

        # Made on A, good on B (and seen in B's list).
        uploaded = cb.post("/api/v1/files?name=a.txt", content=b"through b", headers=pat)
        assert uploaded.status_code == 201, uploaded.text
        assert made.json()["id"] in [
            t["id"] for t in cb.get("/api/v1/tokens", headers=session).json()
        ]
        assert ca.get("/api/v1/files", headers=pat).status_code == 200

        # Revoked on A: the very next request to B is refused, and A's too.
        assert ca.delete(f"/api/v1/tokens/{made.json()['id']}", headers=session).status_code == 204
        for client in (cb, ca):
            refused = client.get("/api/v1/files", headers=pat)
            assert refused.status_code == 401, refused.text
            assert refused.json()["code"] == "token_invalid"
        # The other token and the sign-in are untouched.
        assert cb.get("/api/v1/files", headers=bearer(kept["token"])).status_code == 200
        assert cb.get("/api/v1/files", headers=session).json()["items"][0]["name"] == "a.txt"

        # A service key made with `seau apikey create` beside the running servers.
        created = apikey(
            env, tmp_path, "create", "--name", "backend", "--scopes",
            "files:read,files:write,act-as", "--json",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        key = json.loads(created.stdout)
        acting = {**bearer(key["token"]), "Seau-Subject": "user_2abc"}
        sent = ca.post("/api/v1/files?name=for-user.txt", content=b"for them", headers=acting)
        assert sent.status_code == 201, sent.text
        listed = cb.get("/api/v1/files", headers=acting).json()["items"]
        assert [f["id"] for f in listed] == [sent.json()["id"]]

        revoked = apikey(env, tmp_path, "revoke", key["id"])
        assert revoked.returncode == 0, revoked.stderr
        for client in (ca, cb):
            refused = client.get("/api/v1/files", headers=acting)
            assert refused.status_code == 401, refused.text
            assert refused.json()["code"] == "token_invalid"
