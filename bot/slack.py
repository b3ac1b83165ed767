"""The one way the bot posts to Slack: alerts (bot/alerts/relay.py), digests and budget warnings
(bot/reports/scheduler.py) all go through `SlackPoster`.

It owns what every poster needs and must not get wrong twice:
- one table that sorts Slack's answers into outcomes (`PostOutcome`), so callers decide only
  what to do with their own rows;
- joining a public channel the bot is not in yet (`channels:join`) and posting again;
- the "already posted?" check: each message carries a marker in its metadata, and after a crash
  the channel's history is searched for it before anything is posted again;
- the Slack token's health: a rejected token is recorded in the database wherever it happens, so
  `/healthz` shows it, and cleared by the next post that succeeds;
- Slack's rate limit: a 429 does not say whether the channel's or the workspace's limit was hit,
  so it pauses *all* posting for its Retry-After (so does a 429 to a history lookup or a join).
  The pause is kept in the database (`state`), so every thread, process and dyno honours it, and
  is checked before every post.

Slack's error codes: https://api.slack.com/methods/chat.postMessage#errors
Slack's rate limits (HTTP 429 with Retry-After in seconds): https://api.slack.com/docs/rate-limits
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import ConnectionErrorRetryHandler
from sqlalchemy import Connection, Float, cast, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.clock import Clock, system_clock
from bot.http_dates import retry_after_header
from bot.model import Message
from bot.store import Store, set_state
from bot.store.schema import state

log = logging.getLogger(__name__)

AUTH_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "missing_scope"}
)
GONE_ERRORS = frozenset({"channel_not_found", "is_archived", "not_in_channel"})
SLACK_AUTH_STATE = "slack_auth_error"  # state row: the error of the last rejected post, "" when fine
SLACK_PAUSE_STATE = "slack_posts_paused_until"  # state row: no post before this time (a 429's Retry-After)
HISTORY_LIMIT = 200  # messages searched for a marker; a post is looked for within a minute of its attempt


class PostOutcome(enum.Enum):
    POSTED = "posted"
    RATE_LIMITED = "rate_limited"  # 429: certainly not posted; wait `retry_after`
    AUTH_ERROR = "auth_error"  # the token was rejected: certainly not posted
    GONE = "gone"  # archived, unknown, or a channel the bot cannot join
    REFUSED = "refused"  # Slack refused the message itself: the same post would fail again
    UNCERTAIN = "uncertain"  # 5xx, timeout, connection error: it may or may not have landed
    ABANDONED = "abandoned"  # the caller's `may_post` said no: nothing was sent


@dataclass(frozen=True)
class PostResult:
    outcome: PostOutcome
    ts: str | None = None
    error: str = ""  # Slack's error code, the HTTP status, or the exception's name
    retry_after: float = 0.0


@dataclass(frozen=True)
class Marker:
    """What identifies one of our messages in a channel's history (Slack message metadata)."""

    event_type: str
    payload: Mapping[str, Any]

    def to_metadata(self) -> dict[str, Any]:
        return {"event_type": self.event_type, "event_payload": dict(self.payload)}

    def matches(self, metadata: Mapping[str, Any] | None) -> bool:
        metadata = metadata or {}
        found = metadata.get("event_payload") or {}
        return metadata.get("event_type") == self.event_type and all(
            str(found.get(key)) == str(value) for key, value in self.payload.items()
        )


