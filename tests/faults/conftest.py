"""Fixtures of the fault scenarios: a deployment to break, made to order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.faults.harness import Deployment
from tests.support.ceph import CephCluster, CephGateway, CephUnavailable
from tests.support.databases import (
    MYSQL_HOST,
    MYSQL_PORT,
    PG_HOST,
    PG_PORT,
    Kind,
    scratch_database,
)
from tests.support.faultproxy import FaultProxy
from tests.support.moto import MotoServer, MotoUnavailable, unavailable

Deploy = Callable[..., Deployment]


def _build(
    stack: ExitStack,
    tmp: Path,
    request: pytest.FixtureRequest,
    *,
    database: Kind = "sqlite",
    s3: str = "moto",
    s3_proxy: bool = False,
    db_proxy: bool = False,
) -> Deployment:
    server: MotoServer | CephGateway
    if s3 == "ceph":
        # A gateway of its own over the session's cluster, so that killing it
        # harms no other test; the cluster keeps the data, as a real S3 does.
        cluster: CephCluster = request.getfixturevalue("ceph_server")
        try:
            gateway = cluster.gateway()
        except CephUnavailable as exc:
            unavailable(str(exc))
            raise
        stack.callback(gateway.terminate)
        server = gateway
    else:
        server = MotoServer()
        stack.callback(server.stop)
    database_url = stack.enter_context(scratch_database(database, tmp))
    deployment = Deployment(
        tmp=tmp, s3=server, bucket=f"seau-fault-{server.port}", database_url=database_url
    )
    try:
        deployment.start_s3()
    except (MotoUnavailable, CephUnavailable) as exc:
        unavailable(str(exc))
    if s3_proxy:
        deployment.s3_proxy = stack.enter_context(FaultProxy("127.0.0.1", server.port))
    if db_proxy:
        upstream = {"mysql": (MYSQL_HOST, MYSQL_PORT), "postgresql": (PG_HOST, PG_PORT)}
        assert database in upstream, "a proxy needs a database server"
        deployment.db_proxy = stack.enter_context(FaultProxy(*upstream[database]))
    return deployment


@pytest.fixture
def deploy(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Deploy]:
    """``deploy(database=..., s3=..., s3_proxy=..., db_proxy=...)``: an S3 server of
    its own with the bucket (``s3="moto"``, or ``"ceph"``: a gateway of its own on
    Ceph's RGW), a scratch database, and fault proxies in front of either if asked.
    Everything is torn down after the test."""
    with ExitStack() as stack:
        yield lambda **options: _build(stack, tmp_path, request, **options)


@pytest.fixture(scope="module")
def deploy_for_module(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Deploy]:
    """`deploy`, for a deployment that several tests of a module share."""
    with ExitStack() as stack:
        yield lambda **options: _build(stack, tmp_path_factory.mktemp("faults"), request, **options)
