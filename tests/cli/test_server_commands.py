from __future__ import annotations

import os
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import httpx

from tests.support.server import SEAU, seau_server, server_env


def seau(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SEAU, *args],
        cwd=cwd,
        env=server_env(env or {}),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version_and_help(tmp_path: Path) -> None:
    version = seau("--version", cwd=tmp_path)
    assert version.returncode == 0
    assert version.stdout.startswith("seau ")
    for command in ([], ["serve"], ["db"], ["db", "sql"], ["user", "create"]):
        result = seau(*command, "--help", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "Usage" in result.stdout


def test_db_sql_prints_the_ddl_for_each_dialect(tmp_path: Path) -> None:
    for dialect, marker in (("mysql", "utf8mb4"), ("postgresql", "UUID"), ("sqlite", "CHAR(32)")):
        result = seau("db", "sql", "--dialect", dialect, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "CREATE TABLE user_file" in result.stdout
        assert marker in result.stdout


def test_invalid_configuration_stops_serve_with_one_line(tmp_path: Path) -> None:
    for env, name in (
        ({"SEAU_MAX_UPLOAD_BYTES": "a lot"}, "SEAU_MAX_UPLOAD_BYTES"),
        ({"SEAU_DATABASE_URL": "postgresql://u@127.0.0.1/x"}, "SEAU_SECRET_KEY"),
        ({"SEAU_STORAGE_URL": "gopher://x"}, "SEAU_STORAGE_URL"),
    ):
        result = seau("serve", cwd=tmp_path, env=env)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert name in lines[0]
        assert "Traceback" not in result.stderr


def test_unreachable_database_stops_serve_with_one_line(tmp_path: Path) -> None:
    env = {"SEAU_DATABASE_URL": "postgresql://u:hunter2@127.0.0.1:1/x", "SEAU_SECRET_KEY": "k" * 40}
    result = seau("serve", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert "cannot reach the database" in result.stderr
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr


def test_db_upgrade_then_user_create_and_list(tmp_path: Path) -> None:
    upgraded = seau("db", "upgrade", cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    tables = {
        row[0]
        for row in sqlite3.connect(tmp_path / "seau-data" / "seau.db").execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        )
    }
    assert {"user_account", "user_file"} <= tables
    created = seau(
        "user",
        "create",
        "--email",
        "Admin@Example.com",
        "--admin",
        cwd=tmp_path,
        env={"SEAU_USER_PASSWORD": "admin password"},
    )
    assert created.returncode == 0, created.stderr
    again = seau(
        "user",
        "create",
        "--email",
        "admin@example.com",
        cwd=tmp_path,
        env={"SEAU_USER_PASSWORD": "admin password"},
    )
    assert again.returncode == 1
    assert "already exists" in again.stderr
    listed = seau("user", "list", cwd=tmp_path)
    assert "admin@example.com" in listed.stdout
    assert "yes" in listed.stdout


def test_user_delete_and_gc_take_the_settings_serve_takes(tmp_path: Path) -> None:
    # A relative `file:` storage URL, resolved under SEAU_DATA_DIR: `seau serve`
    # accepts it, so every command that reaches the store must accept it too.
    data = tmp_path / "data"
    env = {"SEAU_DATA_DIR": str(data), "SEAU_STORAGE_URL": "file:objects"}
    email, password = "someone@example.com", "a long enough password"
    with seau_server(env, cwd=tmp_path) as server:
        signed_up = httpx.post(
            f"{server.url}/api/v1/users", json={"email": email, "password": password}, timeout=30
        )
        assert signed_up.status_code == 201, signed_up.text
        token = httpx.post(
            f"{server.url}/api/v1/auth/token",
            data={"username": email, "password": password},
            timeout=30,
        ).json()["access_token"]
        uploaded = httpx.post(
            f"{server.url}/api/v1/files",
            params={"name": "kept.txt"},
            content=b"kept until the account goes",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert uploaded.status_code == 201, uploaded.text
    file_id = uuid.UUID(uploaded.json()["id"]).hex
    stored = data / "objects" / "files" / file_id[:2] / file_id
    assert stored.is_file()
    orphan = data / "objects" / "files" / "ab" / ("ab" + "0" * 30)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"no row names me")
    week_ago = time.time() - 7 * 24 * 3600
    os.utime(orphan, (week_ago, week_ago))

    deleted = seau("user", "delete", "--email", email, "--yes", cwd=tmp_path, env=env)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == f"deleted {email} and 1 files (27 bytes)"
    assert not stored.exists()

    collected = seau("gc", cwd=tmp_path, env=env)
    assert collected.returncode == 0, collected.stderr
    assert "orphan objects: 1 found" in collected.stdout
    assert not orphan.exists()
