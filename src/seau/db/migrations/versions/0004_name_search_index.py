"""An index for substring searches of file names, where the database has one.

SQLite (3.34+, with FTS5): an external-content FTS5 table over `user_file.name`
with the `trigram` tokenizer, case-insensitive, kept in step by triggers and
filled from the rows already there. It is keyed by `user_file`'s rowid, which
SQLite keeps for a table as long as it is not rebuilt: a later migration that
recreates `user_file` on SQLite (batch mode) must recreate the triggers and run
the FTS5 `rebuild` command. Without FTS5's trigram tokenizer nothing is made and
searches scan, bounded in time like every search.

PostgreSQL: a `pg_trgm` GIN index on `name`, which serves `ILIKE '%…%'` as it
is. `CREATE EXTENSION pg_trgm` needs the CREATE privilege on the database
(pg_trgm is a trusted extension since PostgreSQL 13) or an administrator who
ran it beforehand; without it the index is skipped with a warning.

MariaDB/MySQL: nothing (no n-gram parser in MariaDB); searches scan, bounded.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import logging
import sqlite3

from alembic import context, op
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

log = logging.getLogger("seau.db")

TABLE = "user_file_name_search"
TRIGRAM_INDEX = "ix_user_file_name_trgm"

# Literal SQL: a migration is a snapshot, and these names are the ones above.
_SQLITE_UP = [
    "CREATE VIRTUAL TABLE user_file_name_search USING fts5(name, content='user_file', "
    "content_rowid='rowid', tokenize='trigram case_sensitive 0')",
    "CREATE TRIGGER user_file_name_search_insert AFTER INSERT ON user_file BEGIN "
    "INSERT INTO user_file_name_search(rowid, name) VALUES (new.rowid, new.name); END",
    "CREATE TRIGGER user_file_name_search_delete AFTER DELETE ON user_file BEGIN "
    "INSERT INTO user_file_name_search(user_file_name_search, rowid, name) "
    "VALUES ('delete', old.rowid, old.name); END",
    "CREATE TRIGGER user_file_name_search_rename AFTER UPDATE OF name ON user_file BEGIN "
    "INSERT INTO user_file_name_search(user_file_name_search, rowid, name) "
    "VALUES ('delete', old.rowid, old.name); "
    "INSERT INTO user_file_name_search(rowid, name) VALUES (new.rowid, new.name); END",
    "INSERT INTO user_file_name_search(user_file_name_search) VALUES ('rebuild')",
]


def _sqlite_has_trigram() -> bool:
    if context.is_offline_mode():
        return True
    if sqlite3.sqlite_version_info < (3, 34, 0):
        return False
    options = {row[0] for row in op.get_bind().execute(text("PRAGMA compile_options"))}
    return "ENABLE_FTS5" in options


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect == "sqlite":
        if not _sqlite_has_trigram():
            log.warning(
                "SQLite %s has no FTS5 trigram tokenizer: searches will scan",
                sqlite3.sqlite_version,
            )
            return
        for statement in _SQLITE_UP:
            op.execute(statement)
    elif dialect == "postgresql":
        if context.is_offline_mode():
            op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        else:
            try:
                with op.get_bind().begin_nested():
                    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            except DBAPIError:
                log.warning("CREATE EXTENSION pg_trgm refused: file-name searches will scan")
                return
        op.execute(f"CREATE INDEX {TRIGRAM_INDEX} ON user_file USING gin (name gin_trgm_ops)")


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect == "sqlite":
        for trigger in ("insert", "delete", "rename"):
            op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_{trigger}")
        op.execute(f"DROP TABLE IF EXISTS {TABLE}")
    elif dialect == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {TRIGRAM_INDEX}")
