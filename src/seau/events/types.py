"""Event types and receiver secrets: the vocabulary settings, services and the
dispatcher share (no SQL, no HTTP)."""

from __future__ import annotations

import base64
import binascii
import enum
import re
import secrets
import uuid

SECRET_PREFIX = "whsec_"  # noqa: S105  (the format's prefix, not a secret)
MESSAGE_ID_PREFIX = "msg_"

FAILURE_REF_PATTERN = (
    r"^(msg_[0-9a-fA-F]{32}|[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
    r"[0-9a-fA-F]{4}-?[0-9a-fA-F]{12})$"
)
"""What `seau webhook replay` and the API's replay take: an event's `msg_…` id, or a
UUID (a delivery's id, or an event's without its prefix)."""
_FAILURE_REF = re.compile(FAILURE_REF_PATTERN)


class EventType(enum.StrEnum):
    FILE_READY = "file.ready"
    FILE_RENAMED = "file.renamed"
    FILE_DELETED = "file.deleted"
    UPLOAD_EXPIRED = "upload.expired"


def parse_event_types(value: str) -> frozenset[EventType]:
    """``file.ready,file.deleted`` → those types; empty → every type.

    Raises `ValueError` naming an unknown type.
    """
    names = [item.strip() for item in value.split(",") if item.strip()]
    try:
        chosen = frozenset(EventType(name) for name in names)
    except ValueError:
        known = ", ".join(t.value for t in EventType)
        raise ValueError(f"unknown event type in {value!r}; known: {known}") from None
    return chosen or frozenset(EventType)


def format_event_types(types: frozenset[EventType]) -> str:
    """The stored form: empty for every type."""
    if types == frozenset(EventType):
        return ""
    return ",".join(sorted(types))


def check_secret(value: str) -> str:
    """A Standard Webhooks secret (``whsec_`` and base64 of 24 to 64 bytes), or
    `ValueError`."""
    if not value.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_ (Standard Webhooks)")
    try:
        key = base64.b64decode(value.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret is whsec_ followed by base64") from None
    # The specification asks for 24 to 64 bytes of key.
    if not 24 <= len(key) <= 64:
        raise ValueError("a webhook secret holds 24 to 64 bytes (whsec_ + base64)")
    return value


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def message_id(event_id: uuid.UUID) -> str:
    """The event's id as its receivers see it in `webhook-id`, on every attempt and to
    every receiver; the only form seau shows it in (logs, `seau webhook failures`, the
    admin API)."""
    return f"{MESSAGE_ID_PREFIX}{event_id.hex}"


def parse_failure_ref(value: str) -> tuple[uuid.UUID, bool]:
    """``msg_<32 hex>`` → (the event's id, True); a UUID → (it, False), a delivery's
    id or an event's. Raises `ValueError`."""
    value = value.strip()
    if not _FAILURE_REF.match(value):
        raise ValueError(f"not an event id (msg_…) nor a UUID: {value!r}")
    if value.startswith(MESSAGE_ID_PREFIX):
        return uuid.UUID(hex=value.removeprefix(MESSAGE_ID_PREFIX)), True
    return uuid.UUID(value), False
