"""The Block Kit toolkit every renderer uses: Slack's limits, mrkdwn escaping, block builders,
and packing lines into as few blocks as fit.

Slack's limits are documented at https://api.slack.com/reference/block-kit/blocks (blocks per
message, section, header and context sizes) and https://api.slack.com/methods/chat.postMessage
(the `text` fallback). Renderers keep well below them, with the budgets defined here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from bot.model import Message

__all__ = [
    "BLOCKS_TEXT_BUDGET",
    "FALLBACK_BUDGET",
    "LIST_TEXT_BUDGET",
    "MAX_ACTIONS_ELEMENTS",
    "MAX_BLOCKS",
    "MAX_BLOCKS_TOTAL_TEXT",
    "MAX_BLOCK_ID",
    "MAX_CONTEXT_ELEMENTS",
    "MAX_FIELDS",
    "MAX_FIELD_TEXT",
    "MAX_HEADER_TEXT",
    "MAX_MARKDOWN_TEXT",
    "MAX_SECTION_TEXT",
    "MAX_TEXT",
    "block_texts",
    "blocks_text_len",
    "button_element",
    "channel_ref",
    "clip",
    "code_span",
    "context_block",
    "element_text",
    "escape_mrkdwn",
    "fields_block",
    "fit_fallback",
    "header_block",
    "mention",
    "oneline",
    "pack_lines",
    "section_block",
    "slack_date",
    "slack_len",
]

# --- Slack's limits (https://api.slack.com/reference/block-kit/blocks) -----------

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3_000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2_000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS_ELEMENTS = 25
MAX_BLOCK_ID = 255
MAX_MARKDOWN_TEXT = 12_000
MAX_TEXT = 40_000  # chat.postMessage truncates `text` beyond this
# Undocumented: Slack answers msg_blocks_too_long at about 12,000-13,300 characters of block text.
MAX_BLOCKS_TOTAL_TEXT = 12_000

# --- our own budgets, with headroom below the limits ---------------------------

_SECTION_BUDGET = 2_900
BLOCKS_TEXT_BUDGET = 10_000  # all block text of one message, below MAX_BLOCKS_TOTAL_TEXT
LIST_TEXT_BUDGET = 9_000  # the digest and budget lists, which add a note or two after the list
# chat.postMessage advises keeping `text` (the notification) under 4,000 characters.
FALLBACK_BUDGET = 3_900


# --- text and escaping ------------------------------------------------------------

_BARE_AMPERSAND = re.compile(r"&(?!(?:amp|lt|gt);)")


def escape_mrkdwn(text: str) -> str:
    """Escape `&`, `<`, `>` for Slack mrkdwn. Idempotent: already-escaped text stays as it is."""
    return _BARE_AMPERSAND.sub("&amp;", text).replace("<", "&lt;").replace(">", "&gt;")


def slack_len(text: str) -> int:
    """Length as Slack most likely counts it (UTF-16 code units), never less than len()."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-16 units, ending in '…' when cut."""
    if slack_len(text) <= limit:
        return text
    out: list[str] = []
    used = 0
    for char in text:
        width = 2 if ord(char) > 0xFFFF else 1
        if used + width > limit - 1:
            break
        out.append(char)
        used += width
    return "".join(out) + "…"


def oneline(text: str | None) -> str:
    """Collapse whitespace (including newlines, which would break a line-per-item list)."""
    return " ".join((text or "").split())


def code_span(text: str, limit: int = 60) -> str:
    """`text` as an inline code span, escaped; a backtick inside would end the span early."""
    inner = clip(oneline(text).replace("`", "'"), limit)
    return f"`{escape_mrkdwn(inner)}`" if inner else "`?`"


# --- mrkdwn references: users, channels, dates ------------------------------------

_SLACK_ID = re.compile(r"[A-Z0-9]{2,40}")
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,40}")


def mention(user_id: str) -> str:
    """`<@U123>` for a real-looking Slack user ID, else "": anything else would be an injection risk."""
    return f"<@{user_id}>" if _USER_ID.fullmatch(user_id or "") else ""


def channel_ref(channel_id: str) -> str:
    """`<#C123>` for a real-looking Slack channel ID; anything else would be an injection risk."""
    return f"<#{channel_id}>" if _SLACK_ID.fullmatch(channel_id or "") else ""


def slack_date(epoch: float) -> str:
    """A date each reader sees in their own time zone; the fallback is GMT."""
    when = datetime.fromtimestamp(epoch, UTC)
    return f"<!date^{int(epoch)}^{{date_short_pretty}} at {{time}}|{when:%Y-%m-%d %H:%M} GMT>"


# --- block builders ---------------------------------------------------------------


def header_block(text: str) -> dict[str, Any]:
    """A header block; its plain text is cut to Slack's limit."""
    return {"type": "header", "text": {"type": "plain_text", "text": clip(text, MAX_HEADER_TEXT), "emoji": True}}


