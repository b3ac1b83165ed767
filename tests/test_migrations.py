"""Schema migrations (bot/store/migrate.py, bot/store/migrations/) on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import multiprocessing
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, String, Table, event, insert, inspect, select, text, update
from sqlalchemy.exc import IntegrityError

from app import create_app
from bot.alerts import leases, mute, triggers
from bot.alerts.outbox import failed_alerts, stored_alerts_query, to_stored_alert
from bot.commands import handled
from bot.store import Store
from bot.store.migrate import BASELINE, MIGRATIONS, SchemaError, alembic_config, script_heads
from bot.store.schema import alerts, channels, metadata, snoozes
from bot.watch import manage
from bot.watch import store as watch_store
from bot.watch.model import Snapshot, Totals
from tests import legacy_schema as legacy
from tests.conftest import make_settings
from tests.fakes.slack import FakeSlack
from tests.fakes.twilio import FakeTwilio
from tests.test_cli import ROOT, run_cli

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


def fill_legacy(store: Store, runs: Table = legacy.digest_runs) -> None:
    """A row in every table, as the code before migrations wrote them (`runs`: the table of
    digest runs under its name at the revision being filled)."""
    now = 1_764_000_000.25
    with store.transaction() as conn:
        conn.execute(insert(legacy.state).values(key="slack_auth_error", value="token_revoked", updated_at=now))
        conn.execute(
            insert(legacy.triggers).values(
                sid="UT" + "a" * 32,
                channel_id="C1",
                created_by="U1",
                created_at=now,
                category="sms",
                value_requested="+1000",
                friendly_name="SMS cap",
            )
        )
        alert_id = conn.execute(
            insert(legacy.alerts).values(
                dedupe_key="UT" + "a" * 32 + "|token-1",
                firing_key="UT" + "a" * 32 + "|Wed, 25 Nov 2026 12:00:00 +0000",
                trigger_sid="UT" + "a" * 32,
                account_sid="AC" + "1" * 32,
                category="sms",
                trigger_by="count",
                trigger_value="1000",
                current_value="1012",
                recurring="monthly",
                date_fired="Wed, 25 Nov 2026 12:00:00 +0000",
                fired_at=now,
                received_at=now + 0.5,
                requested_channel="C1",
                params='{"IdempotencyToken": "token-1"}',
            )
        ).inserted_primary_key[0]
        conn.execute(
            insert(legacy.outbox).values(
                alert_id=alert_id,
                channel="C1",
                status="sent",
                batch_id="batch-1",
                attempted_at=now + 1,
                attempts=1,
                last_error="",
                sent_at=now + 2,
                message_ts="1764000002.000100",
                also_fired=2,
            )
        )
        conn.execute(
            insert(legacy.channels).values(
                channel="C1", next_post_at=now + 3, failures=0, lease_owner=None, lease_until=0.0, last_error=""
            )
        )
        conn.execute(
            insert(legacy.audit).values(
                at=now, user_id="U1", channel_id="C1", action="trigger.create", target="UT" + "a" * 32, detail="+1000"
            )
        )
        conn.execute(
            insert(legacy.snoozes).values(
                trigger_sid="UT" + "a" * 32, channel="C1", until=now + 3600, created_by="U1", created_at=now
            )
        )
        digest_id = conn.execute(
            insert(legacy.digests).values(
                channel_id="C1", cadence="weekly", at_minutes=540, created_by="U1", created_at=now
            )
        ).inserted_primary_key[0]
        conn.execute(
            insert(runs).values(
                kind="digest", subject_id=digest_id, period_key="2026-W48", status="sent", claimed_at=now, sent_at=now
            )
        )
        conn.execute(
            insert(legacy.budgets).values(
                channel_id="C1",
                period="monthly",
                category="totalprice",
                amount="500.00",
                trigger_sid="UT" + "b" * 32,
                created_by="U1",
                created_at=now,
            )
        )


# Tables renamed by later revisions: old name -> the name in bot/store/schema.py.
RENAMED = {"digest_runs": "report_runs"}


def rows(store: Store, tables: Any = None, *, only: Any = None) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (schema.py's by default), in primary key order, keyed by the
    table's name in schema.py.

    `only`: older tables (e.g. the legacy ones): read just their tables and columns, under their
    names in schema.py. What an upgrade must have carried over; later revisions' new columns and
    tables are checked by their own tests."""
    if only is None:
        tables = metadata.tables if tables is None else tables
        selects = {
            RENAMED.get(name, name): (select(table), table.primary_key.columns) for name, table in tables.items()
        }
    else:
        selects = {}
        for name, old in only.items():
            new = metadata.tables[RENAMED.get(name, name)]
            columns = [new.c[c.name] for c in old.columns]
            selects[new.name] = (select(*columns), [new.c[c.name] for c in old.primary_key.columns])
    with store.engine.connect() as conn:
        return {name: [tuple(r) for r in conn.execute(query.order_by(*key))] for name, (query, key) in selects.items()}


