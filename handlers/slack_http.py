"""`POST /slack/events`: verify Slack's signature, parse the body, hand it to Bolt.

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
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from flask import Blueprint, Response, request
from slack_bolt import App, BoltContext, BoltRequest
from slack_bolt.request.internals import build_context

from bot.commands.handled import request_key

log = logging.getLogger(__name__)

MAX_CLOCK_SKEW = 300  # Slack's replay window: 5 minutes
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
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


def slack_blueprint(bolt: App, signing_secret: str) -> Blueprint:
    """The Flask endpoint Slack calls for commands, buttons and events."""
    bp = Blueprint("slack", __name__)

    @bp.post("/slack/events")
    def slack_events() -> Response:
        raw = request.get_data()
        if not verify_slack_signature(signing_secret, raw, request.headers):
            return _json({"error": "invalid request"}, 401)
        body = parse_slack_body(raw, request.content_type or "")
        problem = "not a Slack body" if body is None else malformed(body)
        if body is None or problem is not None:
            log.info("refused a signed but malformed Slack request: %s", problem)
            return _json({"error": "malformed request"}, 400)
        bolt_request = _bolt_request(raw, body)
        bolt_response = bolt.dispatch(bolt_request)
        response = Response(bolt_response.body, status=bolt_response.status)
        for name, values in bolt_response.headers.items():
            for value in values:
                response.headers.add(name, value)
        return response

    return bp


def _bolt_request(raw: bytes, body: dict[str, Any]) -> BoltRequest:
    # Bolt wants raw text in HTTP mode and would parse it again, its own (flawed) way: give it
    # nothing to parse, then hand it the raw text and the body we parsed (and the context
    # Bolt derives from it).
    bolt_request = BoltRequest(body="", query=request.query_string.decode("latin-1"), headers=request.headers)
    bolt_request.raw_body = raw.decode("utf-8")
    bolt_request.body = body

    bolt_request.context = build_context(BoltContext({}), body)
    bolt_request.context[REQUEST_KEY] = request_key(raw)
    return bolt_request


def _json(body: dict[str, str], status: int) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")
