"""`POST /slack/events`: verify Slack's signature, parse the body, hand it to Bolt (a plain WSGI
endpoint in front of Flask: handlers/wsgi.py).

We do both jobs ourselves, before Bolt sees the request, because Bolt's own versions have traps:
- a malformed timestamp or a non-ASCII signature makes Bolt's verifier raise, i.e. a 500;
- Bolt's body parser returns {} for any form body that merely contains the word "payload",
  so `/usage today payload` would never reach our parser.
Bolt's own RequestVerification is therefore switched off (see handlers/slack_app.py): every
request that reaches `App.dispatch` has already passed `verify_slack_signature`.

A signed body whose shape is not one Slack sends (`actions: []`, an action or a user that is not an
object, a view without a type) is a 400 here too: Bolt would answer 500 or pass it to a listener.
Every request handed to Bolt carries the key of its body (`REQUEST_KEY` in the Bolt context), for
the listeners to recognise a retry or a double submit they have handled already.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from slack_bolt import App, BoltContext, BoltRequest
from slack_bolt.request.internals import build_context

from bot.commands.handled import request_key
from handlers.wsgi import WSGIApp, headers_of, read_body, respond

log = logging.getLogger(__name__)

MAX_CLOCK_SKEW = 300  # Slack's replay window: 5 minutes
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
SLACK_PATH = "/slack/events"
REQUEST_KEY = "usage_bot_request_key"  # in the Bolt context: handled.request_key(raw body)
# Fields that are objects (or null) wherever Slack sends them in an interaction payload
# (https://api.slack.com/reference/interaction-payloads).
_OBJECT_FIELDS = ("user", "channel", "team", "enterprise", "message", "container", "state")
_STRING_FIELDS = ("type", "response_url", "trigger_id")


def verify_slack_signature(
    secret: str, body: bytes, headers: Mapping[str, str], now: Callable[[], float] = time.time
) -> bool:
    """Slack's v0 signing: HMAC-SHA256 over `v0:{timestamp}:{raw body}`, within 5 minutes."""
    timestamp = headers.get("X-Slack-Request-Timestamp", "")
    signature = headers.get("X-Slack-Signature", "")
    if not _TIMESTAMP.fullmatch(timestamp) or not _SIGNATURE.fullmatch(signature):
        return False
    if abs(now() - int(timestamp)) > MAX_CLOCK_SKEW:
        return False
    expected = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return hmac.compare_digest("v0=" + expected.hexdigest(), signature)


def parse_slack_body(body: bytes, content_type: str) -> dict[str, Any] | None:
    """The request as a dict, or None if it is not something Slack sends.

    Form bodies are slash commands (fields at the top level) or interactivity (`payload=<json>`);
    JSON bodies are Events API callbacks.
    """
    try:
        text = body.decode("utf-8")
        if content_type.startswith("application/json"):
            parsed = json.loads(text)
            return parsed if isinstance(parsed, dict) else None
        form = dict(parse_qsl(text, keep_blank_values=True))
        if "payload" in form:
            payload = json.loads(form["payload"])
            return payload if isinstance(payload, dict) else None
        return form
    except (UnicodeDecodeError, ValueError):
        return None


def malformed(body: dict[str, Any]) -> str | None:
    """What makes a parsed body something Slack does not send, or None (Slack's interaction
    payloads: https://api.slack.com/reference/interaction-payloads). Slash commands are flat
    strings and pass; only what our listeners and Bolt's routing read is checked."""
    for name in _STRING_FIELDS:
        if name in body and not isinstance(body[name], str):
            return f"{name} is not a string"
    for name in _OBJECT_FIELDS:
        if body.get(name) is not None and not isinstance(body[name], dict):
            return f"{name} is not an object"
        if not isinstance((body.get(name) or {}).get("id", ""), str):
            return f"{name}.id is not a string"
    kind = body.get("type")
    if "actions" in body or kind == "block_actions":
        actions = body.get("actions")
        if not isinstance(actions, list) or not actions:
            return "actions is not a non-empty list"
        for action in actions:
            if not isinstance(action, dict) or not isinstance(action.get("action_id"), str):
                return "an action is not an object with an action_id"
            if not isinstance(action.get("value", ""), str):
                return "an action's value is not a string"
    if "view" in body or kind in ("view_submission", "view_closed"):
        view = body.get("view")
        if not isinstance(view, dict) or not isinstance(view.get("type"), str):
            return "view is not an object with a type"
    blocks = (body.get("message") or {}).get("blocks", [])
    if not isinstance(blocks, list) or not all(isinstance(block, dict) for block in blocks):
        return "message.blocks is not a list of objects"
    return None


class SlackEndpoint:
    """WSGI middleware: answers `SLACK_PATH` (commands, buttons, events) and passes every other
    request to `app` (handlers/wsgi.py says why this is not a Flask view)."""

    def __init__(self, app: WSGIApp, bolt: App, signing_secret: str, *, max_body: int) -> None:
        self.app = app
        self.bolt = bolt
        self.signing_secret = signing_secret
        self.max_body = max_body

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != SLACK_PATH:
            return self.app(environ, start_response)
        if environ.get("REQUEST_METHOD") != "POST":
            return _json(start_response, 405, {"error": "use POST"})
        raw = read_body(environ, self.max_body)
        if raw is None:
            return _json(start_response, 413, {"error": "request too large"})
        headers = headers_of(environ)
        if not verify_slack_signature(self.signing_secret, raw, headers):
            return _json(start_response, 401, {"error": "invalid request"})
        body = parse_slack_body(raw, environ.get("CONTENT_TYPE") or "")
        problem = "not a Slack body" if body is None else malformed(body)
        if body is None or problem is not None:
            log.info("refused a signed but malformed Slack request: %s", problem)
            return _json(start_response, 400, {"error": "malformed request"})
        answer = self.bolt.dispatch(_bolt_request(raw, body, environ.get("QUERY_STRING", ""), headers))
        data = answer.body.encode() if isinstance(answer.body, str) else answer.body
        return respond(start_response, answer.status, data, [(k, v) for k, vs in answer.headers.items() for v in vs])


def _bolt_request(raw: bytes, body: dict[str, Any], query: str, headers: dict[str, str]) -> BoltRequest:
    # Bolt wants raw text in HTTP mode and would parse it again, its own (flawed) way: give it
    # nothing to parse, then hand it the raw text and the body we parsed (and the context
    # Bolt derives from it).
    bolt_request = BoltRequest(body="", query=query, headers=headers)
    bolt_request.raw_body = raw.decode("utf-8")
    bolt_request.body = body

    bolt_request.context = build_context(BoltContext({}), body)
    bolt_request.context[REQUEST_KEY] = request_key(raw)
    return bolt_request


def _json(start_response: Callable[..., Any], status: int, body: dict[str, str]) -> list[bytes]:
    return respond(start_response, status, json.dumps(body).encode(), [("Content-Type", "application/json")])
