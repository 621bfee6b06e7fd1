"""Owners by subject: found, or made on first use, on any instance."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from seau.db.base import utcnow
from seau.db.models import OwnerUsage, User
from seau.errors import InvalidSubject

MAX_SUBJECT_LENGTH = 255

_USERS = User.metadata.tables[User.__tablename__]
_BY_SUBJECT = select(_USERS.c.id, _USERS.c.is_active, _USERS.c.is_admin).where(
    _USERS.c.subject == bindparam("subject")
)


@dataclass(frozen=True, slots=True)
class Owner:
    id: uuid.UUID
    is_active: bool
    is_admin: bool


def check_subject(subject: str) -> str:
    """A subject as tokens and `Seau-Subject` give it: 1 to 255 characters, no
    control characters; kept exactly (subjects are case-sensitive)."""
    if not 0 < len(subject) <= MAX_SUBJECT_LENGTH:
        raise InvalidSubject(f"a subject is 1 to {MAX_SUBJECT_LENGTH} characters long")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in subject):
        raise InvalidSubject("a subject has no control characters")
    return subject


def new_usage(owner_id: uuid.UUID) -> OwnerUsage:
    """The quota usage row of a new owner (`seau.quotas`): nothing used yet."""
    return OwnerUsage(
        owner_id=owner_id, used_bytes=0, used_files=0, reserved_bytes=0, reserved_files=0
    )


def _clip(value: str | None, length: int) -> str | None:
    return None if value is None else value[:length]


async def owner_for(
    session: AsyncSession,
    subject: str,
    *,
    email: str | None = None,
    name: str | None = None,
) -> Owner:
    """The owner named ``subject``, made (with the token's ``email`` and ``name``,
    for display) when there is none. Two instances making the same owner at once
    agree: the unique subject lets one insert win and the other reads it.

    Commits when it makes the owner; otherwise only reads."""
    found = (await session.execute(_BY_SUBJECT, {"subject": subject})).first()
    if found is not None:
        return Owner(id=found.id, is_active=found.is_active, is_admin=found.is_admin)
    owner_id = uuid.uuid4()
    try:
        await session.execute(
            insert(_USERS).values(
                id=owner_id,
                subject=subject,
                profile_email=_clip(email, 320),
                profile_name=_clip(name, 255),
                is_active=True,
                is_admin=False,
                token_version=0,
                created_at=utcnow(),
            )
        )
        # Its quota usage row, with it: the first uploads need not make it.
        session.add(new_usage(owner_id))
        await session.commit()
    except IntegrityError:
        await session.rollback()
        found = (await session.execute(_BY_SUBJECT, {"subject": subject})).first()
        if found is None:
            raise
        return Owner(id=found.id, is_active=found.is_active, is_admin=found.is_admin)
    return Owner(id=owner_id, is_active=True, is_admin=False)
