"""Owners are subjects; long-lived access keys.

`user_account` becomes the table of owners: seau's own accounts and the subjects
that trusted tokens name (an identity provider's `sub`, the application's own
tokens, a service key acting for someone). Every row gets a `subject`; an
existing account's is its id (`str(uuid)`), which is what its tokens name, so
files and uploads keep their `owner_id` and no row of `user_file` or `upload`
is touched (the FTS5 triggers of 0004, keyed by `user_file`'s rowid, stay
valid). `email` and `password_hash` become optional: an owner from a token
signs in at its provider. `access_key` holds personal access tokens and
service keys, hashed.

SQLite rebuilds `user_account` to change its columns (batch mode): foreign keys
are off for the migration (`seau.db.migrate`), otherwise dropping the old table
would cascade to every file.

Downgrade refuses while owners without an email exist: the old schema cannot
hold them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

MYSQL: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def _timestamp() -> sa.types.TypeEngine[Any]:
    return sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _binary(length: int) -> sa.types.TypeEngine[Any]:
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


# The 8-4-4-4-12 groups of a UUID's 32 hex digits (1-based, for SUBSTR).
_HEX_GROUPS = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))


def _accounts(*, with_owner_columns: bool) -> sa.Table:
    """`user_account` as it stands, for SQLite's batch mode to copy without
    reflecting it (so `seau migrate --sql` can print this migration too)."""
    columns: list[sa.Column[Any]] = [
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("token_version", sa.Integer(), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
    ]
    if with_owner_columns:
        columns += [
            sa.Column("subject", _binary(255), nullable=True),
            sa.Column("profile_email", sa.String(320), nullable=True),
            sa.Column("profile_name", sa.String(255), nullable=True),
        ]
    return sa.Table(
        "user_account",
        sa.MetaData(),
        *columns,
        sa.PrimaryKeyConstraint("id", name="pk_user_account"),
        sa.UniqueConstraint("email", name="uq_user_account_email"),
    )


def upgrade() -> None:
    with op.batch_alter_table(
        "user_account", copy_from=_accounts(with_owner_columns=False)
    ) as batch:
        batch.add_column(sa.Column("subject", _binary(255), nullable=True))
        batch.add_column(sa.Column("profile_email", sa.String(320), nullable=True))
        batch.add_column(sa.Column("profile_name", sa.String(255), nullable=True))

    # Every existing account: its subject is its id as `str(uuid)` writes it, which is
    # what its tokens name. One statement (it works offline too): PostgreSQL and
    # MariaDB 10.7+ store a native uuid (dashed as text); otherwise the column
    # holds 32 hex digits, dashed here.
    dialect = op.get_context().dialect.name
    if dialect == "postgresql":
        op.execute("UPDATE user_account SET subject = CAST(id AS VARCHAR)")
    else:
        mysql_like = dialect in ("mysql", "mariadb")
        text_id = "CAST(id AS CHAR)" if mysql_like else "CAST(id AS TEXT)"
        pieces = [f"SUBSTR({text_id}, {start}, {length})" for start, length in _HEX_GROUPS]
        if mysql_like:
            dashed = "CONCAT(" + ", '-', ".join(pieces) + ")"
        else:
            dashed = " || '-' || ".join(pieces)
        # Built from constants only: no value comes from outside.
        op.execute(
            f"UPDATE user_account SET subject = CASE WHEN LENGTH({text_id}) = 36 "  # noqa: S608
            f"THEN {text_id} ELSE {dashed} END"
        )

    with op.batch_alter_table(
        "user_account", copy_from=_accounts(with_owner_columns=True)
    ) as batch:
        batch.alter_column("subject", existing_type=_binary(255), nullable=False)
        batch.create_unique_constraint(op.f("uq_user_account_subject"), ["subject"])
        batch.alter_column(
            "email", existing_type=_binary(320), existing_nullable=False, nullable=True
        )
        batch.alter_column(
            "password_hash", existing_type=sa.String(255), existing_nullable=False, nullable=True
        )

    op.create_table(
        "access_key",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "personal",
                "service",
                name="access_key_kind",
                native_enum=False,
                length=16,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("scopes", sa.String(255), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("last_used_at", _timestamp(), nullable=True),
        sa.Column("expires_at", _timestamp(), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["user_account.id"],
            name=op.f("fk_access_key_owner_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_key")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_access_key_secret_hash")),
        **MYSQL,
    )
    op.create_index("ix_access_key_owner_id", "access_key", ["owner_id"])


def downgrade() -> None:
    bind = op.get_bind()
    external = bind.execute(
        sa.text("SELECT COUNT(*) FROM user_account WHERE email IS NULL")
    ).scalar_one()
    if external:
        raise RuntimeError(
            f"{external} owners come from tokens (no email): the schema before 0005 "
            "cannot hold them; delete them first (`seau user delete`)"
        )
    op.drop_index("ix_access_key_owner_id", table_name="access_key")
    op.drop_table("access_key")
    with op.batch_alter_table("user_account") as batch:
        batch.alter_column(
            "password_hash", existing_type=sa.String(255), existing_nullable=True, nullable=False
        )
        batch.alter_column(
            "email", existing_type=_binary(320), existing_nullable=True, nullable=False
        )
        batch.drop_constraint(op.f("uq_user_account_subject"), type_="unique")
        batch.drop_column("profile_name")
        batch.drop_column("profile_email")
        batch.drop_column("subject")
