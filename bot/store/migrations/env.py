"""Alembic's environment for usage-bot: how the revisions in versions/ reach a database.

The app runs it through bot/store/migrate.py, which hands in a connection, already in a
transaction under the migration lock, as config.attributes["connection"]. The `alembic` command
line (alembic.ini at the repository root, for writing revisions) hands in none: then the database
is DATABASE_URL (or .env), the app's own, opened the same way and under the same lock.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from bot.store.schema import metadata

config = context.config


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # Every revision runs on both databases, so autogenerate writes batch operations: plain
        # ALTERs on PostgreSQL, a copy of the table on SQLite, which cannot ALTER most things
        # (https://alembic.sqlalchemy.org/en/latest/batch.html).
        render_as_batch=True,
        # Both roll DDL back with its transaction (SQLite too: the store issues BEGIN itself).
        transactional_ddl=True,
    )
    # A transaction the caller began stays the caller's: Alembic runs inside it.
    with context.begin_transaction():
        context.run_migrations()


def database_url() -> str:
    from bot.config import Settings

    return config.get_main_option("sqlalchemy.url") or Settings.from_env(required=()).database_url


def run_from_command_line() -> None:
    from bot.config import configure_logging
    from bot.store.database import Store

    configure_logging()  # alembic.ini carries no logging setup: show Alembic's INFO lines
    store = Store.connect(database_url())
    try:
        with store.schema_transaction() as connection:
            run_migrations(connection)
    finally:
        store.dispose()


if context.is_offline_mode():  # `alembic upgrade --sql`: print the SQL instead of running it
    context.configure(url=database_url(), target_metadata=metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
elif (handed_in := config.attributes.get("connection")) is not None:
    run_migrations(handed_in)
else:
    run_from_command_line()