def revisions(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


def structure(conn: Connection) -> dict[str, Any]:
    """The tables as the database describes them: columns, keys, indexes and constraints, with names."""
    insp = inspect(conn)

    def plain(items: list[Any]) -> list[str]:
        def value(key: str, v: Any) -> Any:
            if key == "dialect_options":  # a partial index's WHERE comes back as a SQL text object
                return {name: str(option) for name, option in v.items()}
            return str(v) if key == "type" else v

        return sorted(repr({k: value(k, v) for k, v in item.items()}) for item in items)

    described: dict[str, Any] = {}
    for table in sorted(set(insp.get_table_names()) - {"alembic_version"}):
        described[table] = {
            "columns": plain(insp.get_columns(table)),
            "primary key": insp.get_pk_constraint(table),
            "foreign keys": plain(insp.get_foreign_keys(table)),
            "indexes": plain(insp.get_indexes(table)),
            "unique": plain(insp.get_unique_constraints(table)),
        }
        if conn.dialect.name == "sqlite":  # the CREATE TABLE statement itself, to the letter
            sql = "SELECT sql FROM sqlite_master WHERE tbl_name = :t ORDER BY name"
            described[table]["sql"] = list(conn.execute(text(sql), {"t": table}).scalars())
    return described


def statements_run_by(store: Store) -> list[str]:
    """Every SQL statement the store's engine runs from now on (SQLite's PRAGMAs go to the driver)."""
    seen: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda _conn, _cursor, statement, *_: seen.append(statement))
    return seen


def test_a_database_made_before_migrations_is_upgraded_without_losing_a_row(database_url: str) -> None:
    store = Store.connect(database_url)
    legacy.create_schema(store)
    fill_legacy(store)
    before = rows(store, legacy.metadata.tables)
    assert all(before.values()), [name for name, found in before.items() if not found]
    assert ("schema_version", "2") in [r[:2] for r in before["state"]]

    migration = store.migrate()

    assert (migration.before, migration.after) == ("legacy", HEAD)
    assert revisions(store) == [HEAD]
    assert rows(store, only=legacy.metadata.tables) == before
    with store.transaction() as conn:  # the upgraded database keeps counting where it was
        new_id = conn.execute(
            insert(alerts).values(dedupe_key="after", trigger_sid="UT1", fired_at=1.0, received_at=1.0)
        ).inserted_primary_key[0]
    assert new_id == before["alerts"][-1][0] + 1
    store.dispose()


def test_the_first_revision_builds_exactly_what_create_schema_built(database_url: str) -> None:
    store = Store.connect(database_url)
    legacy.create_schema(store)
    with store.engine.connect() as conn:
        made_before = structure(conn)
    with store.transaction() as conn:
        legacy.metadata.drop_all(conn)
    with store.schema_transaction() as conn:
        command.upgrade(alembic_config(conn), BASELINE)
    with store.engine.connect() as conn:
        assert structure(conn) == made_before
    store.dispose()


def test_an_empty_database_migrates_to_exactly_the_tables_in_schema_py(database_url: str) -> None:
    store = Store.connect(database_url)
    migration = store.migrate()
    assert (migration.before, migration.after) == ("", HEAD)
    assert revisions(store) == [HEAD]
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    store.dispose()


