"""Help and error replies, all ephemeral: every command form with examples, a parse error with
suggestions, and short warnings for platform errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.commands.types import ParseError
from bot.model import Message
from bot.render.blocks import (
    BLOCKS_TEXT_BUDGET,
    FALLBACK_BUDGET,
    MAX_BLOCKS,
    blocks_text_len,
    clip,
    code_span,
    context_block,
    escape_mrkdwn,
    fit_fallback,
    header_block,
    oneline,
    pack_lines,
    section_block,
    slack_len,
)

__all__ = ["render_error", "render_help", "render_parse_error"]


_HELP_EXAMPLES = (
    ("/usage today", "spend and usage so far today"),
    ("/usage this-month sms all", "this month's SMS, every category"),
    ("/usage daily sms 7", "SMS spend per day for the last week"),
    ("/usage trigger totalprice $50 every month name Budget", "alert here when spend passes $50 a month"),
)


def _form(form: str) -> str:
    form = oneline(form)
    return form if form.startswith("/") else f"/usage {form}"


def render_help(lines: Sequence[tuple[str, str]]) -> Message:
    """Every command form with its explanation, then a few examples."""
    header_text = "/usage — Twilio usage in Slack"
    items = []
    for form, explanation in lines:
        item = f"• {code_span(_form(form), 200)}"
        if oneline(explanation):
            # Explanations are our own mrkdwn (they may quote `words`); escaping keeps them inert.
            item += f"\n      {escape_mrkdwn(clip(oneline(explanation), 600))}"
        items.append(item)
    examples = "*Examples*\n" + "\n".join(f"• {code_span(cmd, 200)} — {what}" for cmd, what in _HELP_EXAMPLES)
    note = "Periods and dates are GMT, as in Twilio. Replies are visible only to you unless you add `public`."

    blocks: list[dict[str, Any]] = [header_block(header_text)]
    reserved = slack_len(examples) + slack_len(note)
    packed, shown = pack_lines(
        items, max_blocks=MAX_BLOCKS - 4, max_chars=BLOCKS_TEXT_BUDGET - reserved - blocks_text_len(blocks)
    )
    blocks += packed
    if shown < len(items):
        blocks.append(context_block(f"… and {len(items) - shown:,} more forms"))
    blocks += [{"type": "divider"}, section_block(examples), context_block(note)]
    text = fit_fallback(
        [header_text],
        items[:shown],
        [examples, note],
        more=lambda n: f"… and {n:,} more forms",
        also_hidden=len(items) - shown,
    )
    return Message(text=text, blocks=blocks, public=False)


def render_parse_error(error: ParseError) -> Message:
    """A short ephemeral note: what was wrong, suggestions, the right form, and where help is."""
    lines = [f":warning: {escape_mrkdwn(clip(oneline(error.message), 500)) or 'That command was not understood.'}"]
    suggestions = [s for s in error.suggestions if oneline(s)][:5]
    if suggestions:
        lines.append("Did you mean " + ", ".join(code_span(s, 40) for s in suggestions) + "?")
    if oneline(error.usage):
        lines.append(f"Usage: {code_span(error.usage, 300)}")
    lines.append("Try `/usage help` to see every command.")
    body = "\n".join(lines)
    return Message(text=clip(body, FALLBACK_BUDGET), blocks=[section_block(body)], public=False, error=True)


def render_error(text: str) -> Message:
    """A short ephemeral warning for platform errors (Twilio unavailable, and so on)."""
    body = f":warning: {escape_mrkdwn(clip(oneline(text), 1000)) or 'Something went wrong.'}"
    return Message(text=body, blocks=[section_block(body)], public=False, error=True)
