"""Alembic environment. seau drives it from code (`seau.db.migrate`); no alembic.ini."""

from __future__ import annotations

from alembic import context

from seau.db import models  # (also registers the tables on Base.metadata)
from seau.db.base import Base

target_metadata = Base.metadata
config = context.config


def include_object(
    _object: object, name: str | None, type_: str, reflected: bool, _compare_to: object
) -> bool:
    """Autogenerate compares the models only: the search indexes of migration 0004
    (SQLite's FTS5 tables, PostgreSQL's trigram index) are not models."""
    return not (reflected and models.is_search_index(name, type_))


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode recreates tables.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
