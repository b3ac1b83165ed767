"""A fake Slack: the Web API methods usage-bot calls, plus `response_url` collectors.

A real HTTP server on 127.0.0.1 that the real slack_sdk / Bolt talk to. It records every call
(when, and the HTTP status it got), and can be told to misbehave the way Slack does: be down,
rate-limit a channel or every call for a while (HTTP 429 with a Retry-After header in seconds,
https://api.slack.com/docs/rate-limits), or answer with channel and auth errors. Every 429 it
answers is recorded as a window (`rate_limits`), so a test can check that nothing was posted
inside one.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlparse

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.views import View

VALID_TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-1-test-app-token"  # an app-level token: apps.connections.open (Socket Mode)


@dataclass
class Call:
    method: str  # Web API method ("chat.postMessage") or "response:<id>"
    body: dict[str, Any]
    token: str
    at: float
    status: int = 0  # the HTTP status answered (0 while being answered)


@dataclass(frozen=True)
class RateLimit:
    """A 429 answered at `at`: Slack asked for no request before `at + retry_after`."""

    at: float
    retry_after: int
    method: str

    @property
    def until(self) -> float:
        return self.at + self.retry_after


@dataclass(frozen=True)
class Phase:
    """From `start` until `end` (time.time()), every Web API call is answered with `status`."""

    status: int
    start: float
    end: float


@dataclass
class Posted:
    channel: str
    text: str
    blocks: list[dict[str, Any]]
    metadata: dict[str, Any] | None
    ts: str
    at: float


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class FakeSlack:
    token: str = VALID_TOKEN
    # Per-channel pacing like Slack's chat.postMessage: `channel_rate` messages/s with a small burst.
    channel_rate: float | None = None
    channel_burst: int = 1
    retry_after: int = 1
    calls: list[Call] = field(default_factory=list)
    posted: list[Posted] = field(default_factory=list)
    responses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.down_status: int | None = None  # answer every Web API call with this status
        self.fail_next_posts: list[tuple[int, dict[str, Any], dict[str, str]]] = []
        self.channel_errors: dict[str, str] = {}  # channel -> error code for chat.postMessage
        self.members: set[str] | None = None  # None: the bot is in every channel
        self.public_channels: set[str] = set()
        self.revoked = False
        self.delay = 0.0
        # Seconds to wait *after* accepting a post before answering: the message is in the
        # channel, but the poster has not heard so yet (a crash in that window is the hard case).
        self.post_delay = 0.0
        self.status_counts: dict[int, int] = {}
        self.rate_limits: list[RateLimit] = []  # every 429 answered, for any reason
        self.phases: list[Phase] = []
        self.phase_retry_after: tuple[int, int] = (1, 1)  # Retry-After of a 429 phase: random in this range
        self._buckets: dict[str, _Bucket] = {}
        self._ts = 0.0
        self._server: ThreadingHTTPServer | None = None
        self.method_errors: dict[str, str] = {}  # Web API method -> error code to answer with
        self.next_errors: dict[str, list[str]] = {}  # Web API method -> error codes for its next calls
        self.socket_url = ""  # what apps.connections.open hands out (tests/fakes/socket_mode.py)
        self._view_ids = 0

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> FakeSlack:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                fake._handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    def response_url(self, key: str) -> str:
        return f"{self.url}/response/{key}"

    def misbehave(self, *phases: tuple[int, float], retry_after: tuple[int, int] = (1, 1)) -> float:
        """Starting now, answer every Web API call with each (status, seconds) in turn, e.g.
        `(503, 15), (429, 5)`: Slack down, then rate-limiting everything; then normal again. A 429
        phase's Retry-After is a whole number of seconds drawn from `retry_after`. Returns when
        the last phase ends (time.time())."""
        start = time.time()
        with self.lock:
            self.phase_retry_after = retry_after
            for status, seconds in phases:
                self.phases.append(Phase(status, start, start + seconds))
                start += seconds
        return start

    # --- what tests read -------------------------------------------------------------------

    def posts_inside_rate_limits(self) -> list[tuple[Posted, RateLimit]]:
        """Messages accepted while a Retry-After Slack had answered was still running."""
        with self.lock:
            return [(p, r) for p in self.posted for r in self.rate_limits if r.at <= p.at < r.until]

    def calls_inside_rate_limits(self, method: str = "chat.postMessage") -> list[tuple[Call, RateLimit]]:
        """Calls of `method` (whatever their answer) that reached Slack after a 429 had been answered
        and before its Retry-After ended. Calls that were on their way when the 429 was answered
        count too: this is the strictest reading."""
        with self.lock:
            return [(c, r) for c in self.calls if c.method == method for r in self.rate_limits if r.at < c.at < r.until]

    def calls_to(self, method: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.method == method]

    def posted_to(self, channel: str) -> list[Posted]:
        with self.lock:
            return [p for p in self.posted if p.channel == channel]

    def wait_for_response(self, key: str, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                got = list(self.responses.get(key, []))
            if len(got) >= count:
                return got
            time.sleep(0.01)
        raise AssertionError(f"expected {count} response(s) at {key}, got {len(got)}")

    # --- request handling ------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length).decode("utf-8") if length else ""
        if "json" in (h.headers.get("Content-Type") or ""):
            body = json.loads(raw or "{}")
        else:
            body = dict(parse_qsl(raw, keep_blank_values=True))
        path = urlparse(h.path).path
        if self.delay:
            time.sleep(self.delay)
        if path.startswith("/response/"):
            key = path.removeprefix("/response/")
            with self.lock:
                self.calls.append(Call(f"response:{key}", body, "", time.time()))
                self.responses.setdefault(key, []).append(body)
            self._send(h, 200, "ok", content_type="text/plain")
            return
        method = path.removeprefix("/api/")
        token = (h.headers.get("Authorization") or "").removeprefix("Bearer ").strip() or body.get("token", "")
        call = Call(method, body, token, time.time())
        with self.lock:
            self.calls.append(call)
        status, payload, headers = self._answer(method, token, body)
        with self.lock:
            call.status = status
            self.status_counts[status] = self.status_counts.get(status, 0) + 1
            if status == 429:
                self.rate_limits.append(RateLimit(time.time(), int(headers.get("Retry-After", "1")), method))
        self._send(h, status, json.dumps(payload), headers=headers)

    def _answer(self, method: str, token: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        now = time.time()
        with self.lock:
            status = next((p.status for p in self.phases if p.start <= now < p.end), None)
            retry_after = random.randint(*self.phase_retry_after)
        if status == 429:
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}
        if status is not None:
            return status, {"ok": False, "error": "service_unavailable"}, {}
        if self.down_status is not None:
            return self.down_status, {"ok": False, "error": "service_unavailable"}, {}
        if self.revoked:
            return 200, {"ok": False, "error": "token_revoked"}, {}
        if method == "apps.connections.open":
            # Needs the app-level token, not the bot token (https://api.slack.com/methods/apps.connections.open).
            if token != APP_TOKEN or not self.socket_url:
                return 200, {"ok": False, "error": "invalid_auth"}, {}
            return 200, {"ok": True, "url": self.socket_url}, {}
        if token != self.token:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        if method == "auth.test":
            return 200, {"ok": True, "team_id": "T0001", "user_id": "UBOT", "bot_id": "BBOT"}, {}
        if method == "chat.postMessage":
            answer = self._post_message(body)
            if self.post_delay and answer[0] == 200 and answer[1].get("ok"):
                time.sleep(self.post_delay)
            return answer
        if method in self.method_errors:
            return 200, {"ok": False, "error": self.method_errors[method]}, {}
        with self.lock:
            queued = self.next_errors.get(method)
            error = queued.pop(0) if queued else None
        if error is not None:
            return 200, {"ok": False, "error": error}, {}
        if method in ("views.publish", "views.open", "views.update", "views.push"):
            return self._view(method, body)
        if method == "chat.postEphemeral":
            return 200, {"ok": True, "message_ts": f"{time.time():.6f}"}, {}
        if method == "conversations.join":
            channel = body.get("channel", "")
            if channel not in self.public_channels:
                return 200, {"ok": False, "error": "method_not_supported_for_channel_type"}, {}
            with self.lock:
                if self.members is not None:
                    self.members.add(channel)
            return 200, {"ok": True, "channel": {"id": channel}}, {}
        if method == "conversations.history":
            channel = body.get("channel", "")
            oldest = float(body.get("oldest") or 0)
            with self.lock:
                found = [p for p in self.posted if p.channel == channel and float(p.ts) >= oldest]
            messages = [{"ts": p.ts, "text": p.text, **({"metadata": p.metadata} if p.metadata else {})} for p in found]
            return 200, {"ok": True, "messages": list(reversed(messages)), "has_more": False}, {}
        return 200, {"ok": False, "error": "unknown_method"}, {}

    def _post_message(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        channel = body.get("channel", "")
        with self.lock:
            if self.fail_next_posts:
                status, payload, headers = self.fail_next_posts.pop(0)
                return status, payload, headers
            if channel in self.channel_errors:
                return 200, {"ok": False, "error": self.channel_errors[channel]}, {}
            if self.members is not None and channel not in self.members:
                return 200, {"ok": False, "error": "not_in_channel"}, {}
            if self.channel_rate and not self._take_token(channel):
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(self.retry_after)}
            # Like Slack's: the current epoch time, unique per message.
            self._ts = max(time.time(), self._ts + 0.000001)
            ts = f"{self._ts:.6f}"
            blocks = body.get("blocks") or []
            if isinstance(blocks, str):
                blocks = json.loads(blocks)
            metadata = body.get("metadata")
            if isinstance(metadata, str):
                metadata = json.loads(metadata)
            self.posted.append(Posted(channel, body.get("text", ""), blocks, metadata, ts, time.time()))
        return 200, {"ok": True, "channel": channel, "ts": ts}, {}

    def _view(self, method: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        """views.open/publish/update as Slack answers them (https://api.slack.com/methods/views.open):
        a view that does not validate is `invalid_arguments`; the answer carries the view with an id."""
        view = body.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        if not isinstance(view, dict) or not _valid_view(view):
            return 200, {"ok": False, "error": "invalid_arguments"}, {}
        if method in ("views.open", "views.push") and not body.get("trigger_id"):
            return 200, {"ok": False, "error": "invalid_trigger_id"}, {}
        if method == "views.publish" and not body.get("user_id"):
            return 200, {"ok": False, "error": "invalid_arguments"}, {}
        if method == "views.update" and not (body.get("view_id") or body.get("external_id")):
            return 200, {"ok": False, "error": "not_found"}, {}
        with self.lock:
            self._view_ids += 1
            view_id = body.get("view_id") or f"V{self._view_ids:08d}"
        return 200, {"ok": True, "view": {**view, "id": view_id, "team_id": "T0001"}}, {}

    def views(self, method: str) -> list[dict[str, Any]]:
        """The views sent with `method`, parsed, in order."""
        found = []
        for call in self.calls_to(method):
            view = call.body.get("view")
            found.append(json.loads(view) if isinstance(view, str) else view)
        return found

    def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.calls_to(method)
            if len(got) >= count:
                return got
            time.sleep(0.01)
        raise AssertionError(f"expected {count} call(s) to {method}, got {len(self.calls_to(method))}")

    def _take_token(self, channel: str) -> bool:
        assert self.channel_rate
        now = time.monotonic()
        bucket = self._buckets.setdefault(channel, _Bucket(float(self.channel_burst), now))
        bucket.tokens = min(float(self.channel_burst), bucket.tokens + (now - bucket.updated) * self.channel_rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return True
        return False

    @staticmethod
    def _send(
        h: BaseHTTPRequestHandler,
        status: int,
        text: str,
        *,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = text.encode()
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default listen backlog of 5 resets connections when many posting threads (two app
    # instances, a storm) connect at once; Slack itself never refuses a connection for that.
    request_queue_size = 128


def _valid_view(view: dict[str, Any]) -> bool:
    """What Slack checks before accepting a view: the Block Kit models and the view limits."""
    try:
        View(**view).to_dict()  # validates the view and, through each block's to_dict, every block
    except (SlackObjectFormationError, TypeError, KeyError, ValueError):
        return False
    return True
