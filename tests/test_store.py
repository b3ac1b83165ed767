"""The database layer: surviving a dropped connection, and SQLite writers across processes."""

from __future__ import annotations

import multiprocessing
import os

import pytest
from sqlalchemy import create_engine, func, select, text

from bot.alerts import parse_callback, store_alert
from bot.config import normalize_database_url
from bot.store import Store, outbox


def fire(store: Store, token: str) -> bool:
    alert = parse_callback({"UsageTriggerSid": "UT" + "d" * 32, "IdempotencyToken": token}, channel="C1")
    assert alert is not None
    return store_alert(store, alert, fallback_channel="")


def count(store: Store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(outbox)).scalar_one()


@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="needs PostgreSQL (TEST_DATABASE_URL)")
def test_a_connection_killed_by_the_database_is_replaced_not_turned_into_an_error(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: a SQLite file has no server to drop the connection")
    store = Store.connect(database_url)
    store.create_schema()
    assert fire(store, "before")
    with store.engine.connect() as conn:  # the one pooled connection
        backend = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    admin = create_engine(normalize_database_url(os.environ["TEST_DATABASE_URL"]))
    with admin.begin() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend}).scalar_one()
    admin.dispose()

    assert fire(store, "after")  # the dead connection is dropped and the write done on a new one
    assert count(store) == 2
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != backend
    assert store.ping()
    store.dispose()


def _writer(url: str, prefix: str, n: int) -> None:
    store = Store.connect(url)
    for i in range(n):
        fire(store, f"{prefix}-{i}")
    store.dispose()


def test_sqlite_writers_in_several_processes_all_commit(sqlite_url: str) -> None:
    Store.connect(sqlite_url).create_schema()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(sqlite_url, f"p{p}", 150)) for p in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert count(Store.connect(sqlite_url)) == 450
