"""Event types and receiver secrets: the vocabulary settings, services and the
dispatcher share (no SQL, no HTTP)."""

from __future__ import annotations

import base64
import binascii
import enum
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105  (the format's prefix, not a secret)


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
