"""The notify stage of the alert pipeline: delivering stored alerts to Slack, through the one
poster (bot/slack.py).

Guarantees, and how they are kept:
- Every stored alert is posted: outbox rows stay until Slack accepts them. Slack being down,
  5xx or connection errors back the channel off (capped) and retry forever.
- Posted once, across threads, processes and dynos: a worker takes a *lease* on a channel
  (an atomic conditional UPDATE) before posting to it, so one worker at a time posts to a channel.
  Rows are marked `sending` with a batch id before the post; a batch whose outcome is unknown
  (crash or timeout mid-post) is looked up in the channel's history by that id before it is
  posted again.
- Not flooding: one message per channel per `channel_interval`; what accumulates in between
  goes out as one grouped message. A 429 pauses posting to every channel for its Retry-After
  (bot/slack.py: Slack does not say whether the channel's or the workspace's limit was hit).
- Not competing with intake: a pass reads only channels that have work and are due (bot/alerts/
  leases.py), and snoozed alerts only when a snooze has ended, so it costs the same with 10 or
  20,000 alerts waiting; wake-ups that come faster than `min_pass_interval` share one pass.
- Nothing dropped silently: alerts for a gone channel move to ALERT_CHANNEL; what cannot be
  delivered anywhere is marked `failed` with the reason (`/usage alerts failed`).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Connection

from bot.alerts import leases, mute, outbox
from bot.alerts.outbox import OutboxStatus
from bot.alerts.render import ALERTS_PER_MESSAGE, render_alerts
from bot.clock import Clock, system_clock
from bot.config import Settings
from bot.model import StoredAlert
from bot.slack import Marker, PostOutcome, PostResult, SlackPoster
from bot.store import Store

log = logging.getLogger(__name__)

METADATA_EVENT = "usage_alert"


@dataclass(frozen=True)
class DeliveryPolicy:
    channel_interval: float = 1.0  # Slack: about one message per second per channel
    max_batch: int = ALERTS_PER_MESSAGE  # alerts named in one grouped message
    # Taken or renewed at most a quarter of it before each post (which takes at most 10 s, the HTTP
    # timeout), so a post always ends inside the lease.
    lease_seconds: float = 20.0
    max_backoff: float = 300.0
    auth_backoff: float = 60.0
    poll_interval: float = 0.25
    # A relay in a process of its own (`python -m bot worker`) is not woken by the intake, which
    # runs in other processes: it looks this often instead (an idle pass: bench/relay_pass.py).
    own_process_poll_interval: float = 0.05
    parallel_channels: int = 8
    # Passes start at most this often: a burst of stored callbacks wakes the relay once, not once
    # per callback, while channels wait for their pace...
    min_pass_interval: float = 0.05
    # ...except that a paced channel coming due is served on time, down to this gap. Were it left
    # to the next pass, its wait (up to min_pass_interval) would push its pace back by as much at
    # every message: alerts arriving at Slack's pace would fall further behind with each one.
    min_due_gap: float = 0.01


class AlertRelay:
    """Works off the outbox. `run_once` is one pass; `run_forever` is the background loop."""

    def __init__(
        self,
        store: Store,
        poster: SlackPoster,
        *,
        fallback_channel: str = "",
        policy: DeliveryPolicy | None = None,
        clock: Clock = system_clock,
        worker_id: str | None = None,
    ) -> None:
        self.store = store
        self.poster = poster
        self.fallback_channel = fallback_channel
        self.policy = policy or DeliveryPolicy()
        self.clock = clock
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.wake = threading.Event()
        self._next_ready_at: float | None = None
        self._lease_taken: dict[str, float] = {}  # channel -> when we last took or renewed its lease
        self._pool = ThreadPoolExecutor(self.policy.parallel_channels, thread_name_prefix="alert-relay")

    @classmethod
    def from_settings(
        cls, store: Store, settings: Settings, *, clock: Clock = system_clock, policy: DeliveryPolicy | None = None
    ) -> AlertRelay:
        poster = SlackPoster.from_token(store, settings.slack_bot_token, settings.slack_api_url, clock=clock)
        return cls(store, poster, fallback_channel=settings.alert_channel, clock=clock, policy=policy)

    # --- the loop --------------------------------------------------------------------------

    def run_forever(self, stop: threading.Event) -> None:
        """Deliver until `stop` is set. New alerts `wake` the loop; otherwise it sleeps until the
        next paced channel is due, or polls (for alerts stored by other processes)."""
        last_pass = float("-inf")
        while not stop.is_set():
            # time.monotonic measures the gap between passes; it does not tell the time.
            since_pass = time.monotonic() - last_pass
            due_in = None if self._next_ready_at is None else self._next_ready_at - self.clock()
            if (rest := wait_before_pass(self.policy, since_pass=since_pass, due_in=due_in)) > 0:
                stop.wait(rest)
            last_pass = time.monotonic()
            try:
                worked = self.run_once()
            except Exception:  # the loop must survive a database or network hiccup
                log.exception("alert delivery pass failed; retrying")
                worked = 0
                self._next_ready_at = None  # not known: wait the poll interval, not for a stale due time
            if not worked:
                timeout = self.policy.poll_interval
                if self._next_ready_at is not None:
                    timeout = min(timeout, max(0.001, self._next_ready_at - self.clock()))
                self.wake.wait(timeout)
                self.wake.clear()

    def start(self) -> threading.Event:
        """Run the loop in a daemon thread; set the returned event to stop it."""
        stop = threading.Event()
        threading.Thread(target=self.run_forever, args=(stop,), name="alert-relay", daemon=True).start()
        return stop

    def run_once(self) -> int:
        """Deliver to up to `parallel_channels` channels that are due; the number worked on.

        Its reads do not grow with the outbox: the snoozes table, what arrived since the last pass,
        the pause, and a few rows of the channels that have work."""
        mute.release_ended_snoozes(self.store, self.clock())
        leases.collect_work(self.store)
        now = self.clock()
        if (paused := self.poster.paused_for()) > 0:  # a 429: no channel posts before it ends
            self._next_ready_at = now + paused
            return 0
        # A few more than we can work on, in case other workers claim some first.
        waiting = leases.channels_with_work(self.store, now, limit=4 * self.policy.parallel_channels)
        # When the earliest paced channel may post again, so the loop can wake right then.
        self._next_ready_at = min((ready for _, ready in waiting if ready > now), default=None)
        claimed = self._claim([channel for channel, ready in waiting if ready <= now])
        if claimed:
            list(self._pool.map(self._deliver_claimed, claimed))
        return len(claimed)

    # --- leases ------------------------------------------------------------------------------

    def _claim(self, channels: list[str]) -> list[str]:
        """Take the leases of up to `parallel_channels` of these channels, in one write."""
        now = self.clock()
        claimed = leases.claim_due(
            self.store,
            channels,
            self.worker_id,
            now=now,
            lease_seconds=self.policy.lease_seconds,
            limit=self.policy.parallel_channels,
        )
        for channel in claimed:
            self._lease_taken[channel] = now
        return claimed

    def _renew(self, channel: str) -> bool:
        now = self.clock()
        if leases.renew(self.store, channel, self.worker_id, now=now, lease_seconds=self.policy.lease_seconds):
            self._lease_taken[channel] = now
            return True
        return False

    def _may_post(self, channel: str) -> bool:
        """Asked right before each post: is the lease still ours for the whole post? A lease taken
        moments ago (the usual case: claimed in this pass) is; an older one is renewed, which fails
        if it ran out (a stalled database, a slow lookup) and another worker may own the channel."""
        taken = self._lease_taken.get(channel)
        if taken is not None and self.clock() - taken < self.policy.lease_seconds / 4:
            return True
        return self._renew(channel)

    def _release(self, channel: str, *, after: float, failures: int = 0, error: str = "") -> None:
        """Give the channel back; it may post again `after` seconds from now."""
        leases.release(
            self.store, channel, self.worker_id, next_post_at=self.clock() + after, failures=failures, error=error
        )

    # --- delivering to one channel -------------------------------------------------------

    def _deliver_claimed(self, channel: str) -> None:
        try:
            self._deliver(channel)
        except Exception:
            log.exception("delivery to %s failed unexpectedly; will retry", channel)
            self._back_off(channel, "unexpected error")

    def _deliver(self, channel: str) -> None:
        drained = leases.queued(self.store, channel)  # before looking: see bot/alerts/leases.py
        batch = self._load_unsnoozed(channel)
        if not batch:
            leases.release(self.store, channel, self.worker_id, next_post_at=0.0, drained=drained)
            return
        batch_id = batch[0].batch_id if batch[0].status == OutboxStatus.SENDING else None
        if batch_id and self.poster.already_posted(channel, _marker(batch_id), batch[0].attempted_at or 0.0):
            self._sent(channel, batch_id, message_ts=None)
            return
        if batch_id and (paused := self.poster.paused_for()) > 0:
            # The lookup met a 429: the batch stays `sending`, to be looked for again after the pause.
            self._release(channel, after=paused)
            return
        if batch_id is None:
            batch_id = str(uuid.uuid4())
            outbox.mark_sending(self.store, batch, batch_id, self.clock())
        message = render_alerts(batch)
        result = self.poster.post(channel, message, _marker(batch_id), may_post=lambda: self._may_post(channel))
        self._settle(channel, batch, batch_id, result)

    def _load_unsnoozed(self, channel: str) -> list[StoredAlert]:
        """The next batch for the channel, after holding back the alerts of snoozed triggers."""
        snoozed = mute.snoozed_in(self.store, channel, self.clock())
        while True:
            batch = outbox.load_batch(self.store, channel, self.policy.max_batch)
            if not batch or not snoozed or batch[0].status == OutboxStatus.SENDING:
                return batch
            held = [a for a in batch if a.trigger_sid in snoozed]
            if len(held) < len(batch):
                if held:
                    mute.hold(self.store, held)
                return [a for a in batch if a.trigger_sid not in snoozed]
            mute.hold(self.store, held)  # all snoozed: hold them and look again

    def _settle(self, channel: str, batch: list[StoredAlert], batch_id: str, result: PostResult) -> None:
        """What the post's outcome means for the batch and the channel."""
        outcome, error = result.outcome, result.error
        if outcome is PostOutcome.POSTED:
            self._sent(channel, batch_id, message_ts=result.ts)
            log.info("posted %d alert(s) to %s", len(batch), channel)
        elif outcome is PostOutcome.ABANDONED:
            # Our lease ran out (a slow history lookup, a stalled database): another worker may
            # own this channel now, so posting could double an alert.
            log.warning("lost the lease on %s before posting; leaving it to its new owner", channel)
        elif outcome is PostOutcome.RATE_LIMITED:
            # The poster has paused every channel (or found them paused); this one waits as well.
            outbox.reset_to_pending(self.store, batch_id)
            self._release(channel, after=result.retry_after, error=error)
            log.info("Slack rate-limited %s; next post in %.0f s", channel, result.retry_after)
        elif outcome is PostOutcome.UNCERTAIN:
            # The batch stays "sending": the next attempt looks for it in the channel first.
            log.warning("posting %d alert(s) to %s failed: %s", len(batch), channel, error)
            self._back_off(channel, error)
        elif outcome is PostOutcome.AUTH_ERROR:
            outbox.reset_to_pending(self.store, batch_id)
            self._release(channel, after=self.policy.auth_backoff, error=error)
        elif outcome is PostOutcome.GONE:
            self._redirect_or_fail(channel, batch_id, error)
        else:
            outbox.fail_batch(self.store, batch_id, f"Slack refused the message: {error}")
            log.error("alerts kept as undeliverable: Slack refused the message: %s", error)
            self._release(channel, after=self.policy.channel_interval, error=error)

    def _sent(self, channel: str, batch_id: str, *, message_ts: str | None) -> None:
        """The batch is in the channel: mark it sent and give the channel back, in one transaction.
        Not durable (see outbox.mark_sent and leases.release)."""
        now = self.clock()

        def settle(conn: Connection) -> None:
            outbox.mark_sent_in(conn, batch_id, at=now, message_ts=message_ts)
            leases.release_in(conn, channel, self.worker_id, next_post_at=now + self.policy.channel_interval)

        self.store.write(settle, durable=False)

    def _redirect_or_fail(self, channel: str, batch_id: str, error: str) -> None:
        reason = f"{error} in {channel}"
        fallback = self.fallback_channel
        if fallback and fallback != channel:
            outbox.redirect_batch(self.store, batch_id, fallback, reason + "; sent to fallback")
            log.warning("%s: alerts moved to ALERT_CHANNEL %s", reason, fallback)
        else:
            outbox.fail_batch(self.store, batch_id, reason + ("" if fallback else "; ALERT_CHANNEL is not set"))
            log.error("%s: alerts kept as undeliverable (see /usage alerts failed)", reason)
        self._release(channel, after=self.policy.channel_interval, error=error)
        self.wake.set()

    def _back_off(self, channel: str, error: str) -> None:
        failures = leases.failures(self.store, channel) + 1
        delay = min(self.policy.max_backoff, 2 ** min(failures, 16)) * random.uniform(0.5, 1.0)
        self._release(channel, after=delay, failures=failures, error=error)
        log.warning("delivery to %s failed (%s); retry %d in %.1f s", channel, error, failures, delay)


def wait_before_pass(policy: DeliveryPolicy, *, since_pass: float, due_in: float | None) -> float:
    """How long the loop waits before its next pass, `since_pass` seconds after the last one began,
    when the soonest paced channel comes due in `due_in` seconds (None: none is waiting)."""
    rest = policy.min_pass_interval - since_pass
    if due_in is not None:
        rest = min(rest, max(due_in, policy.min_due_gap - since_pass))
    return max(0.0, rest)


def _marker(batch_id: str) -> Marker:
    """The batch id travels in the message's metadata, so an interrupted post can be found."""
    return Marker(METADATA_EVENT, {"batch": batch_id})
