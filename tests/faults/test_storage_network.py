"""Storage that answers slowly, stalls, cuts or resets connections, or refuses them.

seau talks to moto through a `FaultProxy` here, switched while bytes flow.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest

from tests.faults.conftest import Deploy
from tests.faults.harness import (
    PROMPT,
    STORAGE_TIMEOUT,
    Deployment,
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
from tests.support.faultproxy import FaultProxy
from tests.support.server import Server

# Real servers killed and restarted, timeouts waited out: minutes in all.
pytestmark = pytest.mark.slow


@pytest.fixture(
    scope="module",
    # moto, and Ceph's RGW: the same faults in front of a real S3 engine.
    params=["moto", pytest.param("ceph", marks=pytest.mark.ceph)],
)
def proxied_server(
    deploy_for_module: Deploy, request: pytest.FixtureRequest
) -> Iterator[tuple[Deployment, FaultProxy, Server]]:
    # One deployment for the module: every scenario leaves it consistent (its
    # own invariants say so), and starting seau and moto dominates otherwise.
    deployment = deploy_for_module(s3=request.param, s3_proxy=True)
    assert deployment.s3_proxy is not None
    with deployment.serve() as server:
        yield deployment, deployment.s3_proxy, server


@pytest.fixture
def proxied(
    proxied_server: tuple[Deployment, FaultProxy, Server],
) -> Iterator[tuple[Deployment, FaultProxy, Server, dict[str, str]]]:
    """The shared deployment, a new account, and the proxy passing again afterwards."""
    deployment, proxy, server = proxied_server
    proxy.passthrough()
    yield deployment, proxy, server, sign_up(server.url)
    proxy.passthrough()


def _upload_ok(url: str, auth: dict[str, str], data: bytes, kept: dict[str, str]) -> str:
    created = upload(url, auth, name="ok.bin", body=data)
    assert created.status == 201, created.body
    file_id: str = created.response.json()["id"]  # type: ignore[union-attr]
    kept[file_id] = sha(data)
    return file_id


def test_storage_stalled_mid_upload_answers_a_prompt_503(
    proxied: tuple[Deployment, FaultProxy, Server, dict[str, str]],
) -> None:
    deployment, proxy, server, auth = proxied
    body = SlowBody(24 * MiB, trigger=10 * MiB)
    flight = InFlight(lambda: upload(server.url, auth, name="stalled.bin", body=body))
    assert body.reached.wait(30)
    proxy.stall()
    stalled_at = time.monotonic()
    outcome = flight.result()
    print(f"stalled upload answered {time.monotonic() - stalled_at:.1f}s after the stall")
    assert_prompt_503(outcome, code="storage_unavailable")

    proxy.passthrough()
    kept: dict[str, str] = {}
    _upload_ok(server.url, auth, os.urandom(10 * MiB), kept)
    assert_invariants(deployment, url=server.url, accounts=[auth], kept=kept)


def test_storage_stalled_mid_download_aborts_the_connection_promptly(
    proxied: tuple[Deployment, FaultProxy, Server, dict[str, str]],
) -> None:
    deployment, proxy, server, auth = proxied
    kept: dict[str, str] = {}
    data = os.urandom(24 * MiB)
    file_id = _upload_ok(server.url, auth, data, kept)
    stalled_at: list[float] = []

    def stall_once_started(received: int) -> None:
        if received >= 4 * MiB and not stalled_at:
            proxy.stall()
            stalled_at.append(time.monotonic())

    outcome = download(server.url, auth, file_id, on_progress=stall_once_started)
    waited = time.monotonic() - stalled_at[0]
    print(f"stalled download aborted {waited:.1f}s after the stall: {outcome.error!r}")
    assert outcome.status == 200
    assert_never_short(outcome, data)
    assert outcome.error is not None, "storage stalled, yet every byte arrived"
    assert waited < STORAGE_TIMEOUT + 5

    proxy.passthrough()
    assert_invariants(deployment, url=server.url, accounts=[auth], kept=kept)


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_storage_connection_cut_mid_upload_is_retried_or_a_503(
    proxied: tuple[Deployment, FaultProxy, Server, dict[str, str]], reset: bool
) -> None:
    deployment, proxy, server, auth = proxied
    body = SlowBody(20 * MiB, trigger=6 * MiB, pause=0.005)
    flight = InFlight(lambda: upload(server.url, auth, name="cut.bin", body=body))
    assert body.reached.wait(30)
    proxy.cut_after(1 * MiB, direction="upstream", reset=reset)
    outcome = flight.result()
    assert not proxy.armed, "the fault never fired"
    print(f"upload with a cut connection: {outcome.status} after {outcome.elapsed:.1f}s")
    kept: dict[str, str] = {}
    if outcome.status == 201:
        kept[outcome.response.json()["id"]] = body.sha256  # type: ignore[union-attr]
    else:
        assert_prompt_503(outcome, code="storage_unavailable")
    _upload_ok(server.url, auth, os.urandom(MiB), kept)
    assert_invariants(deployment, url=server.url, accounts=[auth], kept=kept)


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_storage_connection_cut_mid_download_never_ends_in_a_short_200(
    proxied: tuple[Deployment, FaultProxy, Server, dict[str, str]], reset: bool
) -> None:
    deployment, proxy, server, auth = proxied
    kept: dict[str, str] = {}
    data = os.urandom(24 * MiB)
    file_id = _upload_ok(server.url, auth, data, kept)
    proxy.cut_after(5 * MiB, direction="downstream", reset=reset)
    outcome = download(server.url, auth, file_id, pause=0.005)
    assert not proxy.armed, "the fault never fired"
    print(f"download with a cut connection: {len(outcome.body)} bytes, {outcome.error!r}")
    assert outcome.status == 200
    assert_never_short(outcome, data)
    assert_invariants(deployment, url=server.url, accounts=[auth], kept=kept)


def test_storage_refusing_connections_answers_prompt_503s_and_lists_still(
    proxied: tuple[Deployment, FaultProxy, Server, dict[str, str]],
) -> None:
    deployment, proxy, server, auth = proxied
    kept: dict[str, str] = {}
    data = os.urandom(MiB)
    file_id = _upload_ok(server.url, auth, data, kept)
    proxy.refuse()
    assert_prompt_503(
        upload(server.url, auth, name="refused.bin", body=os.urandom(MiB)),
        code="storage_unavailable",
    )
    assert_prompt_503(download(server.url, auth, file_id), code="storage_unavailable")
    proxy.passthrough()
    assert_invariants(deployment, url=server.url, accounts=[auth], kept=kept)


def test_storage_that_pauses_shorter_than_the_timeout_still_serves(
    proxied: tuple[Deployment, FaultProxy, Server, dict[str, str]],
) -> None:
    deployment, proxy, server, auth = proxied
    kept: dict[str, str] = {}
    pause = STORAGE_TIMEOUT / 2

    def hiccup() -> None:
        proxy.stall()
        time.sleep(pause)
        proxy.passthrough()

    body = SlowBody(12 * MiB, trigger=4 * MiB, pause=0.005)
    flight = InFlight(lambda: upload(server.url, auth, name="slow.bin", body=body))
    assert body.reached.wait(30)
    hiccup()
    outcome = flight.result()
    assert outcome.status == 201, outcome.body
    file_id = outcome.response.json()["id"]  # type: ignore[union-attr]
    kept[file_id] = body.sha256

    started: list[threading.Thread] = []

    def hiccup_once(received: int) -> None:
        if received >= 2 * MiB and not started:
            started.append(threading.Thread(target=hiccup))
            started[0].start()

    fetched = download(server.url, auth, file_id, on_progress=hiccup_once)
    started[0].join()
    assert fetched.error is None, repr(fetched.error)
    assert fetched.status == 200
    assert sha(fetched.body) == body.sha256
    assert fetched.elapsed < PROMPT
    assert_invariants(deployment, url=server.url, accounts=[auth], kept=kept)
