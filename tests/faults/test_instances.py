"""Two instances on one MariaDB and one S3: one deletes what the other is serving."""

from __future__ import annotations

import os
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import httpx
import pytest

from tests.faults.conftest import Deploy
from tests.faults.harness import (
    PROBLEM,
    MiB,
    Outcome,
    assert_invariants,
    assert_never_short,
    download,
    sign_up,
    upload,
)

# Real servers killed and restarted, timeouts waited out: minutes in all.
pytestmark = [pytest.mark.slow, pytest.mark.mysql]

STREAMING = 4  # downloads under way when the delete comes
RACING = 4  # downloads that start with the delete


def _classify(outcome: Outcome, data: bytes) -> str:
    """200 whole and correct, 404 problem, or an aborted transfer: nothing else."""
    assert_never_short(outcome, data)
    if outcome.error is not None:
        return "aborted"
    assert outcome.response is not None
    if outcome.status == 404:
        assert outcome.response.headers["content-type"].startswith(PROBLEM)
        assert outcome.response.json()["code"] == "file_not_found"
        return "404"
    assert outcome.status == 200, outcome.body[:300]
    return "200"


def test_one_instance_deletes_while_the_other_serves_the_same_file(deploy: Deploy) -> None:
    deployment = deploy(database="mysql")
    with ExitStack() as stack, ThreadPoolExecutor(2) as starting:
        a, b = starting.map(lambda name: stack.enter_context(deployment.serve(name)), "ab")
        auth = sign_up(a.url)
        seen: Counter[str] = Counter()
        for round_ in range(3):
            data = os.urandom(4 * MiB + round_)
            created = upload(a.url, auth, name=f"shared-{round_}.bin", body=data)
            assert created.status == 201, created.body
            file_id = created.response.json()["id"]  # type: ignore[union-attr]
            streaming = threading.Barrier(STREAMING + 1, timeout=30)

            def mid_stream(
                file_id: str = file_id, streaming: threading.Barrier = streaming
            ) -> Outcome:
                # Holds the delete back until it has bytes in hand, then reads on slowly.
                waited: list[bool] = []

                def on_progress(received: int) -> None:
                    if received >= MiB and not waited:
                        waited.append(True)
                        streaming.wait()

                return download(a.url, auth, file_id, on_progress=on_progress, pause=0.02)

            def racing(file_id: str = file_id) -> Outcome:
                return download(a.url, auth, file_id)

            with ThreadPoolExecutor(STREAMING + RACING + 1) as pool:
                early = [pool.submit(mid_stream) for _ in range(STREAMING)]
                streaming.wait()
                removed = pool.submit(
                    httpx.delete, f"{b.url}/api/v1/files/{file_id}", headers=auth, timeout=30
                )
                racers = [pool.submit(racing) for _ in range(RACING)]
                outcomes = [f.result() for f in early + racers]
            assert removed.result().status_code == 204
            assert download(a.url, auth, file_id).status == 404
            seen.update(_classify(o, data) for o in outcomes)
            assert [r for r in deployment.rows() if r.id == file_id] == []
            assert deployment.objects() == {}
        print(f"concurrent downloads while deleting: {dict(seen)}")
        assert seen["200"] > 0, "no download overlapped the delete"
        assert_invariants(deployment, url=a.url, accounts=[auth], kept={})
