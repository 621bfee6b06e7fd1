"""seau killed with SIGKILL in the middle of an upload to S3, then `seau gc`."""

from __future__ import annotations

import os
import signal

import pytest

from tests.faults.conftest import Deploy
from tests.faults.harness import (
    InFlight,
    MiB,
    SlowBody,
    assert_invariants,
    sha,
    sign_up,
    upload,
)

# Real servers killed and restarted, timeouts waited out: minutes in all.
pytestmark = pytest.mark.slow

# moto, and Ceph's RGW: a real S3 engine, which keeps its data through a restart
# and dates its multipart uploads (the stale-upload sweep of `seau gc` sees real ages).
ENGINES = pytest.mark.parametrize("engine", ["moto", pytest.param("ceph", marks=pytest.mark.ceph)])


@ENGINES
def test_seau_killed_mid_upload_to_s3_then_gc_leaves_no_debris(deploy: Deploy, engine: str) -> None:
    deployment = deploy(s3=engine)
    with deployment.serve("first") as server:
        auth = sign_up(server.url)
        data = os.urandom(2 * MiB)
        created = upload(server.url, auth, name="kept.bin", body=data)
        assert created.status == 201, created.body
        kept = {created.response.json()["id"]: sha(data)}  # type: ignore[union-attr]

        # Past two 8 MiB parts: S3 holds parts of an upload nobody will finish.
        body = SlowBody(40 * MiB, trigger=18 * MiB)
        flight = InFlight(lambda: upload(server.url, auth, name="killed.bin", body=body))
        assert body.reached.wait(30)
        server.stop(signal.SIGKILL)
        killed = flight.result()
        assert killed.error is not None, "the killed server answered"

    # The row is written only once the object is whole: the killed upload has
    # none, and its parts wait in an unfinished multipart upload.
    assert [row.id for row in deployment.rows()] == list(kept)
    assert deployment.multipart_uploads(), "the killed upload left no multipart upload"

    with deployment.serve("second") as server:
        result = assert_invariants(deployment, url=server.url, accounts=[auth], kept=kept)
    assert result is not None
    assert "stale pending files: 0 found" in result.stdout
    # The killed upload's reservation (under the deployment's quota) outlived its
    # process; gc gave it back, and the quota invariant held before and after.
    assert "stale_reservations: 1 removed" in result.stdout, result.stdout
