"""Home and form requests shaped as Slack sends them, and the checks every view must pass.

Payload shapes: https://api.slack.com/events/app_home_opened, https://api.slack.com/events/url_verification,
https://api.slack.com/reference/interaction-payloads (block_actions, block_suggestion, shortcut,
view_submission).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import requests
from slack_sdk.models.views import View

from tests.slack_requests import interaction, sign

MAX_VIEW_BLOCKS = 100
MAX_TEXT = 3000
TEAM = {"id": "T0001", "domain": "example"}


def post_json(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> requests.Response:
    raw = json.dumps(body).encode()
    signed = {**sign(raw), "Content-Type": "application/json", **(headers or {})}
    return requests.post(f"{url}/slack/events", data=raw, headers=signed, timeout=10)


def post_interaction(url: str, payload: dict[str, Any]) -> requests.Response:
    raw = interaction(payload)
    return requests.post(f"{url}/slack/events", data=raw, headers=sign(raw), timeout=10)


def home_opened(user: str = "U0PAT", *, event_id: str = "", tab: str = "home") -> dict[str, Any]:
    return {
        "token": "deprecated-verification-token",
        "team_id": "T0001",
        "api_app_id": "A0001",
        "event": {
            "type": "app_home_opened",
            "user": user,
            "channel": "D0HOME",
            "tab": tab,
            "event_ts": "1764000000.000100",
        },
        "type": "event_callback",
        "event_id": event_id or "Ev" + uuid.uuid4().hex[:10].upper(),
        "event_time": 1764000000,
        "authorizations": [{"team_id": "T0001", "user_id": "UBOT", "is_bot": True}],
    }


def _user(user: str) -> dict[str, Any]:
    return {"id": user, "username": "pat", "name": "pat", "team_id": "T0001"}


def home_click(action_id: str, user: str = "U0PAT") -> dict[str, Any]:
    """A click on a button of the Home view."""
    return {
        "type": "block_actions",
        "user": _user(user),
        "api_app_id": "A0001",
        "token": "deprecated-verification-token",
        "container": {"type": "view", "view_id": "V0HOME"},
        "trigger_id": f"{uuid.uuid4().int % 10**12}.1.{uuid.uuid4().hex}",
        "team": TEAM,
        "view": {"id": "V0HOME", "type": "home", "blocks": [], "callback_id": "usage_home", "state": {"values": {}}},
        "actions": [
            {
                "action_id": action_id,
                "block_id": "home_actions",
                "text": {"type": "plain_text", "text": "x"},
                "value": "home",
                "type": "button",
                "action_ts": "1764000000.000200",
            }
        ],
    }


def shortcut(callback_id: str = "new_usage_alert", user: str = "U0PAT") -> dict[str, Any]:
    return {
        "type": "shortcut",
        "token": "deprecated-verification-token",
        "action_ts": "1764000000.000300",
        "team": TEAM,
        "user": _user(user),
        "callback_id": callback_id,
        "trigger_id": f"{uuid.uuid4().int % 10**12}.1.{uuid.uuid4().hex}",
    }


def suggestion(value: str, user: str = "U0PAT") -> dict[str, Any]:
    return {
        "type": "block_suggestion",
        "user": _user(user),
        "container": {"type": "view", "view_id": "V0FORM"},
        "api_app_id": "A0001",
        "token": "deprecated-verification-token",
        "action_id": "usage_category",
        "block_id": "category",
        "value": value,
        "team": TEAM,
        "view": {"id": "V0FORM", "type": "modal", "callback_id": "usage_trigger_form", "state": {"values": {}}},
    }


def submission(
    callback_id: str, values: dict[str, dict[str, Any]], *, user: str = "U0PAT", private_metadata: str = ""
) -> dict[str, Any]:
    """A view_submission of one of our forms with these `values` (block_id -> element state)."""
    state = {block: {_action(block): element} for block, element in values.items()}
    return {
        "type": "view_submission",
        "team": TEAM,
        "user": _user(user),
        "api_app_id": "A0001",
        "token": "deprecated-verification-token",
        "trigger_id": f"{uuid.uuid4().int % 10**12}.1.{uuid.uuid4().hex}",
        "view": {
            "id": "V" + uuid.uuid4().hex[:9].upper(),
            "team_id": "T0001",
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": private_metadata,
            "blocks": [],
            "state": {"values": state},
            "hash": "1764000000.abcdef",
            "title": {"type": "plain_text", "text": "New usage alert"},
        },
        "response_urls": [],
    }


def _action(block: str) -> str:
    return "usage_category" if block == "category" else block


def text_value(text: str) -> dict[str, Any]:
    return {"type": "plain_text_input", "value": text}


def option(value: str) -> dict[str, Any]:
    return {"type": "static_select", "selected_option": {"text": {"type": "plain_text", "text": value}, "value": value}}


def external(value: str) -> dict[str, Any]:
    return {
        "type": "external_select",
        "selected_option": {"text": {"type": "plain_text", "text": value}, "value": value},
    }


def conversation(channel: str) -> dict[str, Any]:
    return {"type": "conversations_select", "selected_conversation": channel}


def trigger_form_values(threshold: str = "1000", **extra: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The alert form filled in: sms, `threshold`, every month, to C0FORM (and `extra` inputs)."""
    values = {
        "category": external("sms"),
        "threshold": text_value(threshold),
        "recurring": option("monthly"),
        "channel": conversation("C0FORM"),
    }
    values.update(extra)
    return values


def check_view(view: dict[str, Any]) -> None:
    """What Slack would check: slack_sdk's Block Kit models (every block, every element) and the
    view limits of 100 blocks and 3,000 characters per text."""
    View(**view).to_dict()  # raises SlackObjectFormationError on anything out of bounds
    assert 1 <= len(view["blocks"]) <= MAX_VIEW_BLOCKS
    for text in _texts(view):
        assert len(text) <= MAX_TEXT, text[:80]


def view_text(view: dict[str, Any]) -> str:
    return "\n".join(_texts(view))


def _texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["text"]] if isinstance(node.get("text"), str) else []
        return (
            found
            + [t for key, value in node.items() if key != "text" for t in _texts(value)]
            + (_texts(node["text"]) if isinstance(node.get("text"), dict) else [])
        )
    if isinstance(node, list):
        return [t for item in node for t in _texts(item)]
    return []
