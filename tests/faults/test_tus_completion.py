"""A tus upload whose completion was cut still becomes its file (docs/benchmarks.md).

Found by bench/scale.py (nginx, three instances, PostgreSQL, Ceph's RGW): the last
PATCH of small uploads (all their bytes in the S3 tail object) answered 503 after a
database timeout, or died with its instance, and the next HEAD answered 410
`upload_data_lost` while the row stayed `completing`; `seau gc` then deleted the
assembled object as an orphan. Here real `seau serve` processes meet the same cuts,
each at one step of the completion, through the fault proxies in front of the
database and of S3 (moto, and Ceph's RGW):

- the commit that records the last bytes (and `completing`) happens, its answer is
  lost: seau must not take the staged bytes back;
- S3's CompleteMultipartUpload is done, its answer lost, the instance SIGKILLed
  before the tail object is deleted and the file recorded: completing again must
  find the object made (RGW refuses the tail's part with NoSuchUpload, moto with 500);
- on a local store, the file's transaction is cut after the object was renamed into
  place: likewise;
- and `seau gc` in between, before or after the upload's expiry, must keep (or make)
  the file, never delete the object of an upload that can still be completed.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from seau.files.keys import key_for
from tests.faults.conftest import Deploy
from tests.faults.harness import (
    PROBLEM,
    Deployment,
    InFlight,
    Outcome,
    assert_invariants,
    sign_up,
)
from tests.support.faultproxy import FaultProxy
from tests.support.server import SEAU, Server, seau_server, server_env
from tests.uploads.helpers import TUS, metadata

# One part-less upload, all of it in S3's tail object, as in the scale test.
SIZE = 15 * 1024 + 239
LEASE_SECONDS = 3
STORES = pytest.mark.parametrize(
    "store", ["local", "moto", pytest.param("ceph", marks=pytest.mark.ceph)]
)
S3_ENGINES = pytest.mark.parametrize(
    "engine", ["moto", pytest.param("ceph", marks=pytest.mark.ceph)]
)


# -- speaking tus to a real server ---------------------------------------------


def _create(url: str, auth: dict[str, str], *, length: int, name: str) -> str:
    response = httpx.post(
        f"{url}/api/v1/uploads",
        headers={
            **auth,
            **TUS,
            "Upload-Length": str(length),
            "Upload-Metadata": metadata(filename=name),
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text
    location: str = response.headers["location"]
    return location.rpartition("/")[2]


def _patch(url: str, auth: dict[str, str], upload: str, data: bytes) -> Outcome:
    outcome = Outcome()
    started = time.monotonic()
    try:
        outcome.response = httpx.patch(
            f"{url}/api/v1/uploads/{upload}",
            headers={
                **auth,
                **TUS,
                "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": "0",
            },
            content=data,
            timeout=60,
        )
    except httpx.HTTPError as exc:
        outcome.error = exc
    outcome.elapsed = time.monotonic() - started
    return outcome


def _head_once_settled(url: str, auth: dict[str, str], upload: str) -> httpx.Response:
    """HEAD, again while the upload is locked (423: a dead request's lease, until it lapses)."""
    deadline = time.monotonic() + 4 * LEASE_SECONDS + 10
    while True:
        head = httpx.head(f"{url}/api/v1/uploads/{upload}", headers={**auth, **TUS}, timeout=60)
        if head.status_code != 423 or time.monotonic() > deadline:
            return head
        time.sleep(0.5)


def _assert_file(url: str, auth: dict[str, str], upload: str, data: bytes) -> None:
    """The upload is a listed file with ``data``'s size, SHA-256 and bytes."""
    listed = httpx.get(f"{url}/api/v1/files", headers=auth, timeout=30)
    assert listed.status_code == 200, listed.text
    items = {item["id"]: item for item in listed.json()["items"]}
    assert upload in items, f"upload {upload} is not a listed file: {list(items)}"
    assert items[upload]["size"] == len(data)
    assert items[upload]["sha256"] == hashlib.sha256(data).hexdigest()
    content = httpx.get(f"{url}/api/v1/files/{upload}/content", headers=auth, timeout=30)
    assert content.status_code == 200, content.text
    assert content.content == data


def _assert_completes(url: str, auth: dict[str, str], upload: str, data: bytes) -> None:
    head = _head_once_settled(url, auth, upload)
    assert head.status_code == 200, (head.status_code, dict(head.headers))
    assert head.headers["upload-offset"] == str(len(data))
    assert head.headers["upload-length"] == str(len(data))
    _assert_file(url, auth, upload, data)


# -- a deployment on either store -------------------------------------------------


def _env(deployment: Deployment, store: str, *, direct: bool = False) -> dict[str, str]:
    env = deployment.direct_env if direct else deployment.serve_env
    env = {**env, "SEAU_UPLOAD_LEASE_SECONDS": str(LEASE_SECONDS)}
    if store == "local":
        env["SEAU_STORAGE_URL"] = (deployment.tmp / "objects").as_uri()
    return env


@contextmanager
def _serve(deployment: Deployment, store: str, name: str, **extra: str) -> Iterator[Server]:
    cwd = deployment.tmp / name
    cwd.mkdir(exist_ok=True)
    with seau_server({**_env(deployment, store), **extra}, cwd=cwd) as server:
        yield server


def _gc(deployment: Deployment, store: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """`seau gc` with a one-second grace, straight to the database and the store."""
    time.sleep(1.1)  # what the cut left is older than the grace
    done = subprocess.run(
        [SEAU, "gc"],
        cwd=deployment.tmp,
        capture_output=True,
        text=True,
        env=server_env(
            {**_env(deployment, store, direct=True), "SEAU_GC_GRACE_SECONDS": "1", **extra}
        ),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _object_exists(deployment: Deployment, store: str, upload: str) -> bool:
    key = key_for(uuid.UUID(upload))
    if store == "local":
        return (deployment.tmp / "objects" / key).is_file()
    return key in deployment.objects()


def _assert_503(outcome: Outcome, code: str) -> None:
    assert outcome.error is None, repr(outcome.error)
    response = outcome.response
    assert response is not None
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["code"] == code, response.text


# -- the cuts ---------------------------------------------------------------------


@pytest.mark.postgresql
@STORES
def test_last_patch_whose_recording_commit_lost_its_answer_completes_on_the_next_head(
    deploy: Deploy, store: str
) -> None:
    deployment = deploy(
        database="postgresql", s3="moto" if store == "local" else store, db_proxy=True
    )
    proxy = deployment.db_proxy
    assert proxy is not None
    data = os.urandom(SIZE)
    with _serve(deployment, store, "first") as server:
        auth = sign_up(server.url)
        upload = _create(server.url, auth, length=len(data), name="cut.bin")
        # The transaction that records every byte (and `completing`) commits; its
        # answer never comes, as when the database timeout cuts a commit in flight.
        proxy.lose_reply_to(b"COMMIT", after=b"completing", then_refuse=False)
        answered = _patch(server.url, auth, upload, data)
        assert not proxy.armed, "the recording commit never went through the proxy"
        _assert_503(answered, "database_unavailable")
        proxy.passthrough()

        _assert_completes(server.url, auth, upload, data)
        if store != "local":
            assert_invariants(
                deployment,
                url=server.url,
                accounts=[auth],
                kept={upload: hashlib.sha256(data).hexdigest()},
            )


def _cut_after_s3_completion(
    deployment: Deployment, proxy: FaultProxy, server: Server, auth: dict[str, str], data: bytes
) -> str:
    """An upload whose last PATCH completed the S3 multipart upload, then its
    instance died (SIGKILL) before deleting the tail or recording the file."""
    upload = _create(server.url, auth, length=len(data), name="killed.bin")
    # S3 acts on the completion; seau never hears of it, nor reaches S3 again.
    proxy.lose_reply_to(b"<CompleteMultipartUpload", then_refuse=True, delay=1.0)
    flight = InFlight(lambda: _patch(server.url, auth, upload, data))
    deadline = time.monotonic() + 30
    while proxy.armed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not proxy.armed, "no CompleteMultipartUpload went through the proxy"
    time.sleep(1.5)
    server.stop(signal.SIGKILL)
    outcome = flight.result()
    assert outcome.status is None or outcome.status >= 500, outcome.status
    proxy.passthrough()
    assert _object_exists(deployment, "s3", upload), "S3 did not complete the upload"
    return upload


@pytest.mark.postgresql
@pytest.mark.parametrize("gc_first", [False, True], ids=["at-once", "after-gc"])
@S3_ENGINES
def test_completion_cut_after_s3_made_the_object_completes_on_another_instance(
    deploy: Deploy, engine: str, gc_first: bool
) -> None:
    deployment = deploy(database="postgresql", s3=engine, s3_proxy=True)
    proxy = deployment.s3_proxy
    assert proxy is not None
    data = os.urandom(SIZE)
    with _serve(deployment, engine, "first") as first:
        auth = sign_up(first.url)
        upload = _cut_after_s3_completion(deployment, proxy, first, auth, data)

    if gc_first:
        # The reconciler, before anyone asks again: the object has no file row
        # yet, but its upload can still be completed.
        _gc(deployment, engine)
        assert _object_exists(deployment, engine, upload), "seau gc deleted the upload's object"

    with _serve(deployment, engine, "second") as second:
        _assert_completes(second.url, auth, upload, data)
        assert_invariants(
            deployment,
            url=second.url,
            accounts=[auth],
            kept={upload: hashlib.sha256(data).hexdigest()},
        )


@pytest.mark.postgresql
@S3_ENGINES
def test_expired_upload_whose_completion_was_cut_is_made_a_file_by_gc(
    deploy: Deploy, engine: str
) -> None:
    deployment = deploy(database="postgresql", s3=engine, s3_proxy=True)
    proxy = deployment.s3_proxy
    assert proxy is not None
    data = os.urandom(SIZE)
    expiry = "8"
    with _serve(deployment, engine, "first", SEAU_UPLOAD_EXPIRY_SECONDS=expiry) as first:
        auth = sign_up(first.url)
        upload = _cut_after_s3_completion(deployment, proxy, first, auth, data)

    time.sleep(int(expiry))  # recorded `completing` a moment ago: expired now
    _gc(deployment, engine, SEAU_UPLOAD_EXPIRY_SECONDS=expiry)
    ready = {row.id: row for row in deployment.rows()}
    assert upload in ready, "seau gc did not make the upload its file"
    assert ready[upload].sha256 == hashlib.sha256(data).hexdigest()

    with _serve(deployment, engine, "second") as second:
        _assert_file(second.url, auth, upload, data)
        assert_invariants(
            deployment,
            url=second.url,
            accounts=[auth],
            kept={upload: hashlib.sha256(data).hexdigest()},
        )


@pytest.mark.postgresql
def test_local_completion_cut_after_the_rename_survives_gc_and_completes(
    deploy: Deploy,
) -> None:
    deployment = deploy(database="postgresql", db_proxy=True)
    proxy = deployment.db_proxy
    assert proxy is not None
    data = os.urandom(SIZE)
    with _serve(deployment, "local", "first") as server:
        auth = sign_up(server.url)
        upload = _create(server.url, auth, length=len(data), name="renamed.bin")
        # The staging file is renamed into place; the statement that marks the
        # upload done reaches the database, its connection is lost before the commit.
        proxy.lose_reply_to(b"done", then_refuse=False)
        answered = _patch(server.url, auth, upload, data)
        assert not proxy.armed, "the file's transaction never went through the proxy"
        _assert_503(answered, "database_unavailable")
        proxy.passthrough()
        assert _object_exists(deployment, "local", upload)

        _gc(deployment, "local")
        assert _object_exists(deployment, "local", upload), "seau gc deleted the upload's object"
        _assert_completes(server.url, auth, upload, data)
