"""The relay under load: a pass's database work does not grow with the backlog, a storm of
callbacks at a period boundary is delivered exactly once at Slack's pace, and a 429 pauses every
channel for its Retry-After.

Work is counted (tests/relay_work.py), never timed; bench/relay_pass.py times it.
"""

from __future__ import annotations

import itertools
import re
import time
from pathlib import Path

from sqlalchemy import select, text, update

from bot.alerts import leases
from bot.alerts.intake import store_alerts
from bot.alerts.receive import parse_callback
from bot.alerts.relay import AlertRelay, DeliveryPolicy
from bot.model import IncomingAlert
from bot.slack import SlackPoster
from bot.store import Store
from bot.store.schema import channels, outbox
from tests.clocks import ManualClock
from tests.fakes.slack import VALID_TOKEN, FakeSlack
from tests.relay_work import counting
from tests.servers import app_env, gunicorn_app, send_all, signed_callback, trigger_sid

CHANNELS = [f"C{c:08d}" for c in range(20)]


def alert(i: int, channel: str) -> IncomingAlert:
    params = {
        "UsageTriggerSid": f"UT{i:032x}",
        "UsageCategory": "sms",
        "CurrentValue": str(i),
        "IdempotencyToken": f"t{i}",
    }
    found = parse_callback(params, channel=channel)
    assert found is not None
    return found


def fill(store: Store, start: int, stop: int) -> None:
    """Alerts start..stop-1, spread evenly over CHANNELS, stored as intake stores them (in chunks)."""
    batch = [alert(i, CHANNELS[i % len(CHANNELS)]) for i in range(start, stop)]
    for k in range(0, len(batch), 1000):
        store_alerts(store, batch[k : k + 1000], fallback_channel="", received=time.time())


def pending(store: Store) -> int:
    with store.engine.connect() as conn:
        return len(conn.execute(select(outbox.c.id).where(outbox.c.status == "pending")).all())


def test_a_pass_that_finds_nothing_due_reads_as_much_with_20_or_20000_alerts_waiting(
    store: Store, fake_slack: FakeSlack
) -> None:
    # What a wake-up costs while every channel waits for its pace: the case where each stored
    # callback used to re-read every pending alert.
    clock = ManualClock()
    relay = AlertRelay(store, SlackPoster.from_token(store, VALID_TOKEN, fake_slack.api_url, clock=clock), clock=clock)
    work = {}
    backlog_query = {}
    for size in (20, 20_000):
        fill(store, pending(store), size)
        store.write(lambda conn: conn.execute(update(channels).values(next_post_at=clock() + 60)))
        relay.run_once()  # warm: the first pass may read the schema or open connections
        with counting(store) as work[size]:
            assert relay.run_once() == 0
        # The counter does see work that grows with the backlog: the query a pass used to run.
        with counting(store) as backlog_query[size], store.engine.connect() as conn:
            conn.execute(text("SELECT channel, count(*) FROM outbox WHERE status = 'pending' GROUP BY channel")).all()
    print(f"idle pass work: {work[20].units} / {work[20_000].units}")
    print(f"the old query's work: {backlog_query[20].units} / {backlog_query[20_000].units}")
    assert pending(store) == 20_000 and fake_slack.calls == []
    assert work[20].statements == work[20_000].statements
    assert work[20_000].units <= work[20].units * 1.05 + 5, (work[20].units, work[20_000].units)
    assert backlog_query[20_000].units > 100 * backlog_query[20].units


def test_a_delivering_pass_reads_as_much_with_600_or_20000_alerts_waiting(store: Store, fake_slack: FakeSlack) -> None:
    # Full batches both times (30 alerts per channel at least), so each message is the same size.
    clock = ManualClock()
    policy = DeliveryPolicy(parallel_channels=8)
    poster = SlackPoster.from_token(store, VALID_TOKEN, fake_slack.api_url, clock=clock)
    relay = AlertRelay(store, poster, clock=clock, policy=policy)
    work = {}
    for size in (600, 20_000):
        fill(store, pending(store) + len(fake_slack.posted) * 30, size + len(fake_slack.posted) * 30)
        # What arrived since the last pass is collected first: that grows with the arrivals (here,
        # the fill's 1,000-alert transactions), not with the backlog.
        assert leases.collect_work(store)
        clock.now += 10  # every channel is due
        with counting(store) as work[size]:
            assert relay.run_once() == 8
    print(f"delivering pass work: {work[600].units} / {work[20_000].units}")
    assert [len(p.blocks) for p in fake_slack.posted[:8]] == [len(p.blocks) for p in fake_slack.posted[8:]]
    assert sorted(work[600].statements) == sorted(work[20_000].statements)
    assert work[20_000].units <= work[600].units * 1.1 + 5, (work[600].units, work[20_000].units)


