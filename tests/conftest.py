"""Shared fixtures: the real app on every database × store combination."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

# seau.auth.tokens loads PyJWT without `cryptography` (see there); the tests sign
# RS256/ES256 tokens with PyJWT, so they take the complete one that seau.auth.oidc loads.
import seau.auth.oidc  # noqa: F401
from seau.app import create_app
from seau.settings import Settings
from tests.support.ceph import ceph_server  # noqa: F401  (fixture)
from tests.support.databases import scratch_database
from tests.support.moto import make_bucket, s3_server  # noqa: F401  (fixture)
from tests.support.oidc_provider import oidc_provider  # noqa: F401  (fixture)

COMBINATIONS = [
    ("sqlite", "local"),
    ("sqlite", "s3"),
    ("mysql", "local"),
    ("mysql", "s3"),
    ("postgresql", "local"),
    ("postgresql", "s3"),
    # Ceph's RADOS Gateway, a real S3 engine, beside moto ("s3"): with SQLite only,
    # since the databases meet S3 the same way whichever server answers.
    ("sqlite", "ceph"),
]
S3_SERVERS = {"s3": "s3_server", "ceph": "ceph_server"}
"""Which fixture serves each S3 flavour of `COMBINATIONS`: moto, or Ceph's RGW."""

TEST_SECRET = "test-secret-" + "x" * 60


def s3_settings(endpoint_url: str) -> dict[str, object]:
    return {
        "aws_endpoint_url": endpoint_url,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "aws_region": "us-east-1",
        "s3_path_style": True,
    }


_CEPH = re.compile(r"\[(.*-)?ceph(-.*)?\]$")
_RUNNING = re.compile(r"\[(.*-)?(sqlite|mysql|postgresql)-(local|s3)(-.*)?\]$")


def work_unit(nodeid: str) -> str:
    """Which tests `make cover`'s workers (``-n 2 --dist loadgroup``) take as one.

    Every test of Ceph (a parameter ``ceph``, or tests/storage/test_ceph.py) is one
    unit, so the session's one cluster starts on one worker only. A test on the
    session-wide `running` app (parameters such as ``sqlite-local``) is a unit of its
    own: they are dealt out in collection order, which groups them by combination, so
    a worker rebuilds the app only when the combination changes. The other tests of a
    module, which may share its module-scoped servers and browsers, are one unit.
    """
    path = nodeid.split("::", 1)[0]
    if path == "tests/storage/test_ceph.py" or _CEPH.search(nodeid):
        return "ceph"
    if _RUNNING.search(nodeid):
        return nodeid
    return path


# xdist's own loadgroup (the `xdist_group` mark) does not group on pytest 9: it renames
# the node ids through an attribute pytest no longer reads. The scheduler is xdist's own
# hook, and sees node ids only.
@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

    class Units(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return Units(config, log)


@dataclass
class Running:
    app: FastAPI
    settings: Settings
    label: str

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://seau.test"
        )


@pytest.fixture(
    scope="session",
    # Marked, so that `-m ceph` runs (and `-m "not ceph"` leaves out) all that Ceph runs.
    params=[
        pytest.param((db, store), marks=pytest.mark.ceph) if store == "ceph" else (db, store)
        for db, store in COMBINATIONS
    ],
    ids=[f"{db}-{store}" for db, store in COMBINATIONS],
)
async def running(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Running]:
    database, store = request.param
    tmp = tmp_path_factory.mktemp(f"{database}-{store}")
    with scratch_database(database, tmp) as database_url:
        extra: dict[str, object] = {}
        if store in S3_SERVERS:
            server = request.getfixturevalue(S3_SERVERS[store])
            storage_url = f"s3://{make_bucket(server.endpoint_url)}"
            extra = s3_settings(server.endpoint_url)
        else:
            storage_url = (tmp / "objects").as_uri()
        settings = Settings(
            data_dir=tmp,
            database_url=database_url,
            storage_url=storage_url,
            secret_key=TEST_SECRET,
            max_upload_bytes=8 * 1024 * 1024,
            max_files_per_request=5,
            # One app serves the whole api suite from one address: more sign-ups
            # than the defaults allow (tests/api/test_security.py tests the limits).
            signup_per_address_per_hour=0,
            signup_per_minute=0,
            **extra,  # type: ignore[arg-type]
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            yield Running(app=app, settings=settings, label=f"{database}-{store}")


@pytest.fixture
async def client(running: Running) -> AsyncIterator[httpx.AsyncClient]:
    async with running.client() as http:
        yield http


async def sign_up(
    client: httpx.AsyncClient, *, password: str = "correct horse battery"
) -> dict[str, str]:
    """A new account; returns the Authorization header of a fresh token."""
    email = f"user-{secrets.token_hex(6)}@example.com"
    created = await client.post("/api/v1/users", json={"email": email, "password": password})
    assert created.status_code == 201, created.text
    token = await client.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


@pytest.fixture
async def auth(client: httpx.AsyncClient) -> dict[str, str]:
    return await sign_up(client)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "seau-data"
