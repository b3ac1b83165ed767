"""10,000 alerts through delivery and retention: the tables stay about RETENTION_DAYS' worth.

Day after day on a clock moved by hand: alerts arrive through `AlertWriter` (from several
threads, as callbacks do), the relay delivers them to FakeSlack over loopback HTTP, and the
scheduled pass (`run_due`) prunes. Each day two alerts cannot be delivered (one for a snoozed
trigger, held; one for a channel that is gone, failed): they must stay however old they get.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bot.alerts import mute
from bot.alerts.outbox import count_unsent
from bot.alerts.receive import AlertWriter, parse_callback
from bot.alerts.relay import AlertRelay, DeliveryPolicy
from bot.model import IncomingAlert
from bot.reports.retention import DAY
from bot.reports.scheduler import run_due
from bot.slack import SlackPoster
from bot.store import Store
from bot.store.schema import alerts, outbox
from bot.usage.client import UsageClient
from tests.clocks import ManualClock
from tests.fakes.slack import VALID_TOKEN, FakeSlack
from tests.fakes.twilio import FakeTwilio

RETENTION_DAYS = 3
DAYS = 50
DELIVERED_PER_DAY = 200  # 50 days x 200 = 10,000 alerts delivered
CHANNELS = tuple(f"C0RET{i}" for i in range(8))  # as many as the relay works at once
GONE, SNOOZED, SNOOZED_TRIGGER = "C0GONE", CHANNELS[0], "UT" + "5" * 32
START = 1_800_000_000.0  # 2027-01-15 08:00 GMT
POLICY = DeliveryPolicy(channel_interval=1.0, max_backoff=1.0, poll_interval=0.01)


def day_of_alerts(day: int) -> list[IncomingAlert]:
    """The day's callbacks: 200 to deliver, one for the snoozed trigger, one for a gone channel."""
    fired = datetime.fromtimestamp(START + day * DAY, UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")

    def callback(sid: str, channel: str) -> IncomingAlert:
        params = {"UsageTriggerSid": sid, "UsageCategory": "sms", "DateFired": fired, "IdempotencyToken": sid + fired}
        alert = parse_callback(params, channel=channel)
        assert alert is not None
        return alert

    batch = [callback(f"UT{day:04d}{i:028d}", CHANNELS[i % len(CHANNELS)]) for i in range(DELIVERED_PER_DAY)]
    return [*batch, callback(SNOOZED_TRIGGER, SNOOZED), callback(f"UT{day:04d}{'9' * 28}", GONE)]


def noon(day: int, minutes: int = 0) -> datetime:
    return datetime.fromtimestamp(START + day * DAY + 4 * 3600 + minutes * 60, UTC)  # START is 08:00 GMT


def rows(store: Store) -> tuple[int, int]:
    with store.engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(alerts)).scalar_one(),
            conn.execute(select(func.count()).select_from(outbox)).scalar_one(),
        )


def sent_rows(store: Store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(outbox).where(outbox.c.status == "sent")).scalar_one()


def deliver_all(relay: AlertRelay, store: Store, clock: ManualClock) -> None:
    """Run the relay, a paced second at a time, until nothing is left to post."""
    for _ in range(1000):
        unsent = count_unsent(store)
        if not unsent.get("pending") and not unsent.get("sending"):
            return
        relay.run_once()
        clock.now += POLICY.channel_interval
    raise AssertionError(f"the relay did not finish: {count_unsent(store)}")


def test_ten_thousand_alerts_leave_about_retention_days_of_rows(
    store: Store, fake_slack: FakeSlack, fake_twilio: FakeTwilio, usage: UsageClient
) -> None:
    clock = ManualClock(START)
    fake_slack.channel_errors[GONE] = "channel_not_found"
    poster = SlackPoster.from_token(store, VALID_TOKEN, fake_slack.api_url, clock=clock)
    relay = AlertRelay(store, poster, policy=POLICY, clock=clock, worker_id="retention-test")
    writer = AlertWriter(store, fallback_channel="", clock=clock)
    store.write(
        lambda conn: mute.snooze(
            conn, trigger_sid=SNOOZED_TRIGGER, channel=SNOOZED, until=START + 10 * DAYS * DAY, user_id="U0P", now=START
        )
    )
    deleted = 0
    with ThreadPoolExecutor(32) as callbacks:  # callbacks arriving together share commits
        for day in range(DAYS):
            clock.now = START + day * DAY
            assert all(callbacks.map(writer.store_alert, day_of_alerts(day)))
            deliver_all(relay, store, clock)
            assert clock.now < START + day * DAY + 3600  # delivered within the hour

            # The day's pass at noon: what was delivered RETENTION_DAYS mornings ago goes.
            report = run_due(store, usage, poster, now=noon(day), tz=ZoneInfo("UTC"), retention_days=RETENTION_DAYS)

            assert report.pruned is not None  # a day after the last pruning: due
            deleted += report.pruned.alerts
            assert count_unsent(store) == {"held": day + 1, "failed": day + 1}  # never deleted by age
            alert_rows, outbox_rows = rows(store)
            assert alert_rows == outbox_rows  # an outbox row never outlives its alert, nor the reverse
            assert sent_rows(store) == min(day + 1, RETENTION_DAYS) * DELIVERED_PER_DAY
            assert outbox_rows == sent_rows(store) + 2 * (day + 1)
            assert outbox_rows <= RETENTION_DAYS * DELIVERED_PER_DAY + 2 * DAYS
            if day == DAYS // 2:  # another pass within the hour leaves it be
                later = run_due(
                    store, usage, poster, now=noon(day, 59), tz=ZoneInfo("UTC"), retention_days=RETENTION_DAYS
                )
                assert later.pruned is None

    assert deleted + sent_rows(store) == DAYS * DELIVERED_PER_DAY == 10_000
    posted = {sid for p in fake_slack.posted if p.channel in CHANNELS for sid in re.findall(r"UT\d{32}", str(p.blocks))}
    assert posted == {f"UT{day:04d}{i:028d}" for day in range(DAYS) for i in range(DELIVERED_PER_DAY)}
    assert not [r for r in fake_twilio.requests if "Usage" in r.path]  # nothing was due: Twilio not asked
