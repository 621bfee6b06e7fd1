"""The database unreachable, lost mid-upload, or losing the answer to a commit.

seau talks to MariaDB or PostgreSQL through a `FaultProxy` here.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import httpx
import pytest

from tests.faults.conftest import Deploy
from tests.faults.harness import (
    PROMPT,
    InFlight,
    MiB,
    SlowBody,
    assert_invariants,
    assert_prompt_503,
    download,
    sha,
    sign_up,
    upload,
)
from tests.support.databases import Kind
from tests.support.faultproxy import FaultProxy

# Real servers killed and restarted, timeouts waited out: minutes in all.
pytestmark = pytest.mark.slow

MYSQL = pytest.param("mysql", marks=pytest.mark.mysql, id="mysql")
POSTGRESQL = pytest.param("postgresql", marks=pytest.mark.postgresql, id="postgresql")
DATABASES = [MYSQL, POSTGRESQL]

# Server bugs these scenarios expose outside the files this suite may fix; strict,
# so the test fails (XPASS) the day the bug is fixed and the mark must go.


def _upload_ok(url: str, auth: dict[str, str], data: bytes) -> str:
    created = upload(url, auth, name="ok.bin", body=data)
    assert created.status == 201, created.body
    file_id: str = created.response.json()["id"]  # type: ignore[union-attr]
    return file_id


@pytest.mark.parametrize("database", DATABASES)
def test_database_unreachable_answers_prompt_503s(deploy: Deploy, database: Kind) -> None:
    deployment = deploy(database=database, db_proxy=True)
    proxy = deployment.db_proxy
    assert proxy is not None
    with deployment.serve() as server:
        auth = sign_up(server.url)
        data = os.urandom(MiB)
        file_id = _upload_ok(server.url, auth, data)
        proxy.refuse()
        assert_prompt_503(
            upload(server.url, auth, name="refused.bin", body=os.urandom(MiB)),
            code="database_unavailable",
        )
        assert_prompt_503(download(server.url, auth, file_id), code="database_unavailable")
        proxy.passthrough()
        assert_invariants(deployment, url=server.url, accounts=[auth], kept={file_id: sha(data)})


@pytest.mark.parametrize(
    "database",
    [MYSQL, POSTGRESQL],
)
def test_database_lost_while_the_bytes_stream_answers_503_and_gc_cleans_up(
    deploy: Deploy, database: Kind
) -> None:
    deployment = deploy(database=database, db_proxy=True)
    proxy = deployment.db_proxy
    assert proxy is not None
    with deployment.serve() as server:
        auth = sign_up(server.url)
        body = SlowBody(20 * MiB, trigger=10 * MiB)
        flight = InFlight(lambda: upload(server.url, auth, name="lost.bin", body=body))
        assert body.reached.wait(30)
        proxy.refuse()
        outcome = flight.result()
        assert_prompt_503(outcome, code="database_unavailable")
        proxy.passthrough()
        assert_invariants(deployment, url=server.url, accounts=[auth], kept={})


def _upload_losing_the_commit_reply(
    url: str, proxy: FaultProxy, headers: dict[str, str], *, name: str, then_refuse: bool
) -> SlowBody:
    """A 12 MiB upload whose file-making COMMIT the database applies and whose reply
    the proxy loses (then refusing connections, if ``then_refuse``): answered a
    prompt 503. Returns the body sent, for its SHA-256.

    Its length is declared: under the deployment's quota, it is reserved whole
    before the first byte, where a chunked body's reservation grows in commits of
    its own while the bytes stream, one of which would be the COMMIT lost here."""
    body = SlowBody(12 * MiB, trigger=6 * MiB)
    sized = {**headers, "Content-Length": str(body.total)}
    flight = InFlight(partial(upload, url, sized, name=name, body=body))
    assert body.reached.wait(30)
    # The pending row is committed by now: the next COMMIT is the one that marks
    # the file ready. The database acts on it; seau never hears.
    proxy.lose_reply_to(b"COMMIT", then_refuse=then_refuse)
    outcome = flight.result()
    assert not proxy.armed, "no COMMIT went through the proxy"
    assert_prompt_503(outcome, code="database_unavailable")
    proxy.passthrough()
    return body


@pytest.mark.parametrize("database", DATABASES)
def test_database_commit_with_a_lost_answer_never_leaves_a_ready_file_without_bytes(
    deploy: Deploy, database: Kind
) -> None:
    deployment = deploy(database=database, db_proxy=True)
    proxy = deployment.db_proxy
    assert proxy is not None
    with deployment.serve() as server:
        auth = sign_up(server.url)
        kept: dict[str, str] = {}
        # First the database is back at once, then it stays away after the commit.
        for then_refuse in (False, True):
            body = _upload_losing_the_commit_reply(
                server.url, proxy, auth, name="unknown.bin", then_refuse=then_refuse
            )
            rows = [r for r in deployment.rows() if r.id not in kept]
            if then_refuse:
                # The database applied the commit and seau could not take the
                # row back: the client was told 503, yet the file exists, whole.
                assert [r.state for r in rows] == ["ready"]
                kept[rows[0].id] = body.sha256
            else:
                assert rows == [], "seau did not take back the file it answered 503 for"
        assert_invariants(deployment, url=server.url, accounts=[auth], kept=kept)


@pytest.mark.parametrize("database", DATABASES)
def test_an_idempotent_upload_whose_commit_answer_was_lost_is_replayed_with_its_file(
    deploy: Deploy, database: Kind
) -> None:
    """The commit that made the file also stored the request's answer under its
    `Idempotency-Key`, and seau never heard it land. seau used to take the file back
    as for a key-less upload, while the stored answer stayed: the retry replayed a
    201 for a file that no longer existed (bench/scale.py, four in 10,000 uploads).
    Now nothing is undone when an answer may have committed with the file."""
    deployment = deploy(database=database, db_proxy=True)
    proxy = deployment.db_proxy
    assert proxy is not None
    with deployment.serve() as server:
        auth = sign_up(server.url)
        headers = {**auth, "Idempotency-Key": "lost-commit-answer"}
        body = _upload_losing_the_commit_reply(
            server.url, proxy, headers, name="kept.bin", then_refuse=False
        )
        retry = upload(server.url, headers, name="kept.bin", body=b"the same request again")
        assert retry.error is None, retry.error
        assert retry.response is not None
        assert retry.response.status_code == 201, retry.response.text
        assert retry.response.headers.get("idempotent-replayed") == "true"
        file_id = retry.response.json()["id"]
        assert [(r.id, r.state) for r in deployment.rows()] == [(file_id, "ready")]
        assert_invariants(deployment, url=server.url, accounts=[auth], kept={file_id: body.sha256})


@pytest.mark.mysql
def test_database_stalled_mid_upload_answers_a_prompt_503(deploy: Deploy) -> None:
    deployment = deploy(database="mysql", db_proxy=True)
    proxy = deployment.db_proxy
    assert proxy is not None
    with deployment.serve() as server:
        auth = sign_up(server.url)
        body = SlowBody(12 * MiB, trigger=6 * MiB)
        flight = InFlight(lambda: upload(server.url, auth, name="stalled.bin", body=body))
        assert body.reached.wait(30)
        proxy.stall()
        try:
            outcome = flight.result(timeout=PROMPT)
        finally:
            # Released, the request finishes and the server can stop at once.
            proxy.passthrough()
        assert_prompt_503(outcome, code="database_unavailable")
        assert_invariants(deployment, url=server.url, accounts=[auth], kept={})


@pytest.mark.parametrize(
    "database",
    [MYSQL, POSTGRESQL],
)
def test_database_connections_dropped_while_idle_are_replaced_without_errors(
    deploy: Deploy, database: Kind
) -> None:
    # A database restart, a failover, a firewall forgetting idle connections:
    # the pool holds connections that are dead, and must notice before use.
    deployment = deploy(database=database, db_proxy=True)
    proxy = deployment.db_proxy
    assert proxy is not None
    with deployment.serve() as server:
        auth = sign_up(server.url)
        with ThreadPoolExecutor(6) as pool:
            # Concurrent requests leave several connections in the pool.
            warm = list(pool.map(lambda _: _list_status(server.url, auth), range(12)))
        assert warm == [200] * 12
        proxy.reset_all()
        assert [_list_status(server.url, auth) for _ in range(10)] == [200] * 10


def _list_status(url: str, auth: dict[str, str]) -> int:
    return httpx.get(f"{url}/api/v1/files", headers=auth, timeout=30).status_code
