"""The signing itself, without a server: seau's tokens, and S3's presigned URLs as
AWS checks them (tests/links/sigv4.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from seau.db.models import UserFile
from seau.errors import InvalidLink, LinkExpired, LinkNotFound
from seau.files.links import LINKS_PATH, DownloadLinks, LinkClaims, _link_key, _mac, sign_token
from seau.storage import StorageUnavailable
from seau.storage.factory import S3Options, open_download_links, open_store
from seau.storage.s3_links import S3DownloadLinks
from tests.links.sigv4 import signature_problem

SECRET = "s" * 40
NOW = 1_800_000_000.0


def _row(name: str = "a.txt", content_type: str = "text/plain") -> UserFile:
    return cast(
        UserFile,
        SimpleNamespace(
            id=uuid.uuid4(),
            owner_id=uuid.uuid4(),
            name=name,
            content_type=content_type,
            object_key="files/ab/abc",
        ),
    )


def _links(store_links: Any = None, now: float = NOW) -> DownloadLinks:
    return DownloadLinks(
        secret=SECRET, max_ttl=timedelta(seconds=300), store_links=store_links, clock=lambda: now
    )


async def test_a_token_carries_file_owner_expiry_and_disposition() -> None:
    row = _row()
    link = await _links().issue(row, lifetime=timedelta(seconds=60), inline=True)
    assert link.url.startswith(LINKS_PATH)
    assert link.expires_at == datetime.fromtimestamp(NOW + 60, tz=UTC)
    claims = _links(now=NOW + 59).verify(link.url.removeprefix(LINKS_PATH))
    assert claims == LinkClaims(
        file_id=row.id, owner_id=row.owner_id, expires=int(NOW) + 60, inline=True
    )
    with pytest.raises(LinkExpired):
        _links(now=NOW + 60).verify(link.url.removeprefix(LINKS_PATH))


def test_only_seau_s_own_signature_passes() -> None:
    claims = LinkClaims(uuid.uuid4(), uuid.uuid4(), int(NOW) + 10, inline=False)
    good = sign_token(SECRET, claims)
    assert _links().verify(good) == claims
    for bad in (
        sign_token("t" * 40, claims),
        good.replace(".a.", ".i."),
        good[:-1],
        "",
        ".",
        "2" + good[1:],
    ):
        with pytest.raises(LinkNotFound):
            _links().verify(bad)


def test_a_lifetime_is_bounded_by_the_maximum() -> None:
    links = _links()
    assert links.lifetime(None) == timedelta(seconds=300)
    assert links.lifetime(300) == timedelta(seconds=300)
    for wrong in (0, 301):
        with pytest.raises(InvalidLink):
            links.lifetime(wrong)


class _Unsigned:
    """A store that cannot sign (no credentials): seau signs the link itself."""

    async def presign_get(self, key: str, **_: object) -> str | None:
        return None


async def test_a_store_without_credentials_leaves_the_link_to_seau() -> None:
    link = await _links(_Unsigned()).issue(_row(), lifetime=timedelta(seconds=5), inline=False)
    assert link.url.startswith(LINKS_PATH)


def _options(**changes: Any) -> S3Options:
    base: dict[str, Any] = {
        "bucket": "bucket",
        "prefix": "tenant/a",
        "endpoint_url": "http://127.0.0.1:9000",
        "region": "eu-west-3",
        "access_key_id": "AKID",
        "secret_access_key": "sekrit",
        "path_style": True,
    }
    return S3Options(**(base | changes))


async def test_a_presigned_url_signs_the_overrides_and_the_prefixed_key() -> None:
    signer = S3DownloadLinks(_options())
    disposition = "attachment; filename=\"a b.txt\"; filename*=UTF-8''a%20b.txt"
    url = await signer.presign_get(
        "files/ab/abc",
        expires_in=timedelta(seconds=90),
        content_type="text/plain",
        content_disposition=disposition,
    )
    assert url is not None
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        "http://127.0.0.1:9000/bucket/tenant/a/files/ab/abc"
    )
    query = parse_qs(parts.query)
    assert query["response-content-disposition"] == [disposition]
    assert query["response-content-type"] == ["text/plain"]
    assert query["X-Amz-Expires"] == ["90"]
    assert "/eu-west-3/s3/" in query["X-Amz-Credential"][0]
    assert signature_problem("GET", url, secret_access_key="sekrit") is None
    # The overrides are signed: changing one breaks the URL, as does the wrong key.
    tampered = url.replace(
        urlencode({"response-content-type": "text/plain"}),
        urlencode({"response-content-type": "text/html"}),
    )
    assert tampered != url
    assert signature_problem("GET", tampered, secret_access_key="sekrit") == (
        "SignatureDoesNotMatch"
    )
    assert signature_problem("GET", url, secret_access_key="other") == "SignatureDoesNotMatch"
    later = datetime.now(UTC) + timedelta(seconds=91)
    assert signature_problem("GET", url, secret_access_key="sekrit", now=later) == (
        "Request has expired"
    )


async def test_virtual_hosted_urls_name_the_bucket_in_the_host() -> None:
    signer = S3DownloadLinks(_options(path_style=False, endpoint_url=None, prefix=""))
    url = await signer.presign_get(
        "files/ab/abc",
        expires_in=timedelta(seconds=1),
        content_type="image/png",
        content_disposition="inline",
    )
    assert url is not None
    assert urlsplit(url).netloc == "bucket.s3.eu-west-3.amazonaws.com"
    assert urlsplit(url).path == "/files/ab/abc"


async def test_no_credentials_means_no_presigned_url(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    signer = S3DownloadLinks(_options(access_key_id=None, secret_access_key=None))
    url = await signer.presign_get(
        "files/ab/abc",
        expires_in=timedelta(seconds=5),
        content_type="text/plain",
        content_disposition="attachment",
    )
    assert url is None


async def test_wrong_lifetimes_and_keys_are_bugs() -> None:
    signer = S3DownloadLinks(_options())
    for lifetime in (timedelta(0), timedelta(days=8)):
        with pytest.raises(ValueError, match="7 days"):
            await signer.presign_get(
                "k", expires_in=lifetime, content_type="a/b", content_disposition="attachment"
            )
    with pytest.raises(ValueError, match="bucket"):
        S3DownloadLinks(_options(bucket=""))


def test_only_s3_has_the_capability(tmp_path: Any) -> None:
    assert open_download_links(open_store(tmp_path.as_uri())) is None
    assert open_download_links(open_store("memory://")) is None
    s3 = open_store("s3://bucket", s3=_options())
    assert isinstance(open_download_links(s3), S3DownloadLinks)


def test_a_well_signed_token_of_another_shape_is_not_found() -> None:
    key = _link_key(SECRET)
    for payload in ("2.a.b.1.a", "1.zz.zz.1.a", "1.a.b.c", "1." + "0" * 32 + ".x.1.a"):
        with pytest.raises(LinkNotFound):
            _links().verify(f"{payload}.{_mac(key, payload)}")


async def test_a_signing_failure_is_the_store_unavailable() -> None:
    signer = S3DownloadLinks(_options())

    class Broken:
        def generate_presigned_url(self, *args: object, **kwargs: object) -> str:
            raise RuntimeError("the SDK broke")

    signer._client = Broken()
    with pytest.raises(StorageUnavailable, match="the SDK broke"):
        await signer.presign_get(
            "k",
            expires_in=timedelta(seconds=5),
            content_type="a/b",
            content_disposition="attachment",
        )
