"""Storage: the schema (schema.py), the database and its transactions (database.py), and the
Alembic revisions that build and upgrade the schema (migrations/)."""

from bot.store.database import Store, make_engine, set_state

__all__ = ["Store", "make_engine", "set_state"]
