"""Every store backend behind one fixture, so one contract suite covers them all."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from seau.storage import Store
from seau.storage._disk import TEMP_DIR_NAME
from seau.storage.local import LocalFileStore
from seau.storage.memory import MemoryObjectStore
from seau.storage.s3 import ObstoreS3Store, S3Options
from tests.support.ceph import CephCluster
from tests.support.moto import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    MotoServer,
    make_bucket,
    pending_multipart_uploads,
)


@dataclass
class Backend:
    name: str
    store: Store
    leftovers: Callable[[], list[str]]
    """What a failed upload may have left behind: temp files, open multipart uploads."""


def s3_options(endpoint_url: str, *, bucket: str, prefix: str = "") -> S3Options:
    return S3Options(
        bucket=bucket,
        prefix=prefix,
        endpoint_url=endpoint_url,
        region=REGION,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        path_style=True,
        timeout_seconds=10,
        connect_timeout_seconds=2,
    )


@pytest.fixture(scope="session")
def s3_bucket(s3_server: MotoServer) -> str:
    return make_bucket(s3_server.endpoint_url)


@pytest.fixture(scope="session")
def ceph_bucket(ceph_server: CephCluster) -> str:
    return make_bucket(ceph_server.endpoint_url)


@pytest.fixture(
    params=[
        "memory",
        "local",
        # Every read in a worker thread, none on the event loop (`read_on_loop_bytes`).
        "local-threads",
        pytest.param("s3", marks=pytest.mark.s3),
        pytest.param("ceph", marks=[pytest.mark.s3, pytest.mark.ceph]),
    ],
)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    name: str = request.param
    if name == "memory":
        built = Backend(name, MemoryObjectStore(), leftovers=list)
    elif name in ("local", "local-threads"):
        root = tmp_path / "objects"
        built = Backend(
            name,
            LocalFileStore(root, read_on_loop_bytes=0 if name == "local-threads" else 1024),
            leftovers=lambda: sorted(p.name for p in (root / TEMP_DIR_NAME).glob("*")),
        )
    else:
        # "s3" is moto, "ceph" Ceph's RADOS Gateway: the same contract on both.
        server: MotoServer | CephCluster = request.getfixturevalue(f"{name}_server")
        bucket: str = request.getfixturevalue(f"{name}_bucket")
        # One bucket for the run, one prefix per test: tests stay isolated and the
        # prefix option is exercised by every S3 test.
        prefix = f"t-{secrets.token_hex(6)}"
        built = Backend(
            name,
            ObstoreS3Store(s3_options(server.endpoint_url, bucket=bucket, prefix=prefix)),
            leftovers=lambda: [
                key
                for key in pending_multipart_uploads(server.endpoint_url, bucket)
                if key.startswith(f"{prefix}/")
            ],
        )
    yield built
    await built.store.close()


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.store