def test_migrating_an_up_to_date_database_again_changes_nothing(database_url: str) -> None:
    store = Store.connect(database_url)
    legacy.create_schema(store)
    fill_legacy(store)
    store.migrate()
    with store.engine.connect() as conn:
        described = structure(conn)
    before = rows(store)

    again = Store.connect(database_url).migrate()

    assert (again.before, again.after) == (HEAD, HEAD)
    assert str(again) == f"database schema is up to date (revision {HEAD})"
    assert revisions(store) == [HEAD]
    assert rows(store) == before
    with store.engine.connect() as conn:
        assert structure(conn) == described
    store.dispose()


def test_an_up_to_date_check_is_one_query_and_a_few_milliseconds(sqlite_url: str) -> None:
    Store.connect(sqlite_url).migrate()
    timings = []
    for _ in range(5):
        store = Store.connect(sqlite_url)  # a cold start: a new engine, its first connection
        statements = statements_run_by(store)
        started = time.perf_counter()
        store.migrate()
        timings.append(time.perf_counter() - started)
        assert statements == ["SELECT version_num FROM alembic_version"]
        store.dispose()
    assert min(timings) < 0.05, timings  # about 2 ms where it was measured; loose for busy machines


def test_an_up_to_date_check_does_not_import_alembic(sqlite_url: str) -> None:
    Store.connect(sqlite_url).migrate()
    check = (
        "import sys; from bot.store import Store; "
        f"print(Store.connect({sqlite_url!r}).migrate()); print(sorted(m for m in sys.modules if 'alembic' in m))"
    )
    result = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"database schema is up to date (revision {HEAD})", "[]"]


def test_the_quick_head_check_agrees_with_alembic() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script_heads() == frozenset(script.get_heads()) == {HEAD}
    assert len(list((MIGRATIONS / "versions").glob("*.py"))) == len(list(script.walk_revisions()))


def test_python_m_bot_migrate_says_what_it_did_and_exits_0(database_url: str) -> None:
    first = run_cli("migrate", env={"DATABASE_URL": database_url})
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"usage-bot: database schema created (revision {HEAD})\n"
    again = run_cli("migrate", env={"DATABASE_URL": database_url})
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"usage-bot: database schema is up to date (revision {HEAD})\n"


def _migrate(url: str) -> None:
    store = Store.connect(url)
    store.migrate()
    store.dispose()


