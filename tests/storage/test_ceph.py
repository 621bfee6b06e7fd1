"""What only a real S3 engine shows: Ceph's RADOS Gateway, where it and moto differ.

seau follows AWS's documented behaviour; each test here names the server that
deviates. The contract suites (test_contract.py, test_staging.py) run on Ceph too;
these are the cases moto cannot show at all:

- a wrong secret: AWS and Ceph refuse it (403 SignatureDoesNotMatch), moto accepts
  any key, so only Ceph tests that seau reports it clearly (at start-up, and as a 503);
- CompleteMultipartUpload: AWS answers the object's ETag, Ceph 16.2 an empty one
  (the store asks the object instead: test_contract.py);
- completing an upload that was aborted: AWS answers 404 NoSuchUpload, moto and Ceph
  16.2 a 500 (the staging adapter tells it apart: test_staging.py);
- the ``Initiated`` date of a multipart upload: real on AWS and Ceph, always
  2010-11-10 on moto (test_staging.py).
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from seau.app import create_app
from seau.errors import PreflightError
from seau.preflight import preflight
from seau.settings import Settings, load_settings
from seau.storage import StorageUnavailable
from seau.storage.s3 import ObstoreS3Store
from tests.api.helpers import assert_problem
from tests.conftest import TEST_SECRET, sign_up
from tests.storage.conftest import s3_options
from tests.storage.helpers import MiB, chunks, read_all
from tests.support.ceph import CephCluster
from tests.support.moto import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    MotoServer,
    make_bucket,
)
from tests.support.server import SEAU, server_env

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

pytestmark = [pytest.mark.s3, pytest.mark.ceph]

WRONG_SECRET = "not-the-secret-0123456789"


def _client(endpoint_url: str, *, secret: str = SECRET_ACCESS_KEY) -> S3Client:
    """boto3, to show what the server itself answers; never the code under test."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=secret,
        region_name=REGION,
        # One attempt: the 500s below are the answer, not a reason to retry.
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def _settings(tmp_path: Path, endpoint_url: str, *, secret: str) -> dict[str, object]:
    return {
        "data_dir": tmp_path,
        "storage_url": f"s3://{make_bucket(endpoint_url)}",
        "secret_key": TEST_SECRET,
        "aws_endpoint_url": endpoint_url,
        "aws_access_key_id": ACCESS_KEY_ID,
        "aws_secret_access_key": secret,
        "aws_region": REGION,
        "s3_path_style": True,
    }


# -- credentials: Ceph refuses a wrong secret, as AWS does -------------------


async def test_a_wrong_secret_is_refused_by_ceph_without_showing_it(
    ceph_server: CephCluster,
) -> None:
    endpoint = ceph_server.endpoint_url
    bucket = make_bucket(endpoint)
    good = ObstoreS3Store(s3_options(endpoint, bucket=bucket))
    await good.put("k", chunks(b"kept"))
    wrong = ObstoreS3Store(
        replace(s3_options(endpoint, bucket=bucket), secret_access_key=WRONG_SECRET)
    )
    for call in (
        lambda: wrong.put("k", chunks(b"replaced")),
        lambda: wrong.get("k"),
        lambda: wrong.head("k"),
        lambda: wrong.delete("k"),
    ):
        with pytest.raises(StorageUnavailable) as raised:
            await call()
        assert WRONG_SECRET not in str(raised.value)
    assert await read_all(await good.get("k")) == b"kept"


def test_moto_deviates_and_accepts_any_secret(s3_server: MotoServer) -> None:
    # Why the credential tests need Ceph: moto's server answers a wrong secret 200.
    endpoint = s3_server.endpoint_url
    bucket = make_bucket(endpoint)
    listed = _client(endpoint, secret=WRONG_SECRET).list_objects_v2(Bucket=bucket)
    assert listed["ResponseMetadata"]["HTTPStatusCode"] == 200


async def test_a_wrong_secret_is_a_one_line_startup_error(
    ceph_server: CephCluster, tmp_path: Path
) -> None:
    settings = load_settings(**_settings(tmp_path, ceph_server.endpoint_url, secret=WRONG_SECRET))
    with pytest.raises(PreflightError) as caught:
        await preflight(settings)
    line = str(caught.value)
    assert "\n" not in line
    assert "refused the credentials" in line
    assert "AWS_SECRET_ACCESS_KEY" in line
    assert WRONG_SECRET not in line


def test_seau_serve_with_a_wrong_secret_stops_with_one_line(
    ceph_server: CephCluster, tmp_path: Path
) -> None:
    endpoint = ceph_server.endpoint_url
    env = server_env(
        {
            "SEAU_DATA_DIR": str(tmp_path),
            "SEAU_STORAGE_URL": f"s3://{make_bucket(endpoint)}",
            "SEAU_S3_PATH_STYLE": "true",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": WRONG_SECRET,
            "AWS_REGION": REGION,
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
    assert "refused the credentials" in lines[0]
    assert WRONG_SECRET not in done.stderr


@pytest.fixture
async def wrong_secret_client(
    ceph_server: CephCluster, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """An app whose secret went wrong after it started (rotated, say): no preflight."""
    settings = Settings(
        **_settings(tmp_path, ceph_server.endpoint_url, secret=WRONG_SECRET),  # type: ignore[arg-type]
        storage_timeout_seconds=5,
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://seau.test"
        ) as client,
    ):
        yield client


async def test_a_wrong_secret_answers_503_and_readiness_says_so(
    wrong_secret_client: httpx.AsyncClient,
) -> None:
    auth = await sign_up(wrong_secret_client)
    upload = await wrong_secret_client.post(
        "/api/v1/files", params={"name": "x.bin"}, content=b"x" * 1000, headers=auth
    )
    assert_problem(upload, 503, "storage_unavailable")
    assert WRONG_SECRET not in upload.text
    assert_problem(await wrong_secret_client.get("/readyz"), 503, "storage_unavailable")


# -- what Ceph 16.2 answers where AWS documents otherwise ----------------------
# Facts about the servers, not about seau: should an upgrade of either fix its
# deviation, these fail, and the workaround they justify can be reconsidered.


def test_ceph_deviates_with_an_empty_etag_on_completing_a_multipart_upload(
    ceph_server: CephCluster,
) -> None:
    client = _client(ceph_server.endpoint_url)
    bucket = make_bucket(ceph_server.endpoint_url)
    handle = client.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    part = client.upload_part(
        Bucket=bucket, Key="k", UploadId=handle, PartNumber=1, Body=b"a" * 5 * MiB
    )
    done = client.complete_multipart_upload(
        Bucket=bucket,
        Key="k",
        UploadId=handle,
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )
    assert done.get("ETag", "") == ""
    assert client.head_object(Bucket=bucket, Key="k")["ETag"].endswith('-1"')


@pytest.mark.parametrize("engine", ["s3_server", "ceph_server"], ids=["moto", "ceph"])
def test_both_deviate_with_a_500_on_completing_an_aborted_upload(
    request: pytest.FixtureRequest, engine: str
) -> None:
    endpoint: str = request.getfixturevalue(engine).endpoint_url
    client = _client(endpoint)
    bucket = make_bucket(endpoint)
    handle = client.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    part = client.upload_part(Bucket=bucket, Key="k", UploadId=handle, PartNumber=1, Body=b"a")
    client.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=handle)
    with pytest.raises(ClientError) as raised:
        client.complete_multipart_upload(
            Bucket=bucket,
            Key="k",
            UploadId=handle,
            MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
        )
    # AWS: 404 NoSuchUpload.
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
