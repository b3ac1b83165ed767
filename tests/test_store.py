"""The database layer: surviving a dropped connection, and SQLite writers across processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import DBAPIError

from bot.alerts.intake import store_alerts
from bot.alerts.receive import AlertWriter, parse_callback
from bot.config import normalize_database_url
from bot.model import IncomingAlert
from bot.store import Store
from bot.store.database import WAL_CHECKPOINT_PAGES
from bot.store.schema import alerts, outbox


def fire(store: Store, token: str) -> bool:
    alert = parse_callback({"UsageTriggerSid": "UT" + "d" * 32, "IdempotencyToken": token}, channel="C1")
    assert alert is not None
    return AlertWriter(store, fallback_channel="").store_alert(alert)


def count(store: Store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(outbox)).scalar_one()


@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="needs PostgreSQL (TEST_DATABASE_URL)")
def test_a_connection_killed_by_the_database_is_replaced_not_turned_into_an_error(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: a SQLite file has no server to drop the connection")
    store = Store.connect(database_url)
    store.migrate()
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


def test_a_read_on_postgresql_runs_each_statement_by_itself_and_gives_its_connection_back_as_it_was(
    database_url: str,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: on SQLite Store.read is a plain read transaction")
    store = Store.connect(database_url)
    store.migrate()
    # now() is when the transaction began: equal to the statement's own start only in its first statement.
    first_statement = text("SELECT now() = statement_timestamp()")
    with store.read() as conn:
        backend = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        time.sleep(0.01)
        assert conn.execute(first_statement).scalar_one()  # not in the transaction the first one began
    with store.transaction() as conn:  # the same pooled connection, in a transaction again
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() == backend
        time.sleep(0.01)
        assert not conn.execute(first_statement).scalar_one()
    store.dispose()


def _writer(url: str, prefix: str, n: int) -> None:
    store = Store.connect(url)
    for i in range(n):
        fire(store, f"{prefix}-{i}")
    store.dispose()


def test_sqlite_writers_in_several_processes_all_commit(sqlite_url: str) -> None:
    Store.connect(sqlite_url).migrate()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(sqlite_url, f"p{p}", 150)) for p in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert count(Store.connect(sqlite_url)) == 450


def _alert(token: str, *, date_fired: str = "", channel: str = "C1") -> IncomingAlert:
    params = {"UsageTriggerSid": "UT" + "e" * 32, "IdempotencyToken": token, "DateFired": date_fired}
    alert = parse_callback(params, channel=channel)
    assert alert is not None
    return alert


def test_a_batch_stores_each_firing_once(database_url: str) -> None:
    store = Store.connect(database_url)
    store.migrate()
    batch = [
        _alert("a"),
        _alert("a"),  # the same token again
        _alert("b", date_fired="Wed, 25 Nov 2026 12:00:00 +0000"),
        _alert("c", date_fired="Wed, 25 Nov 2026 12:00:00 +0000"),  # same firing, other token
        _alert("d", channel=""),  # nowhere to go: kept as failed
    ]
    assert store_alerts(store, batch, fallback_channel="", received=time.time()) == [True, False, True, False, True]
    assert store_alerts(store, [_alert("a"), _alert("e")], fallback_channel="", received=time.time()) == [False, True]
    with store.engine.connect() as conn:
        rows = conn.execute(select(outbox.c.channel, outbox.c.status).order_by(outbox.c.id)).all()
    assert [tuple(r) for r in rows] == [("C1", "pending"), ("C1", "pending"), ("", "failed"), ("C1", "pending")]
    store.dispose()


def test_any_text_a_callback_carries_is_stored_exactly_as_it_came(database_url: str) -> None:
    # On PostgreSQL the rows travel as one written-out text array (intake._array_literal): quotes,
    # backslashes, braces, commas, the word NULL, spaces, line breaks and non-ASCII must all come
    # back as they were, and a missing value as NULL.
    store = Store.connect(database_url)
    store.migrate()
    awkward = ['"', "\\", '\\"', "{a,b}", "NULL", "null", " padded ", "line\nbreak\ttab", "é ☃ 𝄞", "", "a,b", "}{"]
    batch = []
    for i, text_value in enumerate(awkward):
        params = {
            "UsageTriggerSid": f"UT{i:02d}" + text_value,
            "IdempotencyToken": f"tok-{i}-" + text_value,
            "UsageCategory": text_value,
            "CurrentValue": text_value,
            "FriendlyName": text_value,
        }
        alert = parse_callback(params, channel=f"C{i}{text_value}"[:32])
        assert alert is not None
        batch.append(alert)
    received = 1796300000.123456789
    assert store_alerts(store, batch, fallback_channel="", received=received) == [True] * len(batch)
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(alerts.c.dedupe_key, alerts.c.firing_key, alerts.c.trigger_sid, alerts.c.category,
                   alerts.c.current_value, alerts.c.requested_channel, alerts.c.params, alerts.c.received_at,
                   outbox.c.channel).join(outbox, outbox.c.alert_id == alerts.c.id).order_by(alerts.c.id)
        ).all()  # fmt: skip
    assert [tuple(r) for r in rows] == [
        (
            a.dedupe_key, None, a.trigger_sid, a.category, a.current_value, a.requested_channel,
            json.dumps(a.params, sort_keys=True), received, a.requested_channel,
        )
        for a in batch
    ]  # fmt: skip
    store.dispose()


def _race(writer: AlertWriter, alerts: list[IncomingAlert]) -> list[bool | BaseException]:
    """Submit every alert from its own thread while the database is busy, so they queue up."""
    results: list[bool | BaseException] = [False] * len(alerts)
    queued = threading.Barrier(len(alerts) + 1)

    def submit(i: int) -> None:
        queued.wait()
        try:
            results[i] = writer.store_alert(alerts[i])
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(alerts))]
    for t in threads:
        t.start()
    with writer.store.transaction() as conn:  # hold the database while every thread queues
        if not writer.store.is_sqlite:  # (on SQLite the transaction itself holds every writer)
            conn.execute(text("LOCK TABLE alerts IN EXCLUSIVE MODE"))
        queued.wait()
        time.sleep(0.3)

    for t in threads:
        t.join(timeout=30)
    return results


def test_concurrent_callbacks_share_transactions_and_each_is_stored_once(database_url: str) -> None:
    store = Store.connect(database_url)
    store.migrate()
    writer = AlertWriter(store, fallback_channel="")
    alerts = [_alert(f"t{i % 30}") for i in range(40)]  # 30 distinct firings, 10 repeats
    results = _race(writer, alerts)
    assert results.count(True) == 30 and results.count(False) == 10
    assert sorted({a.dedupe_key for a, r in zip(alerts, results, strict=True) if r is True}) == sorted(
        {a.dedupe_key for a in alerts}
    )
    assert count(store) == 30
    assert writer.batches <= 3  # one commit for many callbacks
    store.dispose()


def test_one_bad_alert_does_not_fail_the_others_in_its_batch(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL enforces column widths; SQLite stores any length")
    store = Store.connect(database_url)
    store.migrate()
    writer = AlertWriter(store, fallback_channel="")
    alerts = [_alert(f"ok{i}") for i in range(5)]
    bad = replace(_alert("bad"), requested_channel="C" * 500)  # wider than the column
    results = _race(writer, [*alerts[:2], bad, *alerts[2:]])
    assert results[:2] + results[3:] == [True] * 5
    assert isinstance(results[2], DBAPIError)
    assert count(store) == 5
    store.dispose()


def test_threads_storing_without_pause_each_get_their_own_answer(database_url: str) -> None:
    # Leadership passes from thread to thread many times over: every alert is written once, and
    # every thread hears about its own alert (new, or a repeat of one stored before).
    store = Store.connect(database_url)
    store.migrate()
    writer = AlertWriter(store, fallback_channel="")
    answers: dict[str, list[bool]] = {}

    def submit(thread_no: int) -> None:
        answers[f"s{thread_no}"] = [writer.store_alert(_alert(f"s{thread_no}-{i % 40}")) for i in range(60)]

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(answers) == sorted(f"s{n}" for n in range(12))
    assert all(found == [True] * 40 + [False] * 20 for found in answers.values())
    assert count(store) == 12 * 40
    assert writer.batches < 12 * 60  # some callbacks shared a commit
    store.dispose()


def test_work_on_the_driver_that_fails_leaves_nothing_and_the_next_write_goes_through(database_url: str) -> None:
    store = Store.connect(database_url)
    store.migrate()
    half = "INSERT INTO channel_work (channel) VALUES ('C0HALF')"
    # One statement whose second row is refused (NOT NULL): atomic on both databases, and the
    # driver's error comes out as SQLAlchemy's, as from Store.write.
    with pytest.raises(DBAPIError):
        store.write_on_driver(lambda cursor: cursor.execute(half + ", (NULL)"))
    if store.is_sqlite:  # a transaction of several statements (PostgreSQL runs one, in autocommit)

        def insert_then_fail(cursor: Any) -> None:
            cursor.execute(half)
            raise ValueError("the work broke off")

        with pytest.raises(ValueError):
            store.write_on_driver(insert_then_fail)
    assert fire(store, "after")  # the writer lock was given back, the pooled connection is usable
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM channel_work WHERE channel = 'C0HALF'")).scalar_one() == 0
    store.dispose()


def test_sqlite_copies_its_wal_back_in_large_steps_and_keeps_it_bounded(sqlite_url: str) -> None:
    """Past SQLite's default of 1,000 pages the WAL keeps growing (a checkpoint inside every few
    hundred commits held up intake, bot/store/database.py); past WAL_CHECKPOINT_PAGES it is copied
    back and starts again from the top, so the file stops growing."""
    store = Store.connect(sqlite_url)
    store.migrate()
    store.write(lambda conn: conn.exec_driver_sql("CREATE TABLE pages (body BLOB)"))
    page = os.urandom(3000)  # one row per 4 KB page
    wal = sqlite_url.removeprefix("sqlite:///") + "-wal"

    def fill(rows: int) -> None:
        for _ in range(rows // 50):
            store.write(lambda conn: conn.exec_driver_sql("INSERT INTO pages VALUES (?)", [(page,)] * 50))

    fill(2_000)
    assert os.path.getsize(wal) > 2_000 * 4096  # not checkpointed at 1,000 pages
    fill(2 * WAL_CHECKPOINT_PAGES)
    assert os.path.getsize(wal) <= (WAL_CHECKPOINT_PAGES + 100) * 4120  # a frame is a page and 24 bytes
