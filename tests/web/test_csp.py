"""The page's CSP names the provider's origin, built only from a plain http(s) URL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config

from seau.settings import Settings, provider_origin
from seau.web.routes import bucket_origins, page_csp


@pytest.mark.parametrize(
    ("issuer", "origin"),
    [
        ("http://127.0.0.1:4000", "http://127.0.0.1:4000"),
        ("https://Login.Example.com/realms/app/", "https://login.example.com"),
        ("https://login.example.com:8443/tenant?x#y", "https://login.example.com:8443"),
    ],
)
def test_the_origin_of_an_issuer(issuer: str, origin: str) -> None:
    assert provider_origin(issuer) == origin


@pytest.mark.parametrize(
    "issuer",
    [
        "https://login.example.com; script-src *",
        "https://login;example.com",
        "https://user:secret@login.example.com",
        "ftp://login.example.com",
        "https://[::1]:8443/",
        "https://login.example.com:port/",
        "https:///path-only",
    ],
)
def test_an_issuer_a_csp_cannot_name_is_refused(issuer: str) -> None:
    with pytest.raises(ValueError, match="issuer"):
        provider_origin(issuer)


def test_only_the_providers_origin_joins_connect_src() -> None:
    directives = dict(d.split(" ", 1) for d in page_csp("https://id.example.com/x").split("; "))
    assert directives["connect-src"] == "'self' https://id.example.com"
    assert directives["form-action"] == "'none'"
    assert dict(d.split(" ", 1) for d in page_csp(None).split("; "))["connect-src"] == "'self'"


@pytest.mark.parametrize("issuer", ["https://[::1]:8443/", "https://user:secret@id.example.com"])
def test_settings_refuse_a_page_provider_the_csp_cannot_name(issuer: str, tmp_path: Path) -> None:
    # Refused when seau starts, not as a 500 of the page.
    with pytest.raises(ValueError, match="a CSP can name"):
        Settings(data_dir=tmp_path, oidc_issuer=issuer, oidc_audience="seau", oidc_client_id="page")
    # Without the page's client id the CSP does not name it: tokens alone are fine.
    assert Settings(data_dir=tmp_path, oidc_issuer=issuer, oidc_audience="seau").oidc_issuer


@pytest.mark.parametrize(
    ("endpoint", "path_style", "region", "bucket"),
    [
        (None, False, None, "photos"),
        (None, False, "eu-west-3", "photos"),
        (None, True, "eu-west-3", "photos"),
        (None, False, "eu-west-3", "photos.example.com"),
        (None, False, "cn-north-1", "photos"),
        ("https://minio.example.com:9000", False, "us-east-1", "photos"),
        ("https://minio.example.com:9000", True, "us-east-1", "photos"),
        ("http://127.0.0.1:5000", False, "us-east-1", "photos"),
        ("https://Fsn1.Your-Objectstorage.com", False, "eu", "photos"),
    ],
)
def test_the_bucket_origins_are_where_the_sdk_presigns_parts(
    endpoint: str | None, path_style: bool, region: str | None, bucket: str, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        storage_url=f"s3://{bucket}/prefix",
        aws_endpoint_url=endpoint,
        aws_region=region,
        s3_path_style=path_style,
    )
    # botocore, configured as seau's S3 signer is (storage/s3_staging.py), decides.
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="a",
        aws_secret_access_key="b",
        region_name=region or "us-east-1",
        config=Config(s3={"addressing_style": "path" if path_style else "virtual"}),
    )
    part = client.generate_presigned_url(
        "upload_part",
        Params={"Bucket": bucket, "Key": "prefix/files/x", "UploadId": "u", "PartNumber": 1},
        HttpMethod="PUT",
    )
    post = client.generate_presigned_post(bucket, "prefix/files/x")["url"]
    origins = bucket_origins(settings)
    for url in (part, post):
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc.lower()}" in origins
    directives = dict(d.split(" ", 1) for d in page_csp(None, origins).split("; "))
    assert directives["connect-src"] == " ".join(["'self'", *origins])


def test_no_bucket_origin_on_the_local_store_or_an_endpoint_a_csp_cannot_name(
    tmp_path: Path,
) -> None:
    assert bucket_origins(Settings(data_dir=tmp_path)) == ()
    odd = Settings(
        data_dir=tmp_path, storage_url="s3://photos", aws_endpoint_url="https://[::1]:9000"
    )
    assert bucket_origins(odd) == ()
