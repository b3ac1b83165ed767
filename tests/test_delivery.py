"""The alert relay against the fake Slack: retries, rate limits, storms, channel errors, exactly once."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select, update

from bot.alerts import leases
from bot.alerts.outbox import failed_alerts
from bot.alerts.receive import AlertWriter, parse_callback
from bot.alerts.relay import AlertRelay, DeliveryPolicy, wait_before_pass
from bot.alerts.render import ALERTS_PER_MESSAGE
from bot.model import Message
from bot.slack import SLACK_AUTH_STATE, Marker, PostOutcome, SlackPoster, make_slack_clients, pause_posting
from bot.store import Store
from bot.store.schema import channels, outbox
from tests.clocks import ManualClock
from tests.fakes.slack import VALID_TOKEN, FakeSlack

FAST = DeliveryPolicy(
    channel_interval=0.05, max_backoff=0.2, auth_backoff=0.2, poll_interval=0.02, min_pass_interval=0.005
)


START = 1_800_000_000.0  # the clock's start, a fixed moment


def make_relay(
    store: Store,
    slack: FakeSlack,
    *,
    policy: DeliveryPolicy = FAST,
    fallback: str = "",
    clock: ManualClock | None = None,
) -> AlertRelay:
    poster = SlackPoster.from_token(store, VALID_TOKEN, slack.api_url, clock=clock or time.time)
    return AlertRelay(store, poster, fallback_channel=fallback, policy=policy, clock=clock or time.time)


def fire(store: Store, n: int = 1, *, channel: str = "C0ALERTS", fallback: str = "", start: int = 0) -> list[str]:
    """Store `n` distinct alerts for `channel`, as the callback endpoint would; their trigger SIDs."""
    sids = []
    for i in range(start, start + n):
        sid = f"UT{i:032x}"
        params = {
            "UsageTriggerSid": sid,
            "UsageCategory": "sms",
            "TriggerBy": "count",
            "TriggerValue": "1000",
            "CurrentValue": str(1000 + i),
            "DateFired": "Wed, 25 Nov 2026 12:00:00 +0000",
            "IdempotencyToken": f"tok-{i}",
        }
        alert = parse_callback(params, channel=channel)
        assert alert is not None
        assert AlertWriter(store, fallback_channel=fallback).store_alert(alert)
        sids.append(sid)
    return sids


def statuses(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return [row[0] for row in conn.execute(select(outbox.c.status).order_by(outbox.c.id))]


def named(slack: FakeSlack, sid: str) -> int:
    """In how many posted messages the alert with this trigger SID appears."""
    return sum(sid in str(p.blocks) for p in slack.posted)


def drain(relay: AlertRelay, store: Store, *, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        relay.run_once()
        if all(s in ("sent", "failed") for s in statuses(store)):
            return
        time.sleep(0.01)
    raise AssertionError(f"not delivered in time: {statuses(store)}")


def test_an_alert_is_posted_once_with_a_text_fallback(store: Store, fake_slack: FakeSlack) -> None:
    [sid] = fire(store)
    relay = make_relay(store, fake_slack)
    drain(relay, store)
    [post] = fake_slack.posted
    assert post.channel == "C0ALERTS"
    assert "1,000" in post.text and "sms" in post.text
    assert sid in str(post.blocks)
    assert post.metadata and post.metadata["event_type"] == "usage_alert"
    assert statuses(store) == ["sent"]
    relay.run_once()
    assert len(fake_slack.posted) == 1


def test_slack_outage_is_retried_until_delivered(store: Store, fake_slack: FakeSlack) -> None:
    fire(store, 3)
    relay = make_relay(store, fake_slack)
    fake_slack.down_status = 503
    for _ in range(5):
        relay.run_once()
        time.sleep(0.05)
    assert fake_slack.posted == []
    assert len(fake_slack.calls_to("chat.postMessage")) >= 2  # it kept trying
    assert "sent" not in statuses(store)
    fake_slack.down_status = None
    drain(relay, store)
    assert len(fake_slack.posted) == 1  # one grouped message, posted once
    assert statuses(store) == ["sent"] * 3


def test_backoff_grows_while_slack_stays_down(store: Store, fake_slack: FakeSlack) -> None:
    fire(store)
    clock = ManualClock(START)
    relay = make_relay(store, fake_slack, clock=clock, policy=DeliveryPolicy(max_backoff=300.0))
    fake_slack.down_status = 500
    waits = []
    for _ in range(6):
        assert relay.run_once() == 1
        with store.engine.connect() as conn:
            next_at = conn.execute(select(channels.c.next_post_at)).scalar_one()
        waits.append(next_at - clock.now)
        assert relay.run_once() == 0  # not due yet: nothing is sent before the backoff ends
        clock.advance(next_at - clock.now)
    assert waits[-1] > waits[0] * 4
    assert all(w <= 300 for w in waits)
    fake_slack.down_status = None
    relay.run_once()
    assert statuses(store) == ["sent"]


def test_a_429_pauses_every_channel_for_its_retry_after(store: Store, fake_slack: FakeSlack) -> None:
    fire(store, 1, channel="C1")
    clock = ManualClock(START)
    relay = make_relay(store, fake_slack, clock=clock)
    fake_slack.fail_next_posts.append((429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "7"}))
    relay.run_once()
    assert fake_slack.posted == [] and len(fake_slack.calls_to("chat.postMessage")) == 1
    fire(store, 1, channel="C2", start=1)  # another channel, never rate-limited itself
    clock.advance(6.5)
    relay.run_once()
    assert len(fake_slack.calls_to("chat.postMessage")) == 1  # no channel posts before Retry-After
    # Nor does another worker (another process or dyno) on the same database.
    other = make_relay(store, fake_slack, clock=clock)
    other.run_once()
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    clock.advance(1.0)
    relay.run_once()
    assert sorted(p.channel for p in fake_slack.posted) == ["C1", "C2"]
    assert statuses(store) == ["sent", "sent"]


def test_the_workspace_pause_keeps_the_latest_end(store: Store, fake_slack: FakeSlack) -> None:
    clock = ManualClock(START)
    poster = SlackPoster.from_token(store, VALID_TOKEN, fake_slack.api_url, clock=clock)
    fake_slack.fail_next_posts.append((429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "5"}))
    assert poster.post("C1", Message(text="x"), Marker("t", {})).outcome is PostOutcome.RATE_LIMITED
    assert poster.paused_for() == 5.0
    # A shorter Retry-After heard by another worker meanwhile does not shorten the pause.
    store.write(lambda conn: pause_posting(conn, clock() + 2, now=clock()))
    assert poster.paused_for() == 5.0
    clock.advance(4.0)
    result = poster.post("C2", Message(text="x"), Marker("t", {}))
    assert (result.outcome, result.retry_after) == (PostOutcome.RATE_LIMITED, 1.0)
    assert len(fake_slack.calls_to("chat.postMessage")) == 1  # the paused post never reached Slack
    clock.advance(1.0)
    assert poster.paused_for() == 0.0
    assert poster.post("C2", Message(text="x"), Marker("t", {})).outcome is PostOutcome.POSTED


def test_a_storm_is_grouped_paced_and_names_every_alert(store: Store, fake_slack: FakeSlack) -> None:
    # The same shape as the 300-alert benchmark, five times faster: Slack allows 5 posts/s here.
    fake_slack.channel_rate = 5.0
    policy = DeliveryPolicy(channel_interval=0.2, poll_interval=0.02)
    relay = make_relay(store, fake_slack, policy=policy)
    stop = relay.start()
    try:
        sids: list[str] = []
        for burst in range(10):  # 200 alerts over about a second
            sids += fire(store, 20, start=burst * 20)
            relay.wake.set()
            time.sleep(0.1)
        deadline = time.monotonic() + 20
        while "pending" in statuses(store) or "sending" in statuses(store):
            assert time.monotonic() < deadline, statuses(store)
            time.sleep(0.05)
    finally:
        stop.set()
    assert all(named(fake_slack, sid) == 1 for sid in sids)
    assert len(fake_slack.posted) <= 200 / ALERTS_PER_MESSAGE + 8
    assert fake_slack.status_counts.get(429, 0) <= 2


def test_a_pass_waits_for_the_pass_interval_unless_a_paced_channel_comes_due_first() -> None:
    policy = DeliveryPolicy(min_pass_interval=0.05, min_due_gap=0.01)
    assert wait_before_pass(policy, since_pass=0.0, due_in=None) == pytest.approx(0.05)
    assert wait_before_pass(policy, since_pass=0.0, due_in=0.2) == pytest.approx(0.05)  # that pass finds it not due
    assert wait_before_pass(policy, since_pass=0.0, due_in=0.02) == pytest.approx(0.02)  # on time, not at 0.05
    assert wait_before_pass(policy, since_pass=0.0, due_in=0.0) == pytest.approx(0.01)  # never closer than the gap
    assert wait_before_pass(policy, since_pass=0.03, due_in=0.0) == 0.0
    assert wait_before_pass(policy, since_pass=0.1, due_in=None) == 0.0


def test_a_paced_channel_keeps_its_pace_while_other_channels_keep_the_relay_busy(
    store: Store, fake_slack: FakeSlack
) -> None:
    # Channel A may post again 0.6 s after its first message; a pass for channel B lands just
    # before that. A has to be served when it comes due, not a pass interval (0.5 s) after B.
    policy = DeliveryPolicy(channel_interval=0.6, min_pass_interval=0.5, poll_interval=0.02)
    relay = make_relay(store, fake_slack, policy=policy)
    stop = relay.start()
    try:
        fire(store, channel="C0AAAAAA")
        relay.wake.set()
        while not fake_slack.posted_to("C0AAAAAA"):
            time.sleep(0.005)
        fire(store, channel="C0AAAAAA", start=1)  # due 0.6 s after the first post
        time.sleep(0.3)
        fire(store, channel="C0BBBBBB", start=2)  # its pass comes 0.5 s after A's first
        relay.wake.set()
        deadline = time.monotonic() + 5
        while len(fake_slack.posted_to("C0AAAAAA")) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.005)
    finally:
        stop.set()
    first, second = (p.at for p in fake_slack.posted_to("C0AAAAAA"))
    assert 0.6 <= second - first < 0.85  # a pass interval after B's pass would be 1.0 s or more


def test_failing_passes_are_retried_at_the_poll_interval_not_at_a_due_time_gone_by(
    store: Store, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    policy = DeliveryPolicy(channel_interval=0.2, poll_interval=0.1, min_pass_interval=0.05)
    relay = make_relay(store, fake_slack, policy=policy)
    fire(store, channel="C0AAAAAA")
    assert relay.run_once() == 1
    fire(store, channel="C0AAAAAA", start=1)
    assert relay.run_once() == 0  # paced: due in 0.2 s
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE channel_work")  # every pass fails from now on
    stop = relay.start()
    time.sleep(1.0)
    stop.set()
    failed = [r for r in caplog.records if r.getMessage().startswith("alert delivery pass failed")]
    assert 1 <= len(failed) <= 13  # about one per poll interval (0.1 s), not one per 10 ms


def test_not_in_channel_joins_a_public_channel_and_posts(store: Store, fake_slack: FakeSlack) -> None:
    fake_slack.members = set()
    fake_slack.public_channels = {"C0ALERTS"}
    fire(store)
    drain(make_relay(store, fake_slack), store)
    assert len(fake_slack.calls_to("conversations.join")) == 1
    assert [p.channel for p in fake_slack.posted] == ["C0ALERTS"]


@pytest.mark.parametrize("error", ["channel_not_found", "is_archived", "not_in_channel"])
def test_a_gone_channel_falls_back_to_the_alert_channel(store: Store, fake_slack: FakeSlack, error: str) -> None:
    if error == "not_in_channel":
        fake_slack.members = {"C0FALLBACK"}  # private channel: joining is not possible
    else:
        fake_slack.channel_errors["C0GONE"] = error
    [sid] = fire(store, channel="C0GONE")
    drain(make_relay(store, fake_slack, fallback="C0FALLBACK"), store)
    assert [p.channel for p in fake_slack.posted] == ["C0FALLBACK"]
    assert sid in str(fake_slack.posted[0].blocks)
    with store.engine.connect() as conn:
        last_error = conn.execute(select(outbox.c.last_error)).scalar_one()
    assert error in last_error


def test_undeliverable_alerts_are_kept_and_listed(store: Store, fake_slack: FakeSlack) -> None:
    fake_slack.channel_errors["C0GONE"] = "is_archived"
    [sid] = fire(store, channel="C0GONE")
    drain(make_relay(store, fake_slack), store)
    assert fake_slack.posted == []
    [failed] = failed_alerts(store)
    assert failed.trigger_sid == sid
    assert "is_archived" in failed.last_error


def test_a_revoked_token_keeps_alerts_and_reports_it(store: Store, fake_slack: FakeSlack) -> None:
    fire(store, 2)
    relay = make_relay(store, fake_slack)
    fake_slack.revoked = True
    relay.run_once()
    assert store.get_state(SLACK_AUTH_STATE) == "token_revoked"
    assert statuses(store) == ["pending", "pending"]
    fake_slack.revoked = False
    time.sleep(0.25)  # the auth backoff
    drain(relay, store)
    assert len(fake_slack.posted) == 1
    assert not store.get_state(SLACK_AUTH_STATE)


def _interrupt_a_batch(store: Store, batch_id: str, attempted_at: float) -> None:
    """What a worker leaves behind when it dies between handing a batch to Slack and recording it."""
    with store.transaction() as conn:
        conn.execute(update(outbox).values(status="sending", batch_id=batch_id, attempted_at=attempted_at))


def test_an_interrupted_post_that_reached_slack_is_not_posted_again(store: Store, fake_slack: FakeSlack) -> None:
    [sid] = fire(store)
    poster, _ = make_slack_clients(VALID_TOKEN, fake_slack.api_url)
    poster.chat_postMessage(
        channel="C0ALERTS",
        text="alert",
        metadata={"event_type": "usage_alert", "event_payload": {"batch": "batch-1"}},
    )
    _interrupt_a_batch(store, "batch-1", time.time())
    drain(make_relay(store, fake_slack), store)
    assert len(fake_slack.posted) == 1
    assert statuses(store) == ["sent"]
    assert sid  # the alert row itself is untouched


def test_an_interrupted_post_that_never_reached_slack_is_posted(store: Store, fake_slack: FakeSlack) -> None:
    [sid] = fire(store)
    _interrupt_a_batch(store, "batch-2", time.time())
    drain(make_relay(store, fake_slack), store)
    assert named(fake_slack, sid) == 1
    assert fake_slack.posted[0].metadata["event_payload"]["batch"] == "batch-2"  # type: ignore[index]


def test_two_instances_on_one_database_post_every_alert_exactly_once(database_url: str, fake_slack: FakeSlack) -> None:
    # Two "dynos": separate engines and relays on one database, working at the same time.
    stores = [Store.connect(database_url) for _ in range(2)]
    stores[0].migrate()
    sids = []
    for c in range(8):
        sids += fire(stores[0], 15, channel=f"C{c:08d}", start=c * 100)
    relays = [
        make_relay(s, fake_slack, policy=DeliveryPolicy(channel_interval=0.01, poll_interval=0.01)) for s in stores
    ]
    stops = [r.start() for r in relays]
    try:
        deadline = time.monotonic() + 30
        while any(s in ("pending", "sending") for s in statuses(stores[0])):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        for stop in stops:
            stop.set()
    assert [sid for sid in sids if named(fake_slack, sid) != 1] == []
    workers = {c.token for c in fake_slack.calls_to("chat.postMessage")}
    assert workers == {VALID_TOKEN}
    for s in stores:
        s.dispose()


def test_racing_claims_give_a_channel_to_one_worker(database_url: str, fake_slack: FakeSlack) -> None:
    stores = [Store.connect(database_url) for _ in range(4)]
    stores[0].migrate()
    fire(stores[0])
    relays = [make_relay(s, fake_slack) for s in stores]
    barrier = threading.Barrier(len(relays))
    wins: list[bool] = []

    def claim(relay: AlertRelay) -> None:
        barrier.wait()
        wins.append(relay._claim(["C0ALERTS"]) == ["C0ALERTS"])

    threads = [threading.Thread(target=claim, args=(r,)) for r in relays]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False, False, False, True]
    for s in stores:
        s.dispose()


def test_one_claim_takes_the_soonest_due_channels_no_one_holds_up_to_its_limit(store: Store) -> None:
    for n, channel in enumerate(("C0A", "C0B", "C0C", "C0D", "C0E")):
        fire(store, channel=channel, start=n)
    due = {"C0A": START - 3, "C0B": START - 2, "C0C": START + 5, "C0D": START - 1, "C0E": START - 4}
    with store.transaction() as conn:
        for channel, next_post_at in due.items():
            conn.execute(update(channels).where(channels.c.channel == channel).values(next_post_at=next_post_at))
        conn.execute(  # held by another worker
            update(channels).where(channels.c.channel == "C0D").values(lease_owner="other", lease_until=START + 10)
        )
    candidates = sorted(due)
    taken = leases.claim_due(store, candidates, "me", now=START, lease_seconds=20, limit=2)
    assert sorted(taken) == ["C0A", "C0E"]  # the two due soonest; C0C is not due, C0D is held
    assert leases.claim_due(store, candidates, "me", now=START, lease_seconds=20, limit=5) == ["C0B"]
    assert leases.claim_due(store, candidates, "other", now=START, lease_seconds=20, limit=5) == []
    assert leases.claim_due(store, [], "me", now=START, lease_seconds=20, limit=5) == []


def test_a_worker_that_lost_its_lease_does_not_post(store: Store, fake_slack: FakeSlack) -> None:
    fire(store)
    clock = ManualClock(START)
    slow, fast = make_relay(store, fake_slack, clock=clock), make_relay(store, fake_slack, clock=clock)
    assert slow._claim(["C0ALERTS"]) == ["C0ALERTS"]
    clock.advance(slow.policy.lease_seconds + 1)  # the slow worker stalls past its lease
    assert fast._claim(["C0ALERTS"]) == ["C0ALERTS"]
    slow._deliver("C0ALERTS")
    assert fake_slack.calls_to("chat.postMessage") == []
    fast._deliver("C0ALERTS")
    assert len(fake_slack.posted) == 1
