"""`seau webhook add|list|rm|failures|replay`, as an operator runs them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_server_commands import seau


def test_webhook_commands_add_list_and_remove_receivers(tmp_path: Path) -> None:
    env = {"SEAU_DATA_DIR": str(tmp_path / "data")}
    added = seau(
        "webhook", "add", "https://app.example/hook", "--events", "file.ready", "--json",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    endpoint = json.loads(added.stdout)
    assert endpoint["secret"].startswith("whsec_")
    assert endpoint["events"] == ["file.ready"]

    listed = seau("webhook", "list", "--json", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    assert [e["id"] for e in json.loads(listed.stdout)] == [endpoint["id"]]
    assert "whsec_" not in listed.stdout

    wrong = seau(
        "webhook", "add", "https://x/y", "--events", "file.exploded", cwd=tmp_path, env=env
    )
    assert wrong.returncode == 2
    assert "unknown event type" in wrong.stderr

    failures = seau("webhook", "failures", cwd=tmp_path, env=env)
    assert failures.returncode == 0, failures.stderr
    assert "no failed deliveries" in failures.stdout
    missing = seau(
        "webhook", "replay", "00000000-0000-0000-0000-000000000000", cwd=tmp_path, env=env
    )
    assert missing.returncode == 1

    removed = seau("webhook", "rm", endpoint["id"], cwd=tmp_path, env=env)
    assert removed.returncode == 0, removed.stderr
    assert json.loads(seau("webhook", "list", "--json", cwd=tmp_path, env=env).stdout) == []
    again = seau("webhook", "rm", endpoint["id"], cwd=tmp_path, env=env)
    assert again.returncode == 1
    assert "No such webhook" in again.stderr
