"""`/usage audit`: the latest changes, newest first."""

from __future__ import annotations

from collections.abc import Sequence

from bot.model import AuditEntry, Message
from bot.render.blocks import (
    BLOCKS_TEXT_BUDGET,
    MAX_BLOCKS,
    channel_ref,
    clip,
    code_span,
    escape_mrkdwn,
    fit_fallback,
    header_block,
    mention,
    oneline,
    pack_lines,
    section_block,
    slack_date,
)

__all__ = ["render_audit"]


def render_audit(entries: Sequence[AuditEntry]) -> Message:
    """`/usage audit`: the latest changes, newest first."""
    header = f"Audit trail (latest {len(entries):,})"
    if not entries:
        text = "Nothing recorded yet: triggers, snoozes, digests and budgets will show up here."
        return Message(text=text, blocks=[header_block(header), section_block(text)])
    lines = []
    for e in entries:
        who = mention(e.user_id) or "someone"
        where = channel_ref(e.channel_id)
        target = code_span(e.target, 40) if e.target else ""
        detail = escape_mrkdwn(clip(oneline(e.detail), 120))
        parts = [slack_date(e.at), who, f"*{escape_mrkdwn(e.action)}*", target, f"in {where}" if where else "", detail]
        lines.append(clip("• " + " · ".join(p for p in parts if p), 400))
    sections, shown = pack_lines(lines, max_blocks=MAX_BLOCKS - 2, max_chars=BLOCKS_TEXT_BUDGET)
    text = fit_fallback([header], lines[:shown], also_hidden=len(lines) - shown)
    return Message(text=text, blocks=[header_block(header), *sections])
