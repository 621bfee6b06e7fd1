from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest

from seau.errors import ConfigurationError
from seau.settings import Settings, load_settings
from seau.storage.s3 import ObstoreS3Store
from seau.wiring import s3_options


def test_defaults_are_embedded_sqlite_and_local_store(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.effective_database_url == f"sqlite+aiosqlite:///{tmp_path.resolve()}/seau.db"
    assert settings.effective_storage_url == (tmp_path / "objects").resolve().as_uri()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("mysql://u:p@h/db", "mysql+aiomysql://u:p@h/db"),
        ("mariadb://u@h:3306/db", "mysql+aiomysql://u@h:3306/db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:////x/y.db", "sqlite+aiosqlite:////x/y.db"),
    ],
)
def test_usual_database_urls_get_the_async_driver(given: str, expected: str) -> None:
    assert Settings(database_url=given, secret_key="k" * 32).database_url == expected


def test_a_shared_database_without_an_explicit_secret_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="SEAU_SECRET_KEY must be set"):
        load_settings(database_url="postgresql://u@h/db")


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"SEAU_MAX_UPLOAD_BYTES": "lots"}, "SEAU_MAX_UPLOAD_BYTES"),
        ({"SEAU_MAX_UPLOAD_BYTES": "0"}, "SEAU_MAX_UPLOAD_BYTES"),
        ({"SEAU_STORAGE_URL": "ftp://x"}, "SEAU_STORAGE_URL"),
        ({"SEAU_DATABASE_URL": "oracle://x"}, "SEAU_DATABASE_URL"),
        ({"SEAU_SECRET_KEY": "short"}, "SEAU_SECRET_KEY"),
    ],
)
def test_invalid_environment_gives_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], fragment: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message


def test_aws_variables_are_read_without_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("AWS_REGION", "fr-par")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "id")
    settings = load_settings()
    assert (settings.aws_endpoint_url, settings.aws_region, settings.aws_access_key_id) == (
        "http://127.0.0.1:9000",
        "fr-par",
        "id",
    )
    assert "id" not in repr(settings.aws_secret_access_key)


def test_generated_secret_is_kept_private_and_stable(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = settings.load_secret_key()
    assert len(first) >= 32
    assert settings.load_secret_key() == first
    mode = stat.S_IMODE(os.stat(tmp_path / "data" / "secret_key").st_mode)
    assert mode == 0o600


@pytest.mark.parametrize(
    ("max_upload", "part"),
    [(5 * 1024**3, 5 * 1024**2), (100 * 1024**3, 11 * 1024**2)],
)
def test_s3_parts_are_the_smallest_that_reach_the_largest_upload(
    tmp_path: Path, max_upload: int, part: int
) -> None:
    settings = Settings(data_dir=tmp_path, max_upload_bytes=max_upload)
    options = dataclasses.replace(s3_options(settings), bucket="bucket")
    assert options.part_size == part
    assert options.part_size * 10_000 >= max_upload
    store = ObstoreS3Store(options)
    assert store._part_size == part
