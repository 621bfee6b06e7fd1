"""Quotas: each owner's usage row and the reservations of uploads in flight.

Every existing owner gets a usage row counting their ready files, so that files
stored before the upgrade count against the quota from the first upload after it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

MYSQL: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def _timestamp() -> sa.types.TypeEngine[Any]:
    return sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "owner_usage",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("used_bytes", sa.BigInteger(), nullable=False),
        sa.Column("used_files", sa.BigInteger(), nullable=False),
        sa.Column("reserved_bytes", sa.BigInteger(), nullable=False),
        sa.Column("reserved_files", sa.BigInteger(), nullable=False),
        sa.Column("quota_bytes", sa.BigInteger(), nullable=True),
        sa.Column("quota_files", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["user_account.id"],
            name=op.f("fk_owner_usage_owner_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner_id", name=op.f("pk_owner_usage")),
        **MYSQL,
    )
    op.create_table(
        "quota_reservation",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["user_account.id"],
            name=op.f("fk_quota_reservation_owner_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_reservation")),
        **MYSQL,
    )
    op.create_index("ix_quota_reservation_created_at", "quota_reservation", ["created_at"])
    op.create_index("ix_quota_reservation_owner_id", "quota_reservation", ["owner_id"])
    # The files already stored count: one row per owner, from their ready files.
    op.execute(
        "INSERT INTO owner_usage "
        "(owner_id, used_bytes, used_files, reserved_bytes, reserved_files) "
        "SELECT u.id, "
        "COALESCE((SELECT SUM(f.size) FROM user_file f "
        "WHERE f.owner_id = u.id AND f.state = 'ready'), 0), "
        "(SELECT COUNT(*) FROM user_file f WHERE f.owner_id = u.id AND f.state = 'ready'), "
        "0, 0 FROM user_account u"
    )


def downgrade() -> None:
    op.drop_table("quota_reservation")
    op.drop_table("owner_usage")