def section_block(text: str) -> dict[str, Any]:
    """A mrkdwn section; its text is cut to Slack's limit."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, MAX_SECTION_TEXT)}}


def fields_block(text: str, fields: Sequence[str]) -> dict[str, Any]:
    """A section with up to MAX_FIELDS two-column fields under its text."""
    block = section_block(text)
    block["fields"] = [{"type": "mrkdwn", "text": clip(f, MAX_FIELD_TEXT)} for f in fields[:MAX_FIELDS]]
    return block


def context_block(*texts: str) -> dict[str, Any]:
    """A context line of mrkdwn elements; empty texts are left out."""
    elements = [{"type": "mrkdwn", "text": clip(t, MAX_SECTION_TEXT)} for t in texts if t]
    return {"type": "context", "elements": elements[:MAX_CONTEXT_ELEMENTS]}


def button_element(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    """A button; `action_id` goes out as a plain string (an ActionId is one)."""
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "action_id": str(action_id),
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def element_text(obj: Any) -> str:
    """The `text` of a text object, or "" for anything else."""
    if isinstance(obj, dict):
        value = obj.get("text", "")
        return value if isinstance(value, str) else ""
    return ""


def block_texts(block: dict[str, Any]) -> list[str]:
    """Every text a block shows: its text, its fields, a context's elements."""
    raw = block.get("text")
    texts = [raw if isinstance(raw, str) else element_text(raw)]  # a markdown block's text is a bare string
    texts += [element_text(f) for f in block.get("fields", []) or []]
    texts += [element_text(e) for e in block.get("elements", []) or [] if block.get("type") == "context"]
    return [t for t in texts if t]


def blocks_text_len(blocks: Iterable[dict[str, Any]]) -> int:
    """The characters all the blocks carry together, as Slack counts them."""
    return sum(slack_len(t) for block in blocks for t in block_texts(block))


# --- packing lines into blocks, and the fallback text -----------------------------


def pack_lines(
    lines: Sequence[str], *, max_blocks: int, max_chars: int, code: bool = False
) -> tuple[list[dict[str, Any]], int]:
    """Pack lines into as few sections as possible, within `max_blocks` and `max_chars` in total.

    Returns the sections and how many lines (from the start) they hold. `code=True` wraps each
    section in a ``` block, for tables that need a fixed-width font.
    """
    overhead = 8 if code else 0  # "```\n" + "\n```"
    per_section = _SECTION_BUDGET - overhead
    groups: list[list[str]] = []
    size = 0
    total = 0
    shown = 0
    for raw in lines:
        line = clip(raw, per_section)
        width = slack_len(line)
        if groups and size + 1 + width <= per_section:
            if total + 1 + width > max_chars:
                break
            groups[-1].append(line)
            size += 1 + width
            total += 1 + width
        else:
            if len(groups) >= max_blocks or total + width + overhead > max_chars:
                break
            groups.append([line])
            size = width
            total += width + overhead
        shown += 1
    blocks = []
    for group in groups:
        body = "\n".join(group)
        blocks.append(section_block(f"```\n{body}\n```" if code else body))
    return blocks, shown


def fit_fallback(
    head: Sequence[str],
    items: Sequence[str],
    tail: Sequence[str] = (),
    *,
    more: Callable[[int], str] | None = None,
    also_hidden: int = 0,
    newest_last: bool = False,
) -> str:
    """The notification text: `head`, as many `items` as fit in the budget, then `tail`.

    `more(n)` words the line standing for the n items left out (those cut here plus
    `also_hidden`, which never were items); by default the first items are kept, with
    `newest_last` the last ones (for series, where today matters most).
    """
    fixed = [clip(x, 600) for x in (*head, *tail) if x]
    budget = FALLBACK_BUDGET - sum(slack_len(x) + 1 for x in fixed) - 200
    order = list(reversed(items)) if newest_last else list(items)
    kept: list[str] = []
    for item in order:
        width = slack_len(item) + 1
        if width > budget:
            break
        kept.append(item)
        budget -= width
    hidden = len(items) - len(kept) + also_hidden
    more_line = clip((more or (lambda n: f"… and {n:,} more"))(hidden), 190) if hidden else ""
    body = list(reversed(kept)) if newest_last else kept
    body = [more_line, *body] if newest_last else [*body, more_line]
    lines = [clip(h, 600) for h in head if h] + [x for x in body if x] + [clip(t, 600) for t in tail if t]
    return clip("\n".join(lines), FALLBACK_BUDGET)


def list_message(header: str, lines: Sequence[str], note: str) -> Message:
    """A header, one line per item packed into sections ("… and N more" past Slack's limits),
    and a closing note: the shape of every `/usage …s` listing."""
    packed, shown = pack_lines(lines, max_blocks=MAX_BLOCKS - 3, max_chars=LIST_TEXT_BUDGET)
    blocks = [header_block(header), *packed]
    if shown < len(lines):
        blocks.append(context_block(f"… and {len(lines) - shown:,} more"))
    blocks.append(context_block(note))
    text = fit_fallback([header], lines[:shown], [note], also_hidden=len(lines) - shown)
    return Message(text=text, blocks=blocks)