class SlackPoster:
    """Posts messages and settles interrupted posts. Thread-safe (slack_sdk clients are)."""

    def __init__(
        self, store: Store, client: WebClient, lookup: WebClient | None = None, *, clock: Clock = system_clock
    ) -> None:
        self.store = store
        self.clock = clock
        self.client = client  # chat.postMessage; see make_slack_clients for why it never retries
        self.lookup = lookup or client  # history and joins, which are safe to retry
        self._paused_until = 0.0  # the latest pause this process set (the database has everyone's)

    @classmethod
    def from_token(cls, store: Store, token: str, base_url: str, *, clock: Clock = system_clock) -> SlackPoster:
        return cls(store, *make_slack_clients(token, base_url), clock=clock)

    def post(
        self, channel: str, message: Message, marker: Marker, *, may_post: Callable[[], bool] | None = None
    ) -> PostResult:
        """Post `message` to `channel`, joining it first if the bot is not in it yet.

        `may_post` is asked right before each attempt (a relay renews its channel lease there);
        when it says no, nothing is sent.
        """
        joined = False
        while True:
            if may_post is not None and not may_post():
                return PostResult(PostOutcome.ABANDONED)
            # Last, right before the post, one read: the pause, and whether a rejected token is on
            # record (for this post to clear if it succeeds).
            states = self.store.get_states(SLACK_PAUSE_STATE, SLACK_AUTH_STATE)
            if (wait := self._pause_left(states.get(SLACK_PAUSE_STATE))) > 0:
                return PostResult(PostOutcome.RATE_LIMITED, error="ratelimited", retry_after=wait)
            result = self._post_once(channel, message, marker)
            if result.error == "not_in_channel" and not joined:
                if self.join(channel):
                    joined = True
                    continue
                if (wait := self.paused_for()) > 0:  # the join met a 429: the channel is not gone
                    return PostResult(PostOutcome.RATE_LIMITED, error="ratelimited", retry_after=wait)
            if result.outcome is PostOutcome.RATE_LIMITED:
                self._pause(result.retry_after)
            self._note_token(result, on_record=states.get(SLACK_AUTH_STATE) or "")
            return result

    def paused_for(self) -> float:
        """Seconds until posting may resume after a 429 (anywhere in the workspace); 0 when it may now."""
        return self._pause_left(self.store.get_state(SLACK_PAUSE_STATE))

    def _pause_left(self, stored: str | None) -> float:
        until = max(self._paused_until, float(stored) if stored else 0.0)
        return max(0.0, until - self.clock())

    def _pause_if_rate_limited(self, exc: Exception) -> None:
        # A 429 from any method pauses posting too: Slack asked for no request before Retry-After.
        if isinstance(exc, SlackApiError) and exc.response.status_code == 429:
            self._pause(retry_after_header(exc.response.headers))

    def _pause(self, retry_after: float) -> None:
        until = self.clock() + retry_after
        # This process's other threads see the pause at once, before the database write lands.
        self._paused_until = max(self._paused_until, until)
        log.warning("Slack answered 429: no posting anywhere for %.0f s", retry_after)
        self.store.write(lambda conn: pause_posting(conn, until, now=self.clock()))

    def _post_once(self, channel: str, message: Message, marker: Marker) -> PostResult:
        try:
            response = self.client.chat_postMessage(
                channel=channel,
                text=message.text,
                blocks=message.blocks,
                metadata=marker.to_metadata(),
                unfurl_links=False,
            )
        except SlackApiError as exc:
            return classify_error(exc)
        except Exception as exc:  # timeout or connection error: the post may or may not have landed
            return PostResult(PostOutcome.UNCERTAIN, error=type(exc).__name__)
        return PostResult(PostOutcome.POSTED, ts=response.get("ts"))

    def join(self, channel: str) -> bool:
        """Join a public channel (channels:join); False when the bot cannot."""
        try:
            self.lookup.conversations_join(channel=channel)
            return True
        except Exception as exc:
            self._pause_if_rate_limited(exc)
            log.info("could not join %s: %s", channel, _error_code(exc))
            return False

    def already_posted(self, channel: str, marker: Marker, since: float) -> bool:
        """Did an interrupted attempt reach Slack? Look for its marker in the channel's history.

        A lookup that fails answers False: posting again (at-least-once) beats losing a message.
        """
        try:
            history = self.lookup.conversations_history(
                channel=channel, oldest=f"{since - 60:.6f}", include_all_metadata=True, limit=HISTORY_LIMIT
            )
        except Exception as exc:
            self._pause_if_rate_limited(exc)
            log.warning("could not check %s for an interrupted post (%s); posting again", channel, _error_code(exc))
            return False
        return any(marker.matches(m.get("metadata")) for m in history.get("messages") or [])

    def _note_token(self, result: PostResult, *, on_record: str) -> None:
        """Keep the token's health in the database, for /healthz and every process to see;
        `on_record`: the rejection recorded when the post began ("" when none)."""
        if result.outcome is PostOutcome.AUTH_ERROR:
            log.error("SLACK TOKEN REJECTED (%s): messages are kept until SLACK_BOT_TOKEN works again", result.error)
            self.store.write(lambda conn: set_state(conn, SLACK_AUTH_STATE, result.error, now=self.clock()))
        elif result.outcome is PostOutcome.POSTED and on_record:
            self.store.write(lambda conn: set_state(conn, SLACK_AUTH_STATE, "", now=self.clock()))


def pause_posting(conn: Connection, until: float, *, now: float) -> None:
    """Pause all posting until `until`, or later if a pause already runs longer: one atomic
    statement each, so concurrent 429s leave the latest end, on both databases."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(
        dialect.insert(state).values(key=SLACK_PAUSE_STATE, value="0", updated_at=now).on_conflict_do_nothing()
    )
    conn.execute(
        update(state)
        .where(state.c.key == SLACK_PAUSE_STATE, cast(state.c.value, Float) < until)
        .values(value=f"{until:.6f}", updated_at=now)
    )


def classify_error(exc: SlackApiError) -> PostResult:
    """Slack's answer to a failed post, as an outcome."""
    status = exc.response.status_code
    error = str(exc.response.get("error", "")) if isinstance(exc.response.data, dict) else ""
    if status == 429:
        return PostResult(
            PostOutcome.RATE_LIMITED, error="ratelimited", retry_after=retry_after_header(exc.response.headers)
        )
    if status >= 500:
        return PostResult(PostOutcome.UNCERTAIN, error=f"HTTP {status}")
    if error in AUTH_ERRORS:
        return PostResult(PostOutcome.AUTH_ERROR, error=error)
    if error in GONE_ERRORS:
        return PostResult(PostOutcome.GONE, error=error)
    # invalid_blocks, msg_too_long, ...: retrying the same message would fail the same way.
    return PostResult(PostOutcome.REFUSED, error=error or f"HTTP {status}")


def make_slack_clients(token: str, base_url: str) -> tuple[WebClient, WebClient]:
    """(poster, lookup): a client for chat.postMessage and one for reads and joins.

    The poster gets no automatic retries: a post retried after a dropped connection may land
    twice, and the callers settle such posts themselves (`already_posted`). Reads and joins are
    idempotent, so slack_sdk's connection retry handler fits them; a 429 is not slept on inside
    the call (the caller may hold a channel lease meanwhile) but pauses all posting instead.
    """
    poster = WebClient(token=token, base_url=base_url, timeout=10, retry_handlers=[])
    lookup = WebClient(
        token=token, base_url=base_url, timeout=5, retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=2)]
    )
    return poster, lookup


def _error_code(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error", "")) or f"HTTP {exc.response.status_code}"
    return type(exc).__name__
