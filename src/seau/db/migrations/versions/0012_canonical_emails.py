"""Stored emails in the canonical form sign-in looks for.

Since sign-up and sign-in normalise an address (NFKC, lower-cased, NFKC again:
`seau.auth.emails`) and every database compares emails byte for byte (0003), an
account stored in another form before that (``Ada@Example.com``, fullwidth letters,
a ligature) could no longer sign in. Each such email is rewritten to the canonical
form, unless that form is another account's already, or two stored emails share it
(then neither is changed: which account the address means is the operator's call,
and the migration logs their ids), or the address holds a character sign-up now
refuses (format or control characters: left as it is, unreachable by sign-in).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import logging
import unicodedata
from collections import defaultdict

import sqlalchemy as sa
from alembic import context, op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

_ACCOUNTS = sa.table("user_account", sa.column("id", sa.Uuid()), sa.column("email"))


def canonical(email: str) -> str | None:
    """The form sign-in uses (as `seau.auth.emails.normalize_email` at this
    revision, which a migration must not import), or None for an address that
    sign-up would refuse."""
    text = unicodedata.normalize("NFKC", email).strip()
    text = unicodedata.normalize("NFKC", text.lower())
    if any(unicodedata.category(char) in ("Cf", "Cc") for char in text):
        return None
    return text


def upgrade() -> None:
    if context.is_offline_mode():
        # The rewrite is Python's (Unicode normalisation), row by row: generated SQL
        # cannot carry it. Offline upgrades leave stored emails as they are.
        op.execute("-- 0012: stored emails are made canonical only by an online upgrade")
        return
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_ACCOUNTS.c.id, _ACCOUNTS.c.email).where(_ACCOUNTS.c.email.is_not(None))
    ).all()
    stored = {email for _, email in rows}
    wanted: dict[str, list[tuple[object, str]]] = defaultdict(list)
    for account_id, email in rows:
        target = canonical(email)
        if target is not None and target != email:
            wanted[target].append((account_id, email))
    for target, accounts in wanted.items():
        if len(accounts) > 1 or target in stored:
            ids = ", ".join(str(account_id) for account_id, _ in accounts)
            log.warning(
                "emails of accounts %s stay as stored: their canonical form %r is "
                "another account's, or theirs together",
                ids,
                target,
            )
            continue
        ((account_id, _),) = accounts
        connection.execute(
            sa.update(_ACCOUNTS).where(_ACCOUNTS.c.id == account_id).values(email=target)
        )


def downgrade() -> None:
    # The former spellings are not kept; the canonical ones sign in on either side.
    pass
