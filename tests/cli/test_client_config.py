"""Where the client keeps servers and tokens, and which ones a command uses."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from seau.cli.client_config import (
    DEFAULT_SERVER,
    Stored,
    config_path,
    current,
    normalize_server,
    read_config,
    upload_state_path,
    write_config,
)
from seau.cli.client_errors import ConfigError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SEAU_SERVER", raising=False)
    monkeypatch.delenv("SEAU_TOKEN", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)


def test_the_file_lives_under_xdg_config_home_or_dot_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert config_path() == tmp_path / "home" / ".config" / "seau" / "config.json"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_path() == tmp_path / "xdg" / "seau" / "config.json"
    # The XDG spec: a relative value is ignored.
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative")
    assert config_path() == tmp_path / "home" / ".config" / "seau" / "config.json"


def test_unfinished_uploads_are_remembered_under_xdg_cache_home_or_dot_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert upload_state_path() == tmp_path / "home" / ".cache" / "seau" / "uploads.json"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert upload_state_path() == tmp_path / "cache" / "seau" / "uploads.json"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")
    assert upload_state_path() == tmp_path / "home" / ".cache" / "seau" / "uploads.json"


def test_writing_replaces_the_file_with_mode_0600_even_when_it_was_wider(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cfg" / "seau" / "config.json"
    path.parent.mkdir(parents=True)
    path.write_text("{}")
    path.chmod(0o644)
    write_config(Stored().with_token("http://a:1", "tok"), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_config(path) == Stored(server="http://a:1", tokens={"http://a:1": "tok"})
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]


def test_an_unreadable_config_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="is not valid JSON; delete it and run `seau login`"):
        read_config(path)
    assert read_config(tmp_path / "absent.json") == Stored()


def test_tokens_are_kept_per_server_and_sent_only_to_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stored = Stored().with_token("http://a:1", "token-a").with_token("http://b:2", "token-b")
    assert current(stored).server == "http://b:2"
    assert current(stored).token == "token-b"
    monkeypatch.setenv("SEAU_SERVER", "http://a:1/")
    assert current(stored).token == "token-a"
    monkeypatch.setenv("SEAU_SERVER", "http://elsewhere:3")
    assert current(stored).token is None
    monkeypatch.setenv("SEAU_TOKEN", "from-env")
    assert current(stored).token == "from-env"
    assert current(Stored()).server == "http://elsewhere:3"
    monkeypatch.delenv("SEAU_SERVER")
    assert current(Stored()).server == DEFAULT_SERVER


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        (" HTTPS://Files.Example.COM/seau/ ", "https://files.example.com/seau"),
    ],
)
def test_server_urls_are_normalized(url: str, expected: str) -> None:
    assert normalize_server(url) == expected


@pytest.mark.parametrize(
    "url", ["localhost:8000", "ftp://x", "http://", "http://u:p@x", "http://x/?a=1"]
)
def test_server_urls_that_cannot_work_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="invalid server URL"):
        normalize_server(url)
