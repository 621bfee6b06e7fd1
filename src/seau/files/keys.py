"""The one place object keys are made. Never from anything the client sent."""

from __future__ import annotations

import uuid

FILES_PREFIX = "files/"


def key_for(file_id: uuid.UUID) -> str:
    # Two hex characters of fan-out keep local-store directories small.
    return f"{FILES_PREFIX}{file_id.hex[:2]}/{file_id.hex}"
