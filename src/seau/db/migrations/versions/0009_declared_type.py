"""The type an uploader declared, kept beside the one detected from the bytes.

`content_type` becomes the type detected from a file's first bytes (the one it is
served as); `declared_type` keeps what the uploader claimed. Rows stored before had
only the claim: both columns hold it. Uploads in flight (`upload`) get the column
too, filled the same way.

SQLite adds the column in place (`ALTER TABLE … ADD COLUMN … NOT NULL DEFAULT ''`,
then the copy) rather than rebuilding `user_file` in batch mode, which would
break the rowid-keyed FTS5 index of 0004. The empty default stays in SQLite's
schema and is never used: every insert names the column.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TABLES = ("user_file", "upload")


def upgrade() -> None:
    sqlite = op.get_context().dialect.name == "sqlite"
    for table in TABLES:
        if sqlite:
            op.execute(
                f"ALTER TABLE {table} ADD COLUMN declared_type VARCHAR(255) NOT NULL DEFAULT ''"
            )
        else:
            op.add_column(table, sa.Column("declared_type", sa.String(255), nullable=True))
        op.execute(f"UPDATE {table} SET declared_type = content_type")  # noqa: S608 (TABLES)
        if not sqlite:
            op.alter_column(table, "declared_type", existing_type=sa.String(255), nullable=False)


def downgrade() -> None:
    for table in TABLES:
        if op.get_context().dialect.name == "sqlite":
            # In place as well (SQLite 3.35+), for the same reason.
            op.execute(f"ALTER TABLE {table} DROP COLUMN declared_type")
        else:
            op.drop_column(table, "declared_type")
