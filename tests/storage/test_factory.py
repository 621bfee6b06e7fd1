"""The storage URL picks the backend; anything unclear is refused with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from seau.storage.factory import open_store
from seau.storage.local import LocalFileStore
from seau.storage.memory import MemoryObjectStore
from seau.storage.s3 import ObstoreS3Store, S3Options


def test_file_url_with_an_absolute_path(tmp_path: Path) -> None:
    store = open_store((tmp_path / "objects").as_uri())
    assert isinstance(store, LocalFileStore)
    assert store.root == tmp_path / "objects"


def test_file_url_with_localhost_and_escapes(tmp_path: Path) -> None:
    store = open_store(f"file://localhost{tmp_path}/my%20objects")
    assert isinstance(store, LocalFileStore)
    assert store.root == tmp_path / "my objects"


def test_plain_absolute_path(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "objects"))
    assert isinstance(store, LocalFileStore)
    assert store.root == tmp_path / "objects"


@pytest.mark.parametrize("url", ["objects", "./objects", "file:objects", "file://objects"])
def test_relative_paths_are_under_the_data_dir(tmp_path: Path, url: str) -> None:
    store = open_store(url, data_dir=tmp_path)
    assert isinstance(store, LocalFileStore)
    assert store.root == tmp_path / "objects"


def test_a_relative_path_without_a_data_dir_is_refused() -> None:
    with pytest.raises(ValueError, match="relative"):
        open_store("objects")


def test_s3_url_gives_bucket_and_prefix_the_options_the_rest() -> None:
    options = S3Options(
        bucket="ignored",
        prefix="ignored",
        endpoint_url="http://127.0.0.1:9000",
        region="eu-west-3",
        access_key_id="id",
        secret_access_key="secret",
        path_style=True,
    )
    store = open_store("s3://my-bucket/some/prefix/", s3=options)
    assert isinstance(store, ObstoreS3Store)
    assert store.options.bucket == "my-bucket"
    assert store.options.prefix == "some/prefix"
    assert store.options.endpoint_url == "http://127.0.0.1:9000"
    assert store.options.path_style


def test_s3_url_without_options() -> None:
    store = open_store("s3://my-bucket")
    assert isinstance(store, ObstoreS3Store)
    assert store.options == S3Options(bucket="my-bucket")


def test_memory_url() -> None:
    assert isinstance(open_store("memory://"), MemoryObjectStore)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("ftp://host/path", "unsupported storage URL 'ftp://host/path'"),
        ("gs://bucket", "unsupported"),
        ("s3://", "no bucket"),
        ("s3:///prefix", "no bucket"),
        ("s3://bucket?region=x", "query"),
        ("memory://name", "memory://"),
        ("file://", "no directory"),
    ],
)
def test_unusable_urls_are_refused_with_a_clear_message(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        open_store(url)
    assert "\n" not in str(raised.value)
