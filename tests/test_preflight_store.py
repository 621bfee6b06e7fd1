"""Issue 16, point 4: `seau serve` writes a probe object before it starts, and a
store it cannot write to stops it with one line naming the likely cause.

Before the change the start-up check only listed the bucket: with path-style
addressing missing it started and reported ready (moto answers a listing of
``/?list-type=2`` at its root), and every upload then failed with 503.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from seau.errors import PreflightError
from seau.preflight import PROBE_PREFIX, preflight, run_gc
from seau.settings import Settings, load_settings
from seau.wiring import open_storage
from tests.support.moto import MotoServer, bucket_keys, make_bucket, running_moto_server
from tests.support.server import SEAU, server_env

pytestmark = pytest.mark.s3


@pytest.fixture
def moto() -> Iterator[MotoServer]:
    """A private server: the credentials test turns moto's authentication on."""
    with running_moto_server() as server:
        yield server


def _settings(tmp_path: Path, moto: MotoServer, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path,
        "storage_url": f"s3://{make_bucket(moto.endpoint_url)}",
        "aws_endpoint_url": moto.endpoint_url,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "aws_region": "us-east-1",
        "s3_path_style": True,
    }
    values.update(overrides)
    return load_settings(**values)


async def _refusal(settings: Settings) -> str:
    with pytest.raises(PreflightError) as caught:
        await preflight(settings)
    line = str(caught.value)
    assert "\n" not in line
    return line


async def test_a_good_bucket_passes_and_keeps_no_probe(tmp_path: Path, moto: MotoServer) -> None:
    settings = _settings(tmp_path, moto)
    await preflight(settings)
    assert bucket_keys(moto.endpoint_url, settings.effective_storage_url[5:]) == []


async def test_missing_path_style_is_named(tmp_path: Path, moto: MotoServer) -> None:
    line = await _refusal(_settings(tmp_path, moto, s3_path_style=False))
    assert "SEAU_S3_PATH_STYLE=true" in line


async def test_a_missing_bucket_is_named(tmp_path: Path, moto: MotoServer) -> None:
    line = await _refusal(_settings(tmp_path, moto, storage_url="s3://no-such-bucket-here"))
    assert "no such bucket" in line
    assert "SEAU_S3_PATH_STYLE" not in line


async def test_an_unreachable_endpoint_is_named(tmp_path: Path, moto: MotoServer) -> None:
    settings = _settings(tmp_path, moto, aws_endpoint_url="http://127.0.0.1:9")
    assert "is unreachable" in await _refusal(settings)


async def test_refused_credentials_are_named(tmp_path: Path, moto: MotoServer) -> None:
    # moto accepts any key by default; /moto-api/reset-auth makes it check them
    # (no key is known to it, so every signed request is refused).
    settings = _settings(tmp_path, moto)
    async with httpx.AsyncClient() as client:
        reset = await client.post(f"{moto.endpoint_url}/moto-api/reset-auth", content=b"0")
    reset.raise_for_status()
    assert "refused the credentials" in await _refusal(settings)


def test_seau_serve_stops_with_one_line(tmp_path: Path, moto: MotoServer) -> None:
    bucket = make_bucket(moto.endpoint_url)
    env = server_env(
        {
            "SEAU_DATA_DIR": str(tmp_path),
            "SEAU_STORAGE_URL": f"s3://{bucket}",
            "AWS_ENDPOINT_URL": moto.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        }
    )
    done = subprocess.run(
        [SEAU, "serve", "--host", "127.0.0.1", "--port", "9"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "SEAU_S3_PATH_STYLE=true" in lines[0]


@pytest.fixture
def local_settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path)


async def test_the_local_store_passes_and_gc_leaves_the_probe_prefix(
    local_settings: Settings,
) -> None:
    await preflight(local_settings)
    async with open_storage(local_settings) as store:

        async def data() -> AsyncIterator[bytes]:
            yield b"x"

        key = f"{PROBE_PREFIX}left-by-a-crash"
        await store.put(key, data())
    (written,) = local_settings.data_dir.rglob("left-by-a-crash")
    os.utime(written, (time.time() - 7 * 86400,) * 2)  # well past the grace period
    report = await run_gc(local_settings.model_copy(update={"gc_grace_seconds": 1}), dry_run=False)
    assert key not in report.orphan_objects
    async with open_storage(local_settings) as store:
        assert [info.key async for info in store.list(PROBE_PREFIX)] == [key]
