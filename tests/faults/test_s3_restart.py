"""The S3 server killed in the middle of a transfer, then started again."""

from __future__ import annotations

import os

import pytest

from tests.faults.conftest import Deploy
from tests.faults.harness import (
    InFlight,
    MiB,
    SlowBody,
    assert_invariants,
    assert_never_short,
    assert_prompt_503,
    download,
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
def test_s3_killed_mid_upload_answers_a_prompt_503_and_recovers_after_restart(
    deploy: Deploy, engine: str
) -> None:
    deployment = deploy(s3=engine)
    with deployment.serve() as server:
        auth = sign_up(server.url)
        before = os.urandom(3 * MiB)
        created = upload(server.url, auth, name="before.bin", body=before)
        assert created.status == 201, created.body
        kept = {created.response.json()["id"]: sha(before)}  # type: ignore[union-attr]

        # Past the first 8 MiB part, so a multipart upload is under way.
        body = SlowBody(24 * MiB, trigger=12 * MiB)
        flight = InFlight(lambda: upload(server.url, auth, name="doomed.bin", body=body))
        saved = deployment.snapshot_s3()
        assert body.reached.wait(30)
        deployment.s3.stop()
        outcome = flight.result()
        assert_prompt_503(outcome, code="storage_unavailable")

        deployment.start_s3(saved)
        after = os.urandom(2 * MiB)
        again = upload(server.url, auth, name="after.bin", body=after)
        assert again.status == 201, again.body
        kept[again.response.json()["id"]] = sha(after)  # type: ignore[union-attr]

        # Killed and started again while the upload goes on: the upload may
        # ride it out or fail, but a 201 must mean every byte is there.
        body = SlowBody(24 * MiB, trigger=10 * MiB)
        flight = InFlight(lambda: upload(server.url, auth, name="bumpy.bin", body=body))
        saved = deployment.snapshot_s3()
        assert body.reached.wait(30)
        deployment.s3.stop()
        deployment.start_s3(saved)
        outcome = flight.result()
        print(f"upload across an S3 restart: {outcome.status} after {outcome.elapsed:.1f}s")
        if outcome.status == 201:
            kept[outcome.response.json()["id"]] = body.sha256  # type: ignore[union-attr]
        else:
            assert_prompt_503(outcome, code="storage_unavailable")
        assert_invariants(deployment, url=server.url, accounts=[auth], kept=kept)


@ENGINES
def test_s3_killed_mid_download_aborts_the_connection_and_serves_again_after_restart(
    deploy: Deploy, engine: str
) -> None:
    deployment = deploy(s3=engine)
    with deployment.serve() as server:
        auth = sign_up(server.url)
        data = os.urandom(24 * MiB)
        created = upload(server.url, auth, name="big.bin", body=data)
        assert created.status == 201, created.body
        file_id = created.response.json()["id"]  # type: ignore[union-attr]
        saved = deployment.snapshot_s3()

        def kill_once_started(received: int) -> None:
            if received >= 4 * MiB and deployment.s3.running:
                deployment.s3.stop()

        cut = download(server.url, auth, file_id, on_progress=kill_once_started, pause=0.01)
        assert cut.status == 200
        assert_never_short(cut, data)
        assert cut.error is not None, "S3 died mid-body, yet every byte arrived"
        print(f"download cut after {len(cut.body)} bytes, {cut.elapsed:.1f}s: {cut.error!r}")

        refused = download(server.url, auth, file_id)
        assert_prompt_503(refused, code="storage_unavailable")

        deployment.start_s3(saved)
        again = download(server.url, auth, file_id)
        assert again.status == 200
        assert sha(again.body) == sha(data)
        assert_invariants(deployment, url=server.url, accounts=[auth], kept={file_id: sha(data)})
