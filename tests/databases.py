"""A throwaway PostgreSQL schema: tests and benchmarks each get their own, dropped after, so that
runs side by side on one database never see each other's rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text

from bot.config import normalize_database_url


@contextmanager
def postgres_schema(base_url: str, prefix: str) -> Iterator[tuple[str, str]]:
    """(database URL whose search_path is a new schema, the schema's name); dropped on exit."""
    base = normalize_database_url(base_url)
    schema = prefix + uuid.uuid4().hex[:12]
    admin = create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        separator = "&" if "?" in base else "?"
        try:
            yield f"{base}{separator}options=-csearch_path%3D{schema}", schema
        finally:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    finally:
        admin.dispose()
