"""`seau apikey create|list|revoke`: service keys for the application's backend,
server side, straight to the database (as `seau user …`)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from seau.auth.keys import NewKey
from seau.db.models import AccessKey, AccessKeyKind
from seau.errors import CommandError
from seau.preflight import command_parts
from seau.settings import Settings


async def create_key(
    settings: Settings, *, name: str, scopes: list[str], expires_in: int | None
) -> NewKey:
    """A new service key; `InvalidScopes` for a scope a service key may not have."""
    async with command_parts(settings) as parts:
        return await parts.keys.create(
            kind=AccessKeyKind.SERVICE,
            name=name,
            scopes=scopes,
            expires_in=None if expires_in is None else timedelta(seconds=expires_in),
        )


async def list_keys(settings: Settings) -> list[AccessKey]:
    async with command_parts(settings) as parts:
        return await parts.keys.list(kind=AccessKeyKind.SERVICE)


async def revoke_key(settings: Settings, ref: str) -> AccessKey:
    """Delete the service key ``ref`` names (its id, else its exact name, when only one
    key has it): every instance refuses it from the next request."""
    async with command_parts(settings) as parts:
        keys = await parts.keys.list(kind=AccessKeyKind.SERVICE)
        try:
            wanted = uuid.UUID(ref.strip())
        except ValueError:
            matches = [key for key in keys if key.name == ref]
        else:
            matches = [key for key in keys if key.id == wanted]
        if not matches:
            raise CommandError(f"no service key {ref!r}")
        if len(matches) > 1:
            ids = ", ".join(str(key.id) for key in matches)
            raise CommandError(f"{len(matches)} service keys are named {ref!r}; give one id: {ids}")
        await parts.keys.revoke(matches[0].id, kind=AccessKeyKind.SERVICE)
        return matches[0]
