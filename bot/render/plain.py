"""Any message as terminal text, for `python -m bot usage`: the same information without mrkdwn
(no *bold* stars, links as their labels, code blocks unfenced).
"""

from __future__ import annotations

import re

from bot.model import Message
from bot.render.blocks import element_text, slack_len

__all__ = ["render_plain"]


_FENCE = re.compile(r"```\n?(.*?)\n?```", re.DOTALL)
_INLINE_CODE = re.compile(r"(`[^`\n]*`)")
_LINK = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")
_BOLD = re.compile(r"\*([^*\n]+)\*")
_STRIKE = re.compile(r"~([^~\n]+)~")
_ITALIC = re.compile(r"(?<!\w)_([^_\n]+)_(?!\w)")
_EMOJI = {
    ":warning:": "⚠",
    ":white_check_mark:": "✔",
    ":wastebasket:": "🗑",
    ":test_tube:": "🧪",
}


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _link_text(match: re.Match[str]) -> str:
    target, label = match.group(1), match.group(2)
    if label:
        return label
    if target[:1] in "#@":
        return target  # <#C123> → #C123, <@U123> → @U123
    if target.startswith("!"):
        return "@" + target[1:]  # <!here> → @here
    return target


def _strip_inline(text: str) -> str:
    parts = _INLINE_CODE.split(text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:  # inline code is kept as it is
            out.append(_unescape(part))
            continue
        part = _LINK.sub(_link_text, part)
        part = _BOLD.sub(r"\1", part)
        part = _STRIKE.sub(r"\1", part)
        part = _ITALIC.sub(r"\1", part)
        for code, symbol in _EMOJI.items():
            part = part.replace(code, symbol)
        out.append(_unescape(part))
    return "".join(out)


def _strip_mrkdwn(text: str) -> str:
    """Slack mrkdwn → terminal text: no *bold* stars, links as their label, code blocks unfenced."""
    out = []
    last = 0
    for match in _FENCE.finditer(text):
        out.append(_strip_inline(text[last : match.start()]))
        out.append(_unescape(match.group(1)))
        last = match.end()
    out.append(_strip_inline(text[last:]))
    return "".join(out)


def render_plain(message: Message) -> str:
    """The message as terminal text: header, context, sections — the same information, no mrkdwn."""
    if not message.blocks:
        return _strip_mrkdwn(message.text).strip()
    out: list[str] = []
    for block in message.blocks:
        kind = block.get("type")
        if kind == "header":
            title = element_text(block.get("text"))
            out += [title, "=" * min(slack_len(title), 80)]
        elif kind == "context":
            texts = [_strip_mrkdwn(element_text(e)) for e in block.get("elements", []) if element_text(e)]
            out.append(" · ".join(texts))
        elif kind in ("section", "markdown"):
            raw = block.get("text")
            body = raw if isinstance(raw, str) else element_text(raw)  # a markdown block's text is a bare string
            if body:
                out.append(_strip_mrkdwn(body))
            for field in block.get("fields", []) or []:
                label, _, value = _strip_mrkdwn(element_text(field)).partition("\n")
                out.append(f"{label}: {value}" if value else label)
        elif kind == "divider":
            out.append("")
    return "\n".join(out).strip()
