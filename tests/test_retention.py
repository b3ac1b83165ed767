"""Retention: RETENTION_DAYS, and what the scheduled pass deletes (and never deletes), when.

Time is a clock the tests move by hand; alerts go through the outbox functions the relay uses
(bot/alerts/outbox.py), so each can be left in any state. tests/test_retention_bounded.py drives
10,000 alerts through the real relay and the real pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from slack_sdk import WebClient
from sqlalchemy import event, func, select

from bot import audit
from bot.alerts import intake, mute, outbox
from bot.alerts.receive import AlertWriter, parse_callback
from bot.config import ConfigError, Settings
from bot.reports import retention, runs
from bot.reports.retention import DAY, PRUNE_EVERY_SECONDS, Cutoffs, cutoffs, is_due, prune, prune_if_due
from bot.reports.runs import RunKind
from bot.reports.scheduler import run_due
from bot.slack import SlackPoster
from bot.store import Store
from bot.store.schema import alerts, report_runs, state
from bot.store.schema import outbox as outbox_table
from bot.usage.client import UsageClient
from tests.clocks import ManualClock
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN
from tests.fakes.slack import VALID_TOKEN, FakeSlack
from tests.fakes.twilio import FakeTwilio

ROOT = Path(__file__).resolve().parent.parent
START = 1_800_000_000.0  # 2027-01-15 08:00 GMT
BASE_ENV = {
    "SLACK_BOT_TOKEN": "xoxb-secret-bot-token",
    "SLACK_SIGNING_SECRET": "signing-secret-value",
    "TWILIO_ACCOUNT_SID": "AC" + "a" * 32,
    "TWILIO_AUTH_TOKEN": "twilio-secret-token",
}


def store_alert(store: Store, clock: ManualClock, *, channel: str = "C0ALERTS", trigger: str = "") -> int:
    """Store one alert as the callback endpoint would, at the clock's time; its outbox id."""
    token = uuid.uuid4().hex
    params = {"UsageTriggerSid": trigger or "UT" + token, "UsageCategory": "sms", "IdempotencyToken": token}
    alert = parse_callback(params, channel=channel, clock=clock)
    assert alert is not None
    assert AlertWriter(store, fallback_channel="", clock=clock).store_alert(alert)
    with store.engine.connect() as conn:
        return conn.execute(select(func.max(outbox_table.c.id))).scalar_one()


def start_sending(store: Store, channel: str, at: float) -> str:
    """What the relay does before posting: mark the channel's pending alerts as one batch."""
    batch = outbox.load_batch(store, channel, 1000)
    batch_id = uuid.uuid4().hex
    outbox.mark_sending(store, batch, batch_id, at)
    return batch_id


def deliver(store: Store, channel: str, at: float) -> None:
    outbox.mark_sent(store, start_sending(store, channel, at), at=at, message_ts=f"{at:.6f}")


def outbox_rows(store: Store) -> dict[int, str]:
    with store.engine.connect() as conn:
        return dict(conn.execute(select(outbox_table.c.id, outbox_table.c.status)).all())  # type: ignore[arg-type]


def count(store: Store, table: object) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()  # type: ignore[arg-type]


# --- RETENTION_DAYS --------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "days"), [(None, 90), ("", 90), ("0", 0), ("1", 1), (" 30 ", 30), ("3650", 3650)])
def test_retention_days_is_read_with_a_default_of_90(value: str | None, days: int) -> None:
    env = dict(BASE_ENV) if value is None else dict(BASE_ENV, RETENTION_DAYS=value)
    assert Settings.from_env(env).retention_days == days


@pytest.mark.parametrize("value", ["-1", "1.5", "ninety", "90d", "٣", "1e3", "9999999"])
def test_a_bad_retention_is_refused_in_one_line(value: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env(dict(BASE_ENV, RETENTION_DAYS=value))
    assert "RETENTION_DAYS" in str(err.value) and "\n" not in str(err.value)


def test_python_m_bot_digests_stops_on_a_bad_retention_with_one_line() -> None:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **BASE_ENV, "RETENTION_DAYS": "-5"}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "digests"],
        cwd=ROOT / "tests",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "usage-bot: RETENTION_DAYS='-5' is not a whole number of days from 0 to 999999 (0 keeps everything)"
    ]


# --- when and up to when: pure ---------------------------------------------------------------


def test_cutoffs_keep_report_runs_a_month_and_the_audit_trail_a_year() -> None:
    assert cutoffs(0, START) is None  # 0 keeps everything
    # The watch's snapshots go after 35 GMT days, whatever RETENTION_DAYS (other than 0) says.
    watch = (datetime.fromtimestamp(START, UTC) - timedelta(days=35)).date()
    assert cutoffs(7, START) == Cutoffs(START - 7 * DAY, START - 35 * DAY, START - 365 * DAY, watch)
    assert cutoffs(90, START) == Cutoffs(START - 90 * DAY, START - 90 * DAY, START - 365 * DAY, watch)
    assert cutoffs(400, START) == Cutoffs(START - 400 * DAY, START - 400 * DAY, START - 400 * DAY, watch)


