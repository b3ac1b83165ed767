"""`check_limits`: what in a message breaks Slack's limits, so tests can prove every renderer
stays inside them.

The limits are Slack's documented ones (https://api.slack.com/reference/block-kit/blocks,
https://api.slack.com/methods/chat.postMessage) plus the undocumented cap on the text all blocks
carry together (`msg_blocks_too_long`); see bot/render/blocks.py.
"""

from __future__ import annotations

from bot.model import Message
from bot.render.blocks import (
    MAX_ACTIONS_ELEMENTS,
    MAX_BLOCK_ID,
    MAX_BLOCKS,
    MAX_BLOCKS_TOTAL_TEXT,
    MAX_CONTEXT_ELEMENTS,
    MAX_FIELD_TEXT,
    MAX_FIELDS,
    MAX_HEADER_TEXT,
    MAX_MARKDOWN_TEXT,
    MAX_SECTION_TEXT,
    MAX_TEXT,
    blocks_text_len,
    element_text,
    slack_len,
)

__all__ = ["check_limits"]


def check_limits(message: Message) -> list[str]:
    """Human-readable violations of Slack's message limits; [] when the message can be sent."""
    problems: list[str] = []
    blocks = message.blocks or []
    text_len = slack_len(message.text or "")
    if not message.text and not blocks:
        problems.append("message has neither text nor blocks")
    if text_len > MAX_TEXT:
        problems.append(f"text is {text_len:,} characters (max {MAX_TEXT:,})")
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"message has {len(blocks)} blocks (max {MAX_BLOCKS})")
    for index, block in enumerate(blocks):
        kind = block.get("type", "?")
        where = f"block {index} ({kind})"
        if len(str(block.get("block_id", ""))) > MAX_BLOCK_ID:
            problems.append(f"{where}: block_id longer than {MAX_BLOCK_ID}")
        if kind == "header":
            n = slack_len(element_text(block.get("text")))
            if n == 0:
                problems.append(f"{where}: empty text")
            elif n > MAX_HEADER_TEXT:
                problems.append(f"{where}: text is {n:,} characters (max {MAX_HEADER_TEXT})")
        elif kind == "section":
            fields = block.get("fields", []) or []
            n = slack_len(element_text(block.get("text")))
            if n == 0 and not fields:
                problems.append(f"{where}: neither text nor fields")
            if n > MAX_SECTION_TEXT:
                problems.append(f"{where}: text is {n:,} characters (max {MAX_SECTION_TEXT:,})")
            if len(fields) > MAX_FIELDS:
                problems.append(f"{where}: {len(fields)} fields (max {MAX_FIELDS})")
            for field_index, field in enumerate(fields):
                m = slack_len(element_text(field))
                if m == 0:
                    problems.append(f"{where}: field {field_index} is empty")
                elif m > MAX_FIELD_TEXT:
                    problems.append(f"{where}: field {field_index} is {m:,} characters (max {MAX_FIELD_TEXT:,})")
        elif kind == "context":
            elements = block.get("elements", []) or []
            if not elements:
                problems.append(f"{where}: no elements")
            if len(elements) > MAX_CONTEXT_ELEMENTS:
                problems.append(f"{where}: {len(elements)} elements (max {MAX_CONTEXT_ELEMENTS})")
            for element in elements:
                if element.get("type") in ("mrkdwn", "plain_text") and not element_text(element):
                    problems.append(f"{where}: an element has empty text")
        elif kind == "markdown":
            n = slack_len(block["text"] if isinstance(block.get("text"), str) else "")
            if n > MAX_MARKDOWN_TEXT:
                problems.append(f"{where}: text is {n:,} characters (max {MAX_MARKDOWN_TEXT:,})")
        elif kind == "actions":
            elements = block.get("elements", []) or []
            if len(elements) > MAX_ACTIONS_ELEMENTS:
                problems.append(f"{where}: {len(elements)} elements (max {MAX_ACTIONS_ELEMENTS})")
    total = blocks_text_len(blocks)
    if total > MAX_BLOCKS_TOTAL_TEXT:
        problems.append(
            f"blocks carry {total:,} characters of text (Slack answers msg_blocks_too_long "
            f"above about {MAX_BLOCKS_TOTAL_TEXT:,})"
        )
    return problems
