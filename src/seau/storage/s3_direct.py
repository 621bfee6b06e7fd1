"""Direct uploads on S3: presigned POSTs and part URLs, and the multipart calls.

The bytes go from the client to the bucket. The single-part POST's policy fixes
the key and the `Content-Type` and bounds the size (`content-length-range`, exactly
the declared size); with a declared SHA-256 it also carries
`x-amz-checksum-sha256`, which S3 checks on arrival and reports back, so seau need
not read the object to verify it. A presigned part PUT cannot bound its size; what
the parts add up to is checked at completion, like everything else.

Signing and the multipart calls both go through the resumable uploads' aiobotocore
adapter (`s3_staging`), whose client and error translation they share.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from seau.storage.direct import PartsRejected, PresignedPost, StoredPart
from seau.storage.errors import ObjectNotFound, StorageUnavailable
from seau.storage.keys import validate_key
from seau.storage.s3_links import MAX_EXPIRY
from seau.storage.s3_staging import S3UploadStaging, _describe, _error_of, _Gone, _sdk

# What S3 answers when the parts named do not make an object.
_REJECTED = frozenset({"InvalidPart", "InvalidPartOrder", "EntityTooSmall", "MalformedXML"})


class S3DirectUploads(S3UploadStaging):
    """`DirectTarget` and `UploadSigner` on one bucket (and prefix)."""

    # -- signing -------------------------------------------------------------

    async def presign_post(
        self,
        key: str,
        *,
        content_type: str,
        size: int,
        expires_in: timedelta,
        sha256: str | None,
    ) -> PresignedPost | None:
        fields = {"Content-Type": content_type}
        if sha256 is not None:
            fields["x-amz-checksum-algorithm"] = "SHA256"
            fields["x-amz-checksum-sha256"] = _base64(sha256)
        conditions: list[object] = [
            *({name: value} for name, value in fields.items()),
            ["content-length-range", size, size],
        ]
        answer = await self._sign(
            "generate_presigned_post",
            key,
            expires_in,
            Bucket=self._bucket,
            Key=self._full(key),
            Fields=fields,
            Conditions=conditions,
        )
        if answer is None:
            return None
        return PresignedPost(url=str(answer["url"]), fields=dict(answer["fields"]))

    async def presign_part(
        self, key: str, *, handle: str, number: int, expires_in: timedelta
    ) -> str | None:
        url = await self._sign(
            "generate_presigned_url",
            key,
            expires_in,
            ClientMethod="upload_part",
            Params={
                "Bucket": self._bucket,
                "Key": self._full(key),
                "UploadId": handle,
                "PartNumber": number,
            },
            HttpMethod="PUT",
        )
        return None if url is None else str(url)

    async def _sign(self, method: str, key: str, expires_in: timedelta, **arguments: Any) -> Any:
        validate_key(key)
        if not timedelta(seconds=1) <= expires_in <= MAX_EXPIRY:
            raise ValueError("a presigned URL lasts between 1 second and 7 days")
        # The multipart calls' aiobotocore client signs too: one SDK client in memory
        # (each loads S3's service model, ~20 MiB), not a botocore one beside it.
        await self._connect()
        try:
            return await getattr(self._client, method)(
                **arguments, ExpiresIn=int(expires_in.total_seconds())
            )
        except Exception as exc:
            if type(exc).__name__ == "NoCredentialsError":
                return None
            raise StorageUnavailable(f"signing an upload to {key!r} failed: {exc}") from None

    # -- the multipart upload ------------------------------------------------

    async def start_multipart(self, key: str, *, content_type: str) -> str:
        answer = await self._call(
            "create multipart upload",
            key,
            "create_multipart_upload",
            {"Bucket": self._bucket, "Key": self._full(key), "ContentType": content_type},
        )
        return str(answer["UploadId"])

    async def list_parts(self, key: str, *, handle: str) -> list[StoredPart]:
        found: list[StoredPart] = []
        marker: dict[str, object] = {}
        while True:
            try:
                page = await self._call(
                    "list parts",
                    key,
                    "list_parts",
                    {"Bucket": self._bucket, "Key": self._full(key), "UploadId": handle, **marker},
                )
            except _Gone:
                raise ObjectNotFound(key) from None
            for part in page.get("Parts", []):
                found.append(
                    StoredPart(
                        number=int(part["PartNumber"]),
                        etag=str(part["ETag"]),
                        size=int(part["Size"]),
                    )
                )
            if not page.get("IsTruncated"):
                return found
            marker = {"PartNumberMarker": page["NextPartNumberMarker"]}

    async def complete_multipart(
        self, key: str, *, handle: str, parts: Sequence[tuple[int, str]]
    ) -> None:
        await self._connect()
        sdk = _sdk()
        try:
            await self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._full(key),
                UploadId=handle,
                MultipartUpload={
                    "Parts": [{"PartNumber": number, "ETag": etag} for number, etag in parts]
                },
            )
        except sdk.client_error as exc:
            code = str(_error_of(exc).get("Code", ""))
            if code in _REJECTED:
                raise PartsRejected(_describe(exc)) from None
            if code == "NoSuchUpload" or await self._is_gone(key, handle):
                # moto answers 500 for an upload that is gone (see `s3_staging`).
                raise ObjectNotFound(key) from None
            raise StorageUnavailable(f"complete {key!r} failed: {_describe(exc)}") from None
        except sdk.errors as exc:
            raise StorageUnavailable(f"complete {key!r} failed: {_describe(exc)}") from None

    async def abort_multipart(self, key: str, *, handle: str) -> None:
        await self._abort_quietly(key, handle)

    async def stored_sha256(self, key: str) -> str | None:
        try:
            answer = await self._call(
                "head",
                key,
                "head_object",
                {"Bucket": self._bucket, "Key": self._full(key), "ChecksumMode": "ENABLED"},
            )
        except _Gone:
            raise ObjectNotFound(key) from None
        value = answer.get("ChecksumSHA256")
        # A multipart object's is a checksum of its parts' checksums ("...-3").
        if not isinstance(value, str) or "-" in value:
            return None
        try:
            return base64.b64decode(value, validate=True).hex()
        except (binascii.Error, ValueError):
            return None


def _base64(sha256_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")