def test_pruning_is_due_once_an_hour() -> None:
    assert is_due(None, START)
    assert is_due("not a time", START)
    assert not is_due(repr(START), START)
    assert not is_due(repr(START - PRUNE_EVERY_SECONDS + 1), START)
    assert is_due(repr(START - PRUNE_EVERY_SECONDS), START)
    assert is_due(repr(START + 60), START)  # a time ahead of ours is not trusted


# --- what is deleted -------------------------------------------------------------------------


def test_only_delivered_alerts_older_than_the_retention_are_deleted_with_their_alert_rows(store: Store) -> None:
    clock = ManualClock(START - 400 * DAY)  # every alert is stored long ago
    old_sent = [store_alert(store, clock, channel="C0SENT") for _ in range(3)]
    deliver(store, "C0SENT", at=START - 100 * DAY)
    recent_sent = store_alert(store, clock, channel="C0RECENT")
    deliver(store, "C0RECENT", at=START - 89 * DAY)
    pending = store_alert(store, clock, channel="C0PENDING")
    sending = store_alert(store, clock, channel="C0SENDING")
    start_sending(store, "C0SENDING", at=START - 300 * DAY)  # an interrupted post, never settled
    failed = store_alert(store, clock, channel="C0FAILED")
    outbox.fail_batch(store, start_sending(store, "C0FAILED", at=START - 300 * DAY), "channel_not_found in C0FAILED")
    no_channel = store_alert(store, clock, channel="")  # failed at once: no channel, no ALERT_CHANNEL
    store.write(
        lambda conn: mute.snooze(
            conn, trigger_sid="UTHELD", channel="C0HELD", until=START + DAY, user_id="U0PAT", now=clock()
        )
    )
    held = store_alert(store, clock, channel="C0HELD", trigger="UTHELD")
    [held_alert] = outbox.load_batch(store, "C0HELD", 10)
    mute.hold(store, [held_alert])

    pruned = prune(store, cutoffs(90, START))  # type: ignore[arg-type]

    assert pruned.alerts == 3
    assert outbox_rows(store) == {
        recent_sent: "sent",
        pending: "pending",
        sending: "sending",
        failed: "failed",
        no_channel: "failed",
        held: "held",
    }
    assert not set(old_sent) & set(outbox_rows(store))
    assert count(store, alerts) == 6  # each deleted outbox row took its alert along
    assert [a.outbox_id for a in outbox.failed_alerts(store)] == [no_channel, failed]  # still listed


def test_sent_report_runs_go_after_the_retention_but_never_within_35_days(store: Store) -> None:
    def sent_run(subject: int, key: str, sent_at: float) -> int:
        run_id = runs.claim(store, RunKind.BUDGET_WARNING, subject, key, sent_at - 60)
        assert run_id is not None
        runs.mark_sent(store, run_id, sent_at)
        return run_id

    sent_run(1, "2026-11", START - 60 * DAY)
    this_month = sent_run(2, "2027-01", START - 14 * DAY)  # must keep stopping a second warning
    claimed = runs.claim(store, RunKind.DIGEST, 3, "2026-10-01", START - 90 * DAY)  # a dead claim: left to settle

    assert prune(store, cutoffs(1, START)).report_runs == 1  # type: ignore[arg-type]
    with store.engine.connect() as conn:
        assert sorted(conn.execute(select(report_runs.c.id)).scalars()) == sorted([this_month, claimed])  # type: ignore[type-var]
    assert runs.exists(store, RunKind.BUDGET_WARNING, 2, "2027-01")
    assert not runs.exists(store, RunKind.BUDGET_WARNING, 1, "2026-11")


def test_audit_entries_are_kept_a_year_or_the_retention_if_longer(store: Store) -> None:
    for days_ago in (500, 400, 300, 10):
        store.write(
            lambda conn, d=days_ago: audit.record(
                conn, at=START - d * DAY, user_id="U0PAT", channel_id="C1", action="trigger.delete", target=f"{d}"
            )
        )

    assert prune(store, cutoffs(90, START)).audit_entries == 2  # type: ignore[arg-type]
    assert [e.target for e in audit.latest(store)] == ["10", "300"]
    assert prune(store, cutoffs(3650, START)).audit_entries == 0  # type: ignore[arg-type]
    assert len(audit.latest(store)) == 2


