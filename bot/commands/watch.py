"""Answers to `/usage watch on|off`, `/usage watch`, and the buttons of a spend-spike alert.

`UsageBot` (answer.py) hands these over: the commands through its handler table, a click on a
spike alert's buttons (its trigger SID starts with "spike:") from `act_on_alert`. Starting and
stopping a watch follows the admin rule (permissions.py); Set a trigger is `/usage trigger`'s
use case, so the same rule, audit and "already set" apply.
"""

from __future__ import annotations

from typing import Any, Protocol

from bot.alerts.buttons import (
    ALERT_ACTIONS_BLOCK,
    SNOOZE_DURATIONS,
    SPIKE_SID_PREFIX,
    ActionId,
    parse_alert_button_value,
    parse_set_trigger_value,
)
from bot.alerts.render import action_note, annotate_alert
from bot.clock import Clock, utc_now
from bot.commands.help import render_error
from bot.commands.permissions import Guarded
from bot.commands.types import CreateTrigger, ShowWatch, UsageQuery, WatchOff, WatchOn
from bot.model import Message, Period
from bot.store import Store
from bot.usage.errors import TwilioError
from bot.watch import manage
from bot.watch.render import spike_actions
from bot.watch.render_commands import render_overview, render_watch_off, render_watch_on


class Invoker(Protocol):
    """Who clicked or typed, and where (answer.Invoker)."""

    user_id: str
    channel_id: str


class UsageBot(Protocol):
    """What the watch needs of answer.UsageBot (a protocol: answer.py imports this module)."""

    store: Store
    clock: Clock
    handlers: dict[type, Any]

    def _refusal(self, action: Guarded, invoker: Any, target: str = "") -> Message | None: ...
    def _unsnooze(self, sid: str, invoker: Any) -> None: ...
    def snooze(self, sid: str, invoker: Any, seconds: float) -> int: ...
    def create_trigger(self, command: CreateTrigger, invoker: Any) -> Message: ...


# What a click on a spike alert becomes: new blocks for the alert message, and/or a private reply.
Outcome = tuple[list[dict[str, Any]] | None, Message | None]


def is_spike_alert(trigger_sid: str) -> bool:
    return trigger_sid.startswith(SPIKE_SID_PREFIX)


class WatchCommands:
    """The watch's part of `UsageBot`."""

    def __init__(self, bot: UsageBot) -> None:
        self.bot = bot

    def handlers(self) -> dict[type, Any]:
        return {WatchOn: self.watch_on, WatchOff: self.watch_off, ShowWatch: self.show}

    def watch_on(self, command: WatchOn, invoker: Invoker) -> Message:
        target = " ".join(command.categories) or "every category"
        if (refusal := self.bot._refusal(Guarded.WATCH_ON, invoker, target)) is not None:
            return refusal
        change = manage.watch_on(
            self.bot.store,
            channel_id=invoker.channel_id,
            categories=command.categories,
            sensitivity=command.sensitivity,
            user_id=invoker.user_id,
            now=self.bot.clock(),
        )
        return render_watch_on(change)

    def watch_off(self, command: WatchOff, invoker: Invoker) -> Message:
        target = " ".join(command.categories) or "every watch"
        if (refusal := self.bot._refusal(Guarded.WATCH_OFF, invoker, target)) is not None:
            return refusal
        removal = manage.watch_off(
            self.bot.store,
            channel_id=invoker.channel_id,
            categories=command.categories,
            user_id=invoker.user_id,
            now=self.bot.clock(),
        )
        return render_watch_off(removal)

    def show(self, _: ShowWatch, invoker: Invoker) -> Message:
        now = utc_now(self.bot.clock)
        return render_overview(manage.overview(self.bot.store, channel_id=invoker.channel_id, now=now), now=now)

    # --- the buttons of a spike alert ------------------------------------------------------------

    def act_on_spike_alert(self, action_id: str, value: str, invoker: Invoker, blocks: list[dict[str, Any]]) -> Outcome:
        """Snooze / Unsnooze (the spike's category, in this channel), Show usage (today), Set a
        trigger (a daily price trigger at the proposed value); the console links need nothing."""
        try:
            return self._act(action_id, value, invoker, blocks)
        except TwilioError as exc:
            return None, render_error(exc.user_message)

    def _act(self, action_id: str, value: str, invoker: Invoker, blocks: list[dict[str, Any]]) -> Outcome:
        now = self.bot.clock()
        if action_id == ActionId.SET_TRIGGER:
            return self._set_trigger(value, invoker, blocks, now)
        sid, category, _ = parse_alert_button_value(value)
        amount = _proposed_amount(blocks)
        if action_id in SNOOZE_DURATIONS:
            hours = f"{self.bot.snooze(sid, invoker, SNOOZE_DURATIONS[action_id]) // 3600} h"
            note = action_note(":zzz:", f"Snoozed for {hours}", invoker.user_id, now)
            actions = spike_actions(sid, category, amount, snoozed=True, offer_trigger=bool(amount))
            return annotate_alert(blocks, note, actions), None
        if action_id == ActionId.UNSNOOZE:
            self.bot._unsnooze(sid, invoker)
            note = action_note(":bell:", "Unsnoozed", invoker.user_id, now)
            actions = spike_actions(sid, category, amount, snoozed=False, offer_trigger=bool(amount))
            return annotate_alert(blocks, note, actions), None
        if action_id == ActionId.SHOW_USAGE:
            return None, self.bot.handlers[UsageQuery](UsageQuery(Period.TODAY, category or None), invoker)
        if action_id in (ActionId.CONSOLE_GEO, ActionId.CONSOLE_PUMPING):
            return None, None  # a link: Slack opened it; the click is only acknowledged
        return None, render_error("That button is no longer supported.")

    def _set_trigger(self, value: str, invoker: Invoker, blocks: list[dict[str, Any]], now: float) -> Outcome:
        sid, category, amount = parse_set_trigger_value(value)
        command = CreateTrigger(category, amount, "price", "daily", f"Spend spike guard: {category}"[:64])
        reply = self.bot.create_trigger(command, invoker)
        if reply.error:
            return None, reply
        note = action_note(":white_check_mark:", f"Daily trigger at ${amount} set", invoker.user_id, now)
        snoozed = _is_snoozed(blocks)
        actions = spike_actions(sid, category, amount, snoozed=snoozed, offer_trigger=False)
        return annotate_alert(blocks, note, actions), reply


def _alert_buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        element
        for block in blocks
        if block.get("block_id") == ALERT_ACTIONS_BLOCK
        for element in block.get("elements") or []
        if isinstance(element, dict)
    ]


def _proposed_amount(blocks: list[dict[str, Any]]) -> str:
    """The Set a trigger button's amount on the message, or "" when it is gone (a trigger was set)."""
    for element in _alert_buttons(blocks):
        if element.get("action_id") == ActionId.SET_TRIGGER:
            return parse_set_trigger_value(str(element.get("value", "")))[2]
    return ""


def _is_snoozed(blocks: list[dict[str, Any]]) -> bool:
    return any(element.get("action_id") == ActionId.UNSNOOZE for element in _alert_buttons(blocks))
