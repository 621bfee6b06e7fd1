"""An S3 that checks presigned URLs, for tests: moto's server does not.

moto answers a presigned GET whatever its signature and however long ago it
expired, so the links are sent through `VerifyingS3`, an httpx transport that does
what AWS does first (SigV4 query authentication, `X-Amz-Expires`, no second
credential in an `Authorization` header) and forwards what passes to moto.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote, urlsplit

import httpx

_ALGORITHM = "AWS4-HMAC-SHA256"


def _quote(text: str) -> str:
    return quote(text, safe="-_.~")


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def signature_problem(
    method: str, url: str, *, secret_access_key: str, now: datetime | None = None
) -> str | None:
    """Why S3 would refuse this presigned ``url``, or None when it would accept it."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    params = dict(pairs)
    if params.get("X-Amz-Algorithm") != _ALGORITHM:
        return "not a SigV4 presigned URL"
    signature = params.get("X-Amz-Signature", "")
    credential = params["X-Amz-Credential"].split("/")
    date, region, service = credential[1], credential[2], credential[3]
    amz_date = params["X-Amz-Date"]
    signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if (now or datetime.now(UTC)) > signed_at + timedelta(seconds=int(params["X-Amz-Expires"])):
        return "Request has expired"
    canonical_query = "&".join(
        f"{_quote(k)}={_quote(v)}" for k, v in sorted(pairs) if k != "X-Amz-Signature"
    )
    host = parts.netloc
    signed_headers = params["X-Amz-SignedHeaders"]
    if signed_headers != "host":
        return f"unexpected signed headers {signed_headers!r}"
    canonical_request = "\n".join(
        (method, parts.path, canonical_query, f"host:{host}\n", "host", "UNSIGNED-PAYLOAD")
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        (_ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest())
    )
    key = _hmac(("AWS4" + secret_access_key).encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return "SignatureDoesNotMatch"
    return None


class VerifyingS3(httpx.AsyncBaseTransport):
    """Refuses, as AWS does, what moto would accept; forwards the rest to moto."""

    def __init__(self, *, secret_access_key: str) -> None:
        self._secret = secret_access_key
        self._forward = httpx.AsyncHTTPTransport()
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if "authorization" in request.headers:
            return _refuse(400, "InvalidArgument", "Only one auth mechanism allowed")
        problem = signature_problem(
            request.method, str(request.url), secret_access_key=self._secret
        )
        if problem is not None:
            return _refuse(403, "AccessDenied", problem)
        return await self._forward.handle_async_request(request)

    async def aclose(self) -> None:
        await self._forward.aclose()


def _refuse(status: int, code: str, message: str) -> httpx.Response:
    body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return httpx.Response(
        status, content=body.encode(), headers={"Content-Type": "application/xml"}
    )
