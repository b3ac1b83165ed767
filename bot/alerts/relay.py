"""Delivering stored alerts to Slack: the notify stage of the alert pipeline.

Guarantees, and how they are kept:
- Every stored alert is posted: outbox rows stay until Slack accepts them. Slack being down,
  5xx or connection errors back the channel off (capped) and retry forever.
- Posted once, across threads, processes and dynos: a worker takes a *lease* on a channel
  (an atomic conditional UPDATE) before posting to it, so one worker at a time posts to a channel.
  Rows are marked `sending` with a batch id before the post; a batch whose outcome is unknown
  (crash or timeout mid-post) is looked up in the channel's history by that id before it is
  posted again.
- Not flooding: one message per channel per `channel_interval`; what accumulates in between
  goes out as one grouped message. A 429 pauses the channel for Retry-After.
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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from sqlalchemy import select, update

from bot.alerts.receive import ensure_channel, stored_alerts_query, to_stored_alert
from bot.config import Settings
from bot.model import StoredAlert
from bot.render.alerts import ALERTS_PER_MESSAGE, render_alerts
from bot.store import Store, set_state
from bot.store.schema import alerts, channels, outbox, snoozes
from bot.usage.client import parse_retry_after

log = logging.getLogger(__name__)

AUTH_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "missing_scope"}
)
GONE_ERRORS = frozenset({"channel_not_found", "is_archived"})
METADATA_EVENT = "usage_alert"
SLACK_AUTH_STATE = "slack_auth_error"


@dataclass(frozen=True)
class DeliveryPolicy:
    channel_interval: float = 1.0  # Slack: about one message per second per channel
    max_batch: int = ALERTS_PER_MESSAGE  # alerts named in one grouped message
    lease_seconds: float = 20.0  # renewed before each post, which takes at most 10 s (HTTP timeout)
    max_backoff: float = 300.0
    auth_backoff: float = 60.0
    poll_interval: float = 0.25
    parallel_channels: int = 8


class AlertRelay:
    """Works off the outbox. `run_once` is one pass; `run_forever` is the background loop."""

    def __init__(
        self,
        store: Store,
        client: WebClient,
        *,
        lookup_client: WebClient | None = None,
        fallback_channel: str = "",
        policy: DeliveryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        worker_id: str | None = None,
    ) -> None:
        self.store = store
        self.client = client  # posts; see make_slack_clients for why it never retries by itself
        self.lookup = lookup_client or client  # history and joins, safe to retry
        self.fallback_channel = fallback_channel
        self.policy = policy or DeliveryPolicy()
        self.clock = clock
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.wake = threading.Event()
        self._next_ready_at: float | None = None
        self._pool = ThreadPoolExecutor(self.policy.parallel_channels, thread_name_prefix="alert-relay")

    @classmethod
    def from_settings(cls, store: Store, settings: Settings) -> AlertRelay:
        poster, lookup = make_slack_clients(settings.slack_bot_token, settings.slack_api_url)
        return cls(store, poster, lookup_client=lookup, fallback_channel=settings.alert_channel)

    # --- the loop --------------------------------------------------------------------------

    def run_forever(self, stop: threading.Event) -> None:
        """Deliver until `stop` is set. New alerts `wake` the loop; otherwise it sleeps until the
        next paced channel is due, or polls (for alerts stored by other processes)."""
        while not stop.is_set():
            try:
                worked = self.run_once()
            except Exception:  # the loop must survive a database or network hiccup
                log.exception("alert delivery pass failed; retrying")
                worked = 0
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
        """Deliver to every channel that is due; the number of channels worked on."""
        self._release_ended_snoozes()
        now = self.clock()
        waiting = self._channels_with_work(now)
        # When the earliest paced channel may post again, so the loop can wake right then.
        self._next_ready_at = min((ready for _, ready in waiting if ready > now), default=None)
        claimed = [c for c, ready in waiting if ready <= now and self._claim(c)]
        if claimed:
            list(self._pool.map(self._deliver_claimed, claimed))
        return len(claimed)

    # --- claiming ---------------------------------------------------------------------------

    def _channels_with_work(self, now: float) -> list[tuple[str, float]]:
        """Channels with alerts to send that no one holds, and when each may post next."""
        query = (
            select(outbox.c.channel, channels.c.next_post_at)
            .join(channels, channels.c.channel == outbox.c.channel)
            .where(outbox.c.status.in_(("pending", "sending")), channels.c.lease_until < now)
            .group_by(outbox.c.channel, channels.c.next_post_at)
            .order_by(channels.c.next_post_at)
            .limit(200)
        )
        with self.store.engine.connect() as conn:
            return [(row[0], row[1]) for row in conn.execute(query)]

    def _claim(self, channel: str) -> bool:
        """Take the channel's lease; False if another worker holds it or it is not due."""
        now = self.clock()
        with self.store.transaction() as conn:
            result = conn.execute(
                update(channels)
                .where(channels.c.channel == channel, channels.c.lease_until < now, channels.c.next_post_at <= now)
                .values(lease_owner=self.worker_id, lease_until=now + self.policy.lease_seconds)
            )
            return result.rowcount == 1

    def _renew(self, channel: str) -> bool:
        now = self.clock()
        with self.store.transaction() as conn:
            result = conn.execute(
                update(channels)
                .where(
                    channels.c.channel == channel,
                    channels.c.lease_owner == self.worker_id,
                    channels.c.lease_until >= now,
                )
                .values(lease_until=now + self.policy.lease_seconds)
            )
            return result.rowcount == 1

    def _release(self, channel: str, *, next_post_at: float, failures: int = 0, error: str = "") -> None:
        with self.store.transaction() as conn:
            conn.execute(
                update(channels)
                .where(channels.c.channel == channel, channels.c.lease_owner == self.worker_id)
                .values(
                    lease_owner=None, lease_until=0.0, next_post_at=next_post_at, failures=failures, last_error=error
                )
            )

    # --- delivering to one channel -------------------------------------------------------

    def _deliver_claimed(self, channel: str) -> None:
        try:
            self._deliver(channel)
        except Exception:
            log.exception("delivery to %s failed unexpectedly; will retry", channel)
            self._back_off(channel, "unexpected error")

    def _deliver(self, channel: str) -> None:
        self._hold_snoozed(channel)
        batch = self._load_batch(channel)
        if not batch:
            self._release(channel, next_post_at=0.0)
            return
        batch_id = batch[0].batch_id if batch[0].status == "sending" else None
        if batch_id and self._already_posted(channel, batch_id, batch[0].attempted_at or 0.0):
            self._mark_sent(batch_id, message_ts=None)
            self._release(channel, next_post_at=self.clock() + self.policy.channel_interval)
            return
        batch_id = batch_id or self._mark_sending(batch)
        self._post(channel, batch, batch_id, joined=False)

    def _post(self, channel: str, batch: list[StoredAlert], batch_id: str, *, joined: bool) -> None:
        message = render_alerts(batch)
        if not self._renew(channel):
            # Our lease ran out (a slow history lookup, a stalled database): another worker may
            # own this channel now, so posting could double an alert.
            log.warning("lost the lease on %s before posting; leaving it to its new owner", channel)
            return
        try:
            response = self.client.chat_postMessage(
                channel=channel,
                text=message.text,
                blocks=message.blocks,
                metadata={"event_type": METADATA_EVENT, "event_payload": {"batch": batch_id}},
                unfurl_links=False,
            )
        except SlackApiError as exc:
            self._handle_slack_error(channel, batch, batch_id, exc, joined=joined)
            return
        except Exception as exc:  # connection error or timeout: the post may or may not have landed
            log.warning("posting %d alert(s) to %s failed: %s", len(batch), channel, type(exc).__name__)
            self._back_off(channel, type(exc).__name__)
            return
        self._mark_sent(batch_id, message_ts=response.get("ts"))
        self._clear_auth_error()
        self._release(channel, next_post_at=self.clock() + self.policy.channel_interval)
        log.info("posted %d alert(s) to %s", len(batch), channel)

    def _handle_slack_error(
        self, channel: str, batch: list[StoredAlert], batch_id: str, exc: SlackApiError, *, joined: bool
    ) -> None:
        status = exc.response.status_code
        error = str(exc.response.get("error", "")) if isinstance(exc.response.data, dict) else ""
        if status == 429:
            retry_after = _retry_after(exc.response.headers)
            self._reset_to_pending(batch_id)
            self._release(channel, next_post_at=self.clock() + retry_after, error="ratelimited")
            log.info("Slack rate-limited %s; next post in %.0f s", channel, retry_after)
        elif status >= 500:
            self._back_off(channel, f"HTTP {status}")
        elif error == "not_in_channel" and not joined and self._join(channel):
            self._post(channel, batch, batch_id, joined=True)
        elif error in AUTH_ERRORS:
            self._reset_to_pending(batch_id)
            self._record_auth_error(error)
            self._release(channel, next_post_at=self.clock() + self.policy.auth_backoff, error=error)
        elif error in GONE_ERRORS or error == "not_in_channel":
            self._redirect_or_fail(channel, batch_id, error)
        else:
            # invalid_blocks, msg_too_long, ...: retrying the same message would fail the same way.
            self._fail(batch_id, f"Slack refused the message: {error or status}")
            self._release(channel, next_post_at=self.clock() + self.policy.channel_interval, error=error)

    def _join(self, channel: str) -> bool:
        try:
            self.lookup.conversations_join(channel=channel)
            return True
        except SlackApiError as exc:
            log.warning("could not join %s: %s", channel, exc.response.get("error"))
            return False
        except Exception:
            return False

    def _redirect_or_fail(self, channel: str, batch_id: str, error: str) -> None:
        reason = f"{error} in {channel}"
        fallback = self.fallback_channel
        with self.store.transaction() as conn:
            if fallback and fallback != channel:
                conn.execute(
                    update(outbox)
                    .where(outbox.c.batch_id == batch_id)
                    .values(channel=fallback, status="pending", batch_id=None, last_error=reason + "; sent to fallback")
                )
                ensure_channel(conn, fallback)
                log.warning("%s: alerts moved to ALERT_CHANNEL %s", reason, fallback)
            else:
                conn.execute(
                    update(outbox)
                    .where(outbox.c.batch_id == batch_id)
                    .values(status="failed", last_error=reason + ("" if fallback else "; ALERT_CHANNEL is not set"))
                )
                log.error("%s: alerts kept as undeliverable (see /usage alerts failed)", reason)
        self._release(channel, next_post_at=self.clock() + self.policy.channel_interval, error=error)
        self.wake.set()

    def _back_off(self, channel: str, error: str) -> None:
        with self.store.engine.connect() as conn:
            failures = (
                conn.execute(select(channels.c.failures).where(channels.c.channel == channel)).scalar() or 0
            ) + 1
        delay = min(self.policy.max_backoff, 2 ** min(failures, 16)) * random.uniform(0.5, 1.0)
        self._release(channel, next_post_at=self.clock() + delay, failures=failures, error=error)
        log.warning("delivery to %s failed (%s); retry %d in %.1f s", channel, error, failures, delay)

    def _already_posted(self, channel: str, batch_id: str, since: float) -> bool:
        """Did an earlier, interrupted attempt reach Slack? Look for its batch id in the channel."""
        try:
            history = self.lookup.conversations_history(
                channel=channel, oldest=f"{since - 60:.6f}", include_all_metadata=True, limit=200
            )
        except Exception as exc:
            log.warning("could not check %s for an interrupted post (%s); posting again", channel, exc)
            return False
        for message in history.get("messages") or []:
            metadata = message.get("metadata") or {}
            if (
                metadata.get("event_type") == METADATA_EVENT
                and (metadata.get("event_payload") or {}).get("batch") == batch_id
            ):
                return True
        return False

    # --- snoozes -------------------------------------------------------------------------------

    def _hold_snoozed(self, channel: str) -> None:
        """Park the pending alerts of triggers snoozed in this channel (they stay stored)."""
        snoozed = select(snoozes.c.trigger_sid).where(snoozes.c.channel == channel, snoozes.c.until > self.clock())
        with self.store.transaction() as conn:
            conn.execute(
                update(outbox)
                .where(
                    outbox.c.channel == channel,
                    outbox.c.status == "pending",
                    outbox.c.alert_id.in_(select(alerts.c.id).where(alerts.c.trigger_sid.in_(snoozed))),
                )
                .values(status="held")
            )

    def _release_ended_snoozes(self) -> None:
        """When a snooze ends, what it held back goes out as one alert: the latest firing,
        counting the others (which are kept, and marked as summarised)."""
        now = self.clock()
        active = (
            select(snoozes.c.trigger_sid)
            .where(snoozes.c.channel == outbox.c.channel, snoozes.c.until > now)
            .correlate(outbox)
        )
        held = (
            select(outbox.c.channel, alerts.c.trigger_sid)
            .join(alerts, alerts.c.id == outbox.c.alert_id)
            .where(outbox.c.status == "held", alerts.c.trigger_sid.not_in(active))
            .group_by(outbox.c.channel, alerts.c.trigger_sid)
        )
        with self.store.engine.connect() as conn:
            groups = conn.execute(held).all()
        for channel, trigger_sid in groups:
            self._summarise_held(channel, trigger_sid, now)
        if groups:
            with self.store.transaction() as conn:
                conn.execute(snoozes.delete().where(snoozes.c.until <= now))
            self.wake.set()

    def _summarise_held(self, channel: str, trigger_sid: str, now: float) -> None:
        of_trigger = select(alerts.c.id).where(alerts.c.trigger_sid == trigger_sid)
        group = (outbox.c.channel == channel, outbox.c.status == "held", outbox.c.alert_id.in_(of_trigger))
        with self.store.transaction() as conn:
            ids = [r[0] for r in conn.execute(select(outbox.c.id).where(*group).order_by(outbox.c.id))]
            if not ids:
                return
            # Conditional on still being held: if another worker got here first, this does nothing.
            latest = conn.execute(
                update(outbox)
                .where(outbox.c.id == ids[-1], outbox.c.status == "held")
                .values(status="pending", also_fired=len(ids) - 1)
            )
            if latest.rowcount != 1:
                return
            conn.execute(
                update(outbox)
                .where(outbox.c.id.in_(ids[:-1]), outbox.c.status == "held")
                .values(status="sent", sent_at=now, last_error="summarised in the alert sent when the snooze ended")
            )

    # --- outbox state ------------------------------------------------------------------------

    def _load_batch(self, channel: str) -> list[StoredAlert]:
        """An interrupted batch first (to settle it), else the oldest pending alerts."""
        base = stored_alerts_query().where(outbox.c.channel == channel)
        with self.store.engine.connect() as conn:
            sending = conn.execute(
                select(outbox.c.batch_id).where(outbox.c.channel == channel, outbox.c.status == "sending").limit(1)
            ).scalar()
            if sending:
                rows = conn.execute(base.where(outbox.c.batch_id == sending)).all()
            else:
                rows = conn.execute(base.where(outbox.c.status == "pending").limit(self.policy.max_batch)).all()
        return [to_stored_alert(r) for r in rows]

    def _mark_sending(self, batch: list[StoredAlert]) -> str:
        batch_id = str(uuid.uuid4())
        with self.store.transaction() as conn:
            conn.execute(
                update(outbox)
                .where(outbox.c.id.in_([a.outbox_id for a in batch]), outbox.c.status == "pending")
                .values(status="sending", batch_id=batch_id, attempted_at=self.clock(), attempts=outbox.c.attempts + 1)
            )
        return batch_id

    def _mark_sent(self, batch_id: str, *, message_ts: str | None) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                update(outbox)
                .where(outbox.c.batch_id == batch_id, outbox.c.status == "sending")
                .values(status="sent", sent_at=self.clock(), message_ts=message_ts)
            )

    def _reset_to_pending(self, batch_id: str) -> None:
        """The post certainly did not land (429, auth error): forget the batch."""
        with self.store.transaction() as conn:
            conn.execute(
                update(outbox)
                .where(outbox.c.batch_id == batch_id, outbox.c.status == "sending")
                .values(status="pending", batch_id=None)
            )

    def _fail(self, batch_id: str, reason: str) -> None:
        with self.store.transaction() as conn:
            conn.execute(update(outbox).where(outbox.c.batch_id == batch_id).values(status="failed", last_error=reason))
        log.error("alerts kept as undeliverable: %s", reason)

    def _record_auth_error(self, error: str) -> None:
        log.error(
            "SLACK TOKEN REJECTED (%s): alerts are kept and will be posted once SLACK_BOT_TOKEN works again", error
        )
        with self.store.transaction() as conn:
            set_state(conn, SLACK_AUTH_STATE, error)

    def _clear_auth_error(self) -> None:
        if self.store.get_state(SLACK_AUTH_STATE):
            with self.store.transaction() as conn:
                set_state(conn, SLACK_AUTH_STATE, "")


def make_slack_clients(token: str, base_url: str) -> tuple[WebClient, WebClient]:
    """(poster, lookup): a client for chat.postMessage and one for reads and joins.

    The poster gets no automatic retries: a post retried after a dropped connection may land
    twice, and the relay settles such posts itself (history lookup by batch id). Reads and joins
    are idempotent, so slack_sdk's connection and rate-limit retry handlers fit them.
    """
    poster = WebClient(token=token, base_url=base_url, timeout=10, retry_handlers=[])
    lookup = WebClient(
        token=token,
        base_url=base_url,
        timeout=5,
        retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=2), RateLimitErrorRetryHandler(max_retry_count=2)],
    )
    return poster, lookup


def _retry_after(headers: Any) -> float:
    """Slack's Retry-After (header names may come in any case), at least one second."""
    value = None
    for name, v in dict(headers or {}).items():
        if name.lower() == "retry-after":
            value = v[0] if isinstance(v, list) else v
    return max(1.0, parse_retry_after(value) or 1.0)