def test_processes_migrating_at_once_take_turns(database_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_migrate, args=(database_url,)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    store = Store.connect(database_url)
    assert revisions(store) == [HEAD]
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    store.dispose()


def test_the_web_app_upgrades_the_database_when_it_starts(
    database_url: str, fake_slack: FakeSlack, fake_twilio: FakeTwilio
) -> None:
    setup = Store.connect(database_url)
    legacy.create_schema(setup)
    fill_legacy(setup)
    before = rows(setup, legacy.metadata.tables)
    app = create_app(make_settings(fake_slack, fake_twilio, database_url))
    assert app.test_client().get("/healthz").status_code == 200
    assert revisions(setup) == [HEAD]
    assert rows(setup, only=legacy.metadata.tables) == before
    app.extensions["usage_bot"]["store"].dispose()
    setup.dispose()


def test_a_database_a_newer_release_migrated_is_left_as_it_is(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store.connect(database_url)
    store.migrate()
    with store.transaction() as conn:  # as if a later release (since rolled back) had migrated it
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    with caplog.at_level(logging.WARNING, logger="bot.store.migrate"):
        migration = Store.connect(database_url).migrate()
    assert migration.newer and migration.after == "f00d"
    assert "revision f00d, which this release does not know" in caplog.text
    assert revisions(store) == ["f00d"]
    store.dispose()


def test_tables_without_a_revision_from_another_schema_version_are_refused(database_url: str) -> None:
    store = Store.connect(database_url)
    legacy.create_schema(store)
    with store.transaction() as conn:
        conn.execute(update(legacy.state).where(legacy.state.c.key == "schema_version").values(value="1"))
    with pytest.raises(SchemaError, match="schema_version '1'") as refused:
        store.migrate()
    assert "\n" not in str(refused.value)
    assert not inspect(store.engine).has_table("alembic_version")
    store.dispose()


def test_a_migration_that_fails_leaves_nothing_half_done(database_url: str) -> None:
    store = Store.connect(database_url)
    with pytest.raises(RuntimeError, match="the last step"), store.schema_transaction() as conn:
        command.upgrade(alembic_config(conn), "head")
        raise RuntimeError("the last step failed")
    assert inspect(store.engine).get_table_names() == []  # DDL rolled back with the rest, on both databases
    store.dispose()


def test_sqlite_batch_mode_can_rebuild_a_table_others_refer_to(sqlite_url: str) -> None:
    store = Store.connect(sqlite_url)
    legacy.create_schema(store)
    fill_legacy(store)
    store.migrate()
    before = rows(store)

    def widen_alerts_category(conn: Connection) -> None:
        with Operations(MigrationContext.configure(conn)).batch_alter_table("alerts", recreate="always") as batch:
            batch.alter_column("category", type_=String(200), existing_type=String(128), existing_nullable=False)

    with pytest.raises(IntegrityError), store.transaction() as conn:  # foreign keys on: the old table won't drop
        widen_alerts_category(conn)
    with store.schema_transaction() as conn:  # how migrations run
        widen_alerts_category(conn)

    assert rows(store) == before
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1  # back on for the app
        assert [fk["referred_table"] for fk in inspect(conn).get_foreign_keys("outbox")] == ["alerts"]
    store.dispose()


def test_revision_0002_renames_digest_runs_to_report_runs_keeping_every_run(database_url: str) -> None:
    store = Store.connect(database_url)
    with store.schema_transaction() as conn:
        command.upgrade(alembic_config(conn), BASELINE)
    fill_legacy(store)  # the baseline's tables are the legacy ones
    before = rows(store, legacy.metadata.tables)

    migration = store.migrate()

    assert (migration.before, migration.after) == (BASELINE, HEAD)
    assert rows(store, only=legacy.metadata.tables) == before
    assert before["report_runs"], "the filled database had runs to carry over"
    with store.engine.connect() as conn:
        assert "digest_runs" not in inspect(conn).get_table_names()
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    store.dispose()


def test_revision_0003_keeps_every_row_marks_no_trigger_deleted_and_adds_handled_requests(database_url: str) -> None:
    store = Store.connect(database_url)
    with store.schema_transaction() as conn:
        command.upgrade(alembic_config(conn), "0002")
    fill_legacy(store, runs=legacy.digest_runs.to_metadata(MetaData(), name="report_runs"))
    before = rows(store, only=legacy.metadata.tables)  # 0002's tables are the legacy ones, renamed
    assert all(before.values()), [name for name, found in before.items() if not found]

    migration = store.migrate()

    assert (migration.before, migration.after) == ("0002", HEAD)
    assert rows(store, only=legacy.metadata.tables) == before
    after = rows(store)
    [trigger] = after["triggers"]
    row = dict(zip(metadata.tables["triggers"].columns.keys(), trigger, strict=True))
    assert [row[k] for k in ("trigger_by", "recurring", "deleted_at", "deleted_by")] == [None] * 4
    assert after["handled_requests"] == []
    # The trigger made before the upgrade is still one the bot created (not deleted) ...
    assert triggers.owners(store) == {"UT" + "a" * 32: ("C1", "U1")}
    # ... and the new table and columns take rows.
    assert handled.first_time(store, "k" * 64, now=1.0) and not handled.first_time(store, "k" * 64, now=2.0)
    with store.transaction() as conn:
        triggers.mark_deleted(conn, "UT" + "a" * 32, user_id="U2", now=5.0)
    assert triggers.owners(store) == {}
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    store.dispose()


def test_revision_0004_marks_channels_with_work_and_ends_orphaned_holds(database_url: str) -> None:
    store = Store.connect(database_url)
    with store.schema_transaction() as conn:
        command.upgrade(alembic_config(conn), "0003")
    fill_legacy(store, runs=legacy.digest_runs.to_metadata(MetaData(), name="report_runs"))
    # Beside fill_legacy's sent alert in C1: one pending in C2, and one held in C3 whose snooze was
    # ended early by the code before 0004 (which deleted the snooze row).
    with store.transaction() as conn:
        for n, (channel, status) in enumerate([("C2", "pending"), ("C3", "held")]):
            alert_id = conn.execute(
                insert(legacy.alerts).values(
                    dedupe_key=f"k{n}", trigger_sid=f"UT{n}", fired_at=1.0, received_at=1.0, requested_channel=channel
                )
            ).inserted_primary_key[0]
            conn.execute(insert(legacy.outbox).values(alert_id=alert_id, channel=channel, status=status, last_error=""))
            conn.execute(insert(legacy.channels).values(channel=channel, next_post_at=0.0, lease_until=0.0))
    before = rows(store, only=legacy.metadata.tables)

    migration = store.migrate()

    assert (migration.before, migration.after) == ("0003", HEAD)
    assert rows(store, only=legacy.metadata.tables)["outbox"] == before["outbox"]
    with store.engine.connect() as conn:
        work = dict(conn.execute(select(channels.c.channel, channels.c.queued - channels.c.drained)).all())
        ended = conn.execute(select(snoozes.c.trigger_sid, snoozes.c.channel, snoozes.c.until)).all()
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert work == {"C1": 0, "C2": 1, "C3": 0}  # only C2 has alerts to send
    assert ("UT1", "C3", 0.0) in ended  # the orphaned hold has a snooze that has ended ...
    assert [c for c, _ in leases.channels_with_work(store, 2e9, limit=10)] == ["C2"]
    assert mute.release_ended_snoozes(store, now=2e9)  # ... so the relay releases it like any other
    assert leases.collect_work(store)
    assert sorted(c for c, _ in leases.channels_with_work(store, 2e9, limit=10)) == ["C2", "C3"]
    assert diff == []
    store.dispose()


def test_revision_0005_keeps_every_row_marks_old_alerts_as_trigger_alerts_and_adds_the_watch(
    database_url: str,
) -> None:
    store = Store.connect(database_url)
    with store.schema_transaction() as conn:
        command.upgrade(alembic_config(conn), "0004")
    fill_legacy(store, runs=legacy.digest_runs.to_metadata(MetaData(), name="report_runs"))
    handled.first_time(store, "h" * 64, now=3.0)  # a row in 0003's own table too
    before = rows(store, only=legacy.metadata.tables)
    assert all(before.values()), [name for name, found in before.items() if not found]

    migration = store.migrate()

    assert (migration.before, migration.after) == ("0004", HEAD)
    assert rows(store, only=legacy.metadata.tables) == before
    after = rows(store)
    assert len(after["handled_requests"]) == 1
    [alert] = after["alerts"]
    row = dict(zip(metadata.tables["alerts"].columns.keys(), alert, strict=True))
    assert (row["kind"], row["details"]) == ("trigger", None)  # every alert so far came from a trigger
    assert after["watches"] == after["usage_snapshots"] == after["spike_states"] == []
    # The alert reads as before, through the outbox's query ...
    with store.engine.connect() as conn:
        [stored] = [to_stored_alert(r) for r in conn.execute(stored_alerts_query())]
    assert (stored.kind, stored.details, stored.category) == ("trigger", "", "sms")
    assert failed_alerts(store) == []
    # ... and the new tables take rows.
    manage.watch_on(store, channel_id="C1", categories=(), sensitivity=None, user_id="U1", now=4.0)
    taken = datetime(2026, 11, 25, 10, tzinfo=UTC)
    watch_store.save_snapshot(store, Snapshot(taken, {"sms": Totals(12, 0.09)}))
    with store.transaction() as conn:
        watch_store.save_first_above(conn, taken.date(), {("C1", "sms"): taken})
        assert watch_store.claim_alert(
            conn, channel_id="C1", category="sms", day=taken.date(), escalation=False, excess=6.0, first_above_at=taken
        )
    assert [w.category for w in watch_store.list_watches(store)] == [""]
    assert watch_store.snapshots_between(store, taken.date(), taken.date()) == [
        Snapshot(taken, {"sms": Totals(12.0, 0.09)})
    ]
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    store.dispose()
