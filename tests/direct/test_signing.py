"""The URLs seau signs for direct uploads on the local store."""

from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import parse_qs

import pytest

from seau.direct.errors import BadSignature, UrlExpired
from seau.direct.signing import OBJECT, UrlSigner, part_target

SECRET = "s" * 40


def _signed(signer: UrlSigner, upload: uuid.UUID, target: str) -> tuple[str, str]:
    query, _ = signer.sign(upload, target, lifetime=timedelta(seconds=60))
    fields = parse_qs(query)
    return fields["expires"][0], fields["signature"][0]


def test_a_url_is_accepted_for_what_it_was_signed_for_only() -> None:
    signer = UrlSigner(secret=SECRET, clock=lambda: 1000.0)
    upload = uuid.uuid4()
    expires, signature = _signed(signer, upload, part_target(3))
    signer.verify(upload, part_target(3), expires=expires, signature=signature)
    for other_upload, target in [
        (upload, part_target(4)),
        (upload, OBJECT),
        (uuid.uuid4(), part_target(3)),
    ]:
        with pytest.raises(BadSignature):
            signer.verify(other_upload, target, expires=expires, signature=signature)
    with pytest.raises(BadSignature):
        signer.verify(upload, part_target(3), expires=str(int(expires) + 1), signature=signature)
    with pytest.raises(BadSignature):
        UrlSigner(secret="t" * 40, clock=lambda: 1000.0).verify(
            upload, part_target(3), expires=expires, signature=signature
        )


def test_an_expired_url_is_refused_after_its_signature_is_checked() -> None:
    now = [1000.0]
    signer = UrlSigner(secret=SECRET, clock=lambda: now[0])
    upload = uuid.uuid4()
    expires, signature = _signed(signer, upload, OBJECT)
    now[0] = 1060.0
    with pytest.raises(UrlExpired):
        signer.verify(upload, OBJECT, expires=expires, signature=signature)
    with pytest.raises(BadSignature):
        signer.verify(upload, OBJECT, expires=expires, signature="x" + signature[1:])
    with pytest.raises(BadSignature):
        signer.verify(upload, OBJECT, expires="-5", signature=signature)