def test_a_big_first_prune_deletes_in_batches_of_a_thousand(store: Store) -> None:
    clock = ManualClock(START - 200 * DAY)
    rows = [
        parse_callback({"UsageTriggerSid": f"UT{i}", "IdempotencyToken": f"t{i}"}, clock=clock) for i in range(2500)
    ]
    intake.store_alerts(store, rows, fallback_channel="C0BULK", received=clock())  # type: ignore[arg-type]
    for _ in range(3):
        deliver(store, "C0BULK", at=START - 100 * DAY)
    assert count(store, alerts) == 2500
    commits: list[object] = []

    def on_commit(conn: object) -> None:
        commits.append(conn)

    event.listen(store.engine, "commit", on_commit)
    try:
        pruned = prune(store, cutoffs(90, START))  # type: ignore[arg-type]
    finally:
        event.remove(store.engine, "commit", on_commit)
    assert pruned.alerts == 2500
    assert (count(store, alerts), count(store, outbox_table)) == (0, 0)
    # 1,000 + 1,000 + 500 alerts, then one (empty) batch each for runs, audit entries, usage
    # snapshots and spike states.
    assert len(commits) == 3 + 1 + 1 + 1 + 1


# --- when: at most once an hour, from the scheduled pass -------------------------------------


def test_pruning_runs_at_most_once_an_hour_and_remembers_when(store: Store) -> None:
    clock = ManualClock(START - 100 * DAY)
    store_alert(store, clock)
    deliver(store, "C0ALERTS", at=START - 100 * DAY)

    assert prune_if_due(store, retention_days=0, now=START) is None  # 0 keeps everything
    assert store.get_state(retention.LAST_RUN_STATE) is None
    first = prune_if_due(store, retention_days=90, now=START)
    assert first is not None and first.alerts == 1
    assert float(store.get_state(retention.LAST_RUN_STATE) or 0) == START

    store_alert(store, clock)
    deliver(store, "C0ALERTS", at=START - 100 * DAY)
    assert prune_if_due(store, retention_days=90, now=START + PRUNE_EVERY_SECONDS - 1) is None
    assert count(store, alerts) == 1
    again = prune_if_due(store, retention_days=90, now=START + PRUNE_EVERY_SECONDS)
    assert again is not None and again.alerts == 1
    with store.engine.connect() as conn:
        remembered = conn.execute(select(state.c.updated_at).where(state.c.key == retention.LAST_RUN_STATE))
        assert remembered.scalar_one() == START + PRUNE_EVERY_SECONDS


@pytest.mark.parametrize("passes", [2, 6])
def test_of_passes_running_at_once_one_prunes(store: Store, passes: int) -> None:
    def all_at_once(now: float) -> list[retention.Pruned | None]:
        barrier = threading.Barrier(passes)

        def one_pass() -> retention.Pruned | None:
            barrier.wait()
            return prune_if_due(store, retention_days=90, now=now)

        with ThreadPoolExecutor(passes) as pool:
            return list(pool.map(lambda _: one_pass(), range(passes)))

    # The very first pruning (no state row yet), then one an hour later (the row is there).
    for now in (START, START + PRUNE_EVERY_SECONDS):
        outcomes = all_at_once(now)
        assert sum(o is not None for o in outcomes) == 1
        assert float(store.get_state(retention.LAST_RUN_STATE) or 0) == now


def test_the_scheduled_pass_prunes_and_says_so(
    store: Store, usage: UsageClient, clients: tuple[WebClient, WebClient], fake_twilio: FakeTwilio
) -> None:
    poster = SlackPoster(store, *clients)
    clock = ManualClock(START - 100 * DAY)
    store_alert(store, clock)
    deliver(store, "C0ALERTS", at=START - 100 * DAY)
    now = datetime.fromtimestamp(START, UTC)

    kept = run_due(store, usage, poster, now=now, tz=ZoneInfo("UTC"))  # the default keeps everything
    assert kept.pruned is None and "retention" not in kept.summary()
    report = run_due(store, usage, poster, now=now, tz=ZoneInfo("UTC"), retention_days=30)
    assert report.pruned == retention.Pruned(alerts=1, report_runs=0, audit_entries=0)
    assert report.summary().endswith("; retention: deleted 1 delivered alerts, 0 report runs, 0 audit entries")
    assert run_due(store, usage, poster, now=now, tz=ZoneInfo("UTC"), retention_days=30).pruned is None
    assert not [r for r in fake_twilio.requests if "Usage" in r.path]  # nothing due: Twilio not asked


def test_python_m_bot_digests_prunes_with_the_default_retention(
    store: Store, database_url: str, fake_twilio: FakeTwilio, fake_slack: FakeSlack
) -> None:
    # A real process reads the wall clock: data is placed relative to it.
    now = time.time()
    clock = ManualClock(now - 100 * DAY)
    store_alert(store, clock)
    deliver(store, "C0ALERTS", at=now - 91 * DAY)
    store_alert(store, clock)
    deliver(store, "C0ALERTS", at=now - 89 * DAY)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "SLACK_BOT_TOKEN": VALID_TOKEN,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_API_URL": fake_twilio.url,
        "SLACK_API_URL": fake_slack.api_url,
        "DATABASE_URL": database_url,
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot", "digests"],
        cwd=ROOT / "tests",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "retention: deleted 1 delivered alerts" in result.stdout
    assert count(store, alerts) == 1
