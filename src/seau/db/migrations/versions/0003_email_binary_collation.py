"""Emails compare byte for byte on MariaDB/MySQL too.

`utf8mb4_unicode_ci` treats `victim@exámple.com`, `VICTIM@example.com` and
`victim@exam\u200bple.com` as the same string, so each spelling found the victim's
row while the sign-in throttle counted it as another account. `utf8mb4_bin`
compares bytes, as SQLite's BINARY and PostgreSQL's deterministic collations do
already: nothing changes there. The rows are kept as they are (a binary
collation only tells more strings apart, so the unique index still holds).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _set_email_collation(collation: str) -> None:
    if op.get_context().dialect.name not in ("mysql", "mariadb"):
        return
    op.alter_column(
        "user_account",
        "email",
        existing_type=sa.String(320),
        type_=mysql.VARCHAR(320, charset="utf8mb4", collation=collation),
        existing_nullable=False,
        nullable=False,
    )


def upgrade() -> None:
    _set_email_collation("utf8mb4_bin")


def downgrade() -> None:
    # Fails if two accounts now differ only in what the old collation ignored.
    _set_email_collation("utf8mb4_unicode_ci")
