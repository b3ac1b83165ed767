"""The answers to `/usage watch on|off` and `/usage watch`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from bot.model import Message
from bot.render.blocks import (
    BLOCKS_TEXT_BUDGET,
    MAX_BLOCKS,
    code_span,
    context_block,
    fit_fallback,
    header_block,
    pack_lines,
    section_block,
    slack_date,
)
from bot.watch.manage import Overview, WatchChange, WatchRemoval
from bot.watch.model import seconds_into_day
from bot.watch.render import money

CHECK_NOTE = "The scheduled pass (`python -m bot scheduled`, every 5 minutes) checks; alerts come to this channel."


def _names(categories: Sequence[str]) -> str:
    return ", ".join("every category with spend" if not c else code_span(c, 80) for c in categories)


def render_watch_on(change: WatchChange) -> Message:
    lines = []
    if change.added:
        lines.append(f":eyes: Now watching {_names(change.added)} here ({_sensitivities(change, change.added)}).")
    if change.changed:
        lines.append(f":eyes: Sensitivity of {_names(change.changed)} now {_sensitivities(change, change.changed)}.")
    if change.already:
        lines.append(
            f":information_source: Already watching {_names(change.already)} here "
            f"({_sensitivities(change, change.already)}); nothing changed."
        )
    text = "\n".join(lines)
    return Message(text=text, blocks=[section_block(text), context_block(CHECK_NOTE)])


def _sensitivities(change: WatchChange, categories: Sequence[str]) -> str:
    found = sorted({change.sensitivity[c] for c in categories})
    return f"{'/'.join(found)} sensitivity"


def render_watch_off(removal: WatchRemoval) -> Message:
    lines = []
    if removal.removed:
        lines.append(f":no_bell: Stopped watching {_names(removal.removed)} here.")
    if removal.not_watched:
        named = [c for c in removal.not_watched if c]
        if named:
            lines.append(f"{_names(named)} {'is' if len(named) == 1 else 'are'} not watched on its own here.")
    if not removal.removed and not removal.not_watched:
        lines.append(":information_source: Nothing is watched here.")
    if removal.every_remains:
        lines.append("This channel still watches every category with spend: `/usage watch off` stops that.")
    text = " ".join(lines) if len(lines) == 1 else "\n".join(lines)
    return Message(text=text, blocks=[section_block(text)])


def render_overview(view: Overview, *, now: datetime) -> Message:
    if not view.rows:
        text = ":information_source: Nothing is watched here. `/usage watch on` watches every category with spend."
        return Message(text=text, blocks=[section_block(text)])
    header = "Spend-spike watch in this channel"
    watched = ", ".join(
        f"{'every category with spend' if not r.category else code_span(r.category, 80)} ({r.sensitivity})"
        for r in view.rows
    )
    at = seconds_into_day(now.astimezone(UTC))
    lines = []
    for category, sensitivity in view.categories:
        today = view.latest.totals.get(category) if view.latest else None
        profile = view.profiles.get(category)
        usual = (
            f"usual now {money(profile.usual_rate(at).price)}/h, {money(profile.usual_by(at).price)} by now"
            if profile
            else "usual not known yet"
        )
        so_far = f"today {money(today.price)}" if today else "no usage today"
        lines.append(f"• {code_span(category, 80)} ({sensitivity}) — {so_far} · {usual}")
    if view.latest is None:
        last = "No check has run today yet."
    else:
        last = f"Last check {slack_date(view.latest.taken_at.timestamp())}."
    sections, shown = pack_lines(lines, max_blocks=MAX_BLOCKS - 4, max_chars=BLOCKS_TEXT_BUDGET - 1_000)
    note = last + (f" … and {len(lines) - shown} more categories." if shown < len(lines) else "")
    blocks = [header_block(header), section_block(f"Watching: {watched}"), *sections, context_block(note, CHECK_NOTE)]
    text = fit_fallback([header, f"Watching: {watched}"], lines, [note])
    return Message(text=text, blocks=blocks)
