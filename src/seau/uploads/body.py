"""A tus request's body on its way to staging: the shared byte meter, set up
for resumable uploads."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterable
from functools import partial
from typing import TYPE_CHECKING

from seau.errors import SeauError
from seau.files.meter import ByteMeter
from seau.uploads.errors import BodyInterrupted, UploadTooLarge
from seau.uploads.lease import Lease
from seau.uploads.tus import Checksum

if TYPE_CHECKING:
    from hashlib import _Hash


def metered(
    data: AsyncIterable[bytes],
    *,
    room: int,
    lease: Lease,
    offset: int,
    checksum: Checksum | None,
    sha256: _Hash | None,
) -> ByteMeter:
    """Counted against the ``room`` left, stopped once the lease is lost,
    hashed for ``checksum`` and, continuing ``sha256``, for the file; a client
    that leaves (`BodyInterrupted`) ends it, and what came counts."""
    return ByteMeter(
        data,
        limit=room,
        too_large=_no_room,
        sha256=sha256,
        extra=hashlib.new(checksum.algorithm) if checksum is not None else None,
        stop=partial(lease.check, offset),
        interruptions=(BodyInterrupted,),
    )


def checksum_fails(body: ByteMeter, checksum: Checksum | None) -> bool:
    """Whether the bytes must go: an `Upload-Checksum` they do not match, or
    that an interrupted body leaves unverifiable."""
    if checksum is None:
        return False
    if body.interrupted or body.extra is None:
        return True
    return not secrets.compare_digest(body.extra.digest(), checksum.digest)


def _no_room(room: int) -> SeauError:
    return UploadTooLarge(f"the request carries more than the {room} bytes left")
