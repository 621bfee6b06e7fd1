"""A seau sign-in's owner check, as SQL: made by its own statement, or folded into a
route's statement so that the request makes one trip to the database, not two.

A seau sign-in (a JWT seau signed) is good while its owner exists, is active and
still has the token version the token carries: disabling an account or signing out
everywhere bumps or clears those, and the very next request fails. The rule is
written once, as the conditions below; `Authenticator` checks them in a statement of
their own, and a route whose service folds them into its own statement
(`Principal.pending`) gets the same answer in the same transaction. When a folded
statement finds nothing, `confirm` tells a bad token (401) from a missing row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, bindparam, exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from seau.db.engine import READ_HERE
from seau.db.models import User
from seau.errors import InvalidToken

USERS = User.metadata.tables[User.__tablename__]
CONDITIONS: tuple[ColumnElement[bool], ...] = (
    USERS.c.id == bindparam("check_user_id"),
    USERS.c.is_active.is_(True),
    USERS.c.token_version == bindparam("check_version"),
)
"""The rule on `USERS`' columns, for a statement that selects from it; its values
are `OwnerCheck.params`. Bound parameters, so statements built on it are built once
and their compiled form cached."""
HOLDS: ColumnElement[bool] = exists().where(*CONDITIONS)
"""The rule as one condition, to add to any statement's ``WHERE``."""
# A row by its key: read on the event loop's thread on SQLite (`READ_HERE`).
_CONFIRM = select(HOLDS).execution_options(**{READ_HERE: True})


@dataclass(frozen=True, slots=True)
class OwnerCheck:
    """The owner ``user_id`` must exist, be active and be at token ``version``."""

    user_id: uuid.UUID
    version: int

    def params(self) -> dict[str, object]:
        """The values of `CONDITIONS` and `HOLDS`."""
        return {"check_user_id": self.user_id, "check_version": self.version}

    async def confirm(self, session: AsyncSession) -> None:
        """`InvalidToken` unless the rule holds: after a folded statement found
        nothing, whether that was the token or the row."""
        if not (await session.execute(_CONFIRM, self.params())).scalar():
            raise InvalidToken("the token is not valid")

    def confirm_in(self, executor: Connection | Session) -> None:
        """`confirm`, inside a synchronous unit (`AsyncSession.run_sync`,
        `AsyncConnection.run_sync`)."""
        if not executor.execute(_CONFIRM, self.params()).scalar():
            raise InvalidToken("the token is not valid")
