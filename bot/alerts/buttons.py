"""The button protocol: the ids and values Slack sends back when someone clicks one of our buttons.

Alert messages carry Snooze 1 h / 24 h (or Unsnooze), Show usage and Delete trigger; the
`/usage triggers` list carries a Delete button per trigger and Previous/Next page buttons.
bot/render/ builds the buttons, handlers/buttons.py routes the clicks by action-id prefix and
bot/commands/answer.py acts on them. The strings are the wire format: messages already posted
keep the old ones, so changing a value breaks their buttons.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ALERT_ACTIONS_BLOCK",
    "ALERT_ACTION_PREFIX",
    "SNOOZE_DURATIONS",
    "SPIKE_SID_PREFIX",
    "TRIGGERS_PAGES_BLOCK",
    "TRIGGER_LIST_ACTION_PREFIX",
    "ActionId",
    "alert_button_value",
    "parse_alert_button_value",
    "parse_set_trigger_value",
    "parse_trigger_delete_value",
    "parse_triggers_page_value",
    "set_trigger_value",
    "trigger_delete_value",
    "triggers_page_value",
]


class ActionId(StrEnum):
    """The `action_id` of each button."""

    SNOOZE_1H = "alert_snooze_1h"
    SNOOZE_24H = "alert_snooze_24h"
    UNSNOOZE = "alert_unsnooze"
    SHOW_USAGE = "alert_show_usage"
    DELETE_TRIGGER = "alert_delete_trigger"
    # On spend-spike alerts (bot/watch/): a price trigger at a proposed value, and two links to
    # Twilio's console (link buttons: Slack still sends the click, which is only acknowledged).
    SET_TRIGGER = "alert_set_trigger"
    CONSOLE_GEO = "alert_console_geo"
    CONSOLE_PUMPING = "alert_console_pumping"
    TRIGGERS_DELETE = "triggers_delete"
    TRIGGERS_PAGE_PREV = "triggers_page_prev"
    TRIGGERS_PAGE_NEXT = "triggers_page_next"


# handlers/buttons.py routes clicks by these prefixes: every ActionId starts with one of them.
ALERT_ACTION_PREFIX = "alert_"
TRIGGER_LIST_ACTION_PREFIX = "triggers_"

# Block ids: an alert's buttons (dropped and replaced when someone acts on the alert) and the
# trigger list's Previous/Next buttons.
ALERT_ACTIONS_BLOCK = "alert_actions"
TRIGGERS_PAGES_BLOCK = "triggers_pages"

# The trigger SID a spend-spike alert stands under (snoozes and the relay's grouping work by it):
# "spike:" and the category. No Twilio SID starts so.
SPIKE_SID_PREFIX = "spike:"

# How long each Snooze button silences the trigger's alerts in that channel, in seconds.
SNOOZE_DURATIONS: dict[str, int] = {ActionId.SNOOZE_1H: 3600, ActionId.SNOOZE_24H: 86400}


def alert_button_value(trigger_sid: str, category: str, recurring: str) -> str:
    """What the alert buttons carry back to us: enough to act without a lookup."""
    return f"{trigger_sid}|{category}|{recurring}"[:2000]


def parse_alert_button_value(value: str) -> tuple[str, str, str]:
    """(trigger SID, category, recurring) from an alert button's value."""
    sid, _, rest = value.partition("|")
    category, _, recurring = rest.partition("|")
    return sid, category, recurring


def set_trigger_value(trigger_sid: str, category: str, amount: str) -> str:
    """A spike alert's Set a trigger button: the alert's button value and the proposed dollars."""
    return f"{alert_button_value(trigger_sid, category, 'daily')}|{amount}"


def parse_set_trigger_value(value: str) -> tuple[str, str, str]:
    """(trigger SID, category, proposed dollars) from a Set a trigger button's value."""
    head, _, amount = value.rpartition("|")
    sid, category, _ = parse_alert_button_value(head)
    return sid, category, amount


def triggers_page_value(category: str | None, page: int) -> str:
    """A page of `/usage triggers`: the category filter it was asked with, and the page number."""
    return f"{category or ''}|{page}"


def parse_triggers_page_value(value: str) -> tuple[str | None, int]:
    """(category filter, page) from a page button's value; a garbled page number means page 0."""
    category, _, page = value.partition("|")
    return category or None, int(page) if page.isdigit() else 0


def trigger_delete_value(trigger_sid: str, category: str | None, page: int) -> str:
    """A trigger-list Delete button's value: the trigger, then the page to show afterwards."""
    return f"{trigger_sid}|{triggers_page_value(category, page)}"


def parse_trigger_delete_value(value: str) -> tuple[str, str | None, int]:
    """(trigger SID, category filter, page) from a trigger-list Delete button's value."""
    sid, _, page_value = value.partition("|")
    return (sid, *parse_triggers_page_value(page_value))