def named(slack: FakeSlack, sid: str) -> int:
    return sum(sid in str(p.blocks) for p in slack.posted)


def named_anywhere(slack: FakeSlack) -> set[str]:
    return {sid for p in slack.posted for sid in re.findall(r"UT[0-9a-f]{32}", str(p.blocks))}


def test_a_period_boundary_storm_is_posted_once_at_slacks_pace(
    database_url: str, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    # 1,000 signed callbacks over 100 channels, sent over real HTTP by 16 clients at once, to
    # usage-bot run as the Procfile runs it (relay inside, the default), at Slack's real pace.
    callbacks = [signed_callback(i, f"C{i % 100:08d}") for i in range(1000)]
    with gunicorn_app(
        app_env(slack_api_url=fake_slack.api_url, database_url=database_url), log_dir=str(tmp_path)
    ) as port:
        # Warm up first (connections, imports), as a server that has been running is.
        assert (
            send_all(port, [signed_callback(i, "C0WARMUP", token=f"warm-{i}") for i in range(1000, 1050)]) == [200] * 50
        )
        started = time.monotonic()
        answers = send_all(port, callbacks)
        sent_in = time.monotonic() - started
        while len(named_anywhere(fake_slack)) < 1050 and time.monotonic() < started + 60:
            time.sleep(0.2)
        delivered_in = time.monotonic() - started
        time.sleep(1.5)  # anything posted twice would show by now
    print(f"storm: 1,000 callbacks sent in {sent_in:.2f} s, all posted {delivered_in:.1f} s after the first")
    assert answers == [200] * 1000
    assert delivered_in < 60
    assert [named(fake_slack, trigger_sid(i)) for i in range(1000)] == [1] * 1000
    for c in range(100):
        times = [p.at for p in fake_slack.posted_to(f"C{c:08d}")]
        assert all(b - a >= 1.0 for a, b in itertools.pairwise(times)), (c, times)


def test_a_429_pauses_every_channel_of_every_worker_until_its_retry_after(
    database_url: str, fake_slack: FakeSlack
) -> None:
    # Slack down for 2 s, then answering 429 (Retry-After 1 or 2 s) to every call for 2 s: 100
    # alerts over 5 channels, delivered by two workers on one database (two processes or dynos).
    stores = [Store.connect(database_url) for _ in range(2)]
    stores[0].migrate()
    policy = DeliveryPolicy(max_backoff=1.0)  # retry often, so that the 429s are certainly met
    relays = [AlertRelay(s, SlackPoster.from_token(s, VALID_TOKEN, fake_slack.api_url), policy=policy) for s in stores]
    normal_again = fake_slack.misbehave((503, 2.0), (429, 2.0), retry_after=(1, 2))
    # Half arrive as Slack goes down (for channels 0-2), half as the 429s begin (for channels 3-4:
    # posted without first looking in the channel for an interrupted post, they meet the 429s).
    first = [alert(i, f"C{i % 3:08d}") for i in range(50)]
    store_alerts(stores[0], first, fallback_channel="", received=time.time())
    stops = [r.start() for r in relays]
    try:
        time.sleep(max(0.0, normal_again - 2.0 - time.time()))
        batch = [alert(i, f"C{3 + i % 2:08d}") for i in range(50, 100)]
        store_alerts(stores[1], batch, fallback_channel="", received=time.time())
        deadline = time.monotonic() + 60
        while len(named_anywhere(fake_slack)) < 100 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)  # anything posted twice would show by now
    finally:
        for stop in stops:
            stop.set()
    # The scenario happened: posts met the outage, 429s were answered (to posts or to history
    # lookups, which pause posting as well), and posting resumed.
    assert {503, 200} <= {c.status for c in fake_slack.calls_to("chat.postMessage")}
    assert fake_slack.rate_limits
    assert fake_slack.posts_inside_rate_limits() == []
    assert all(p.at >= normal_again for p in fake_slack.posted)
    assert [named(fake_slack, trigger_sid(i)) for i in range(100)] == [1] * 100
    print(
        f"429 scenario: {len(fake_slack.rate_limits)} 429s; calls that arrived inside a window "
        f"(sent before its 429 was heard, or not): {len(fake_slack.calls_inside_rate_limits())}"
    )
    for s in stores:
        s.dispose()
