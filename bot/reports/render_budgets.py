"""Budget messages: the replies to `/usage budget …` and `/usage budgets`, the warning posted
when spend is on pace to cross a budget, and the "on pace for" line added to this month's summary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from bot.model import TOTAL_SPEND, Message
from bot.render.blocks import (
    FALLBACK_BUDGET,
    MAX_BLOCKS,
    MAX_CONTEXT_ELEMENTS,
    channel_ref,
    clip,
    code_span,
    context_block,
    escape_mrkdwn,
    fields_block,
    header_block,
    list_message,
    section_block,
    slack_len,
)
from bot.render.formats import format_money
from bot.reports.model import Budget, BudgetChange, BudgetCheck

__all__ = [
    "budget_title",
    "render_budget_removed",
    "render_budget_set",
    "render_budget_warning",
    "render_budgets_list",
    "render_pace_line",
    "with_pace_line",
]


def _category_words(category: str) -> str:
    return "total spend" if category == TOTAL_SPEND else code_span(category)


def budget_title(budget: Budget) -> str:
    """'$500.00 a month for total spend' / '$20.00 a day for `sms`'."""
    per = "a day" if budget.period == "daily" else "a month"
    return f"{escape_mrkdwn(format_money(budget.amount, 'usd'))} {per} for {_category_words(budget.category)}"


def render_budget_set(change: BudgetChange, *, channel_id: str) -> Message:
    """Confirmation of `/usage budget …`: the budget, the Twilio trigger behind it, the warning."""
    budget, trigger = change.budget, change.trigger
    where = channel_ref(channel_id) or "this channel"
    intro = f":white_check_mark: *Budget set:* {budget_title(budget)}, reported in {where}."
    if change.already:
        intro = (
            f":information_source: *Budget already set:* {budget_title(budget)}, reported in {where}. Nothing changed."
        )
    period = "every day (GMT)" if budget.period == "daily" else "every month (GMT)"
    fields = [
        f"*Budget*\n{escape_mrkdwn(format_money(budget.amount, 'usd'))}",
        f"*Period*\n{period}",
        f"*Watching*\n{_category_words(budget.category)}",
        f"*Twilio trigger*\n{code_span(trigger.sid, 64)}",
    ]
    word = "day" if budget.period == "daily" else "month"
    note = (
        f"Twilio alerts here when spend reaches the budget; before that, usage-bot warns once a {word} "
        "when spend is on pace to cross it."
    )
    if change.replaced is not None:
        note += f" Replaces the budget of {escape_mrkdwn(format_money(change.replaced.amount, 'usd'))}."
    opening = "Budget already set" if change.already else "Budget set"
    text = f"{opening}: {budget_title(budget)}, Twilio trigger {code_span(trigger.sid, 64)}. {note}"
    return Message(text=clip(text, FALLBACK_BUDGET), blocks=[fields_block(intro, fields), context_block(note)])


def render_budget_removed(budget: Budget | None, *, period: str, category: str | None) -> Message:
    if budget is None:
        what = _category_words((category or TOTAL_SPEND).lower())
        body = f"This channel has no {period} budget for {what}. See them all with `/usage budgets`."
        return Message(text=body, blocks=[section_block(body)])
    sid = f" and its Twilio trigger {code_span(budget.trigger_sid, 64)}" if budget.trigger_sid else ""
    body = f":wastebasket: Removed the budget of {budget_title(budget)}{sid}."
    return Message(text=body, blocks=[section_block(body)])


def _check_words(check: BudgetCheck, period: str) -> str:
    unit = check.price_unit
    word = "day" if period == "daily" else "month"
    spent = escape_mrkdwn(format_money(check.spent, unit))
    share = f"{int(check.share * 100)}%"
    if check.spent >= check.amount:
        return f"{spent} spent ({share} through the {word}): over budget"
    if not check.ready:
        return f"{spent} spent so far ({share} through the {word}; too early for a pace)"
    pace = escape_mrkdwn(format_money(check.projected, unit))
    flag = " :warning:" if check.warn else ""
    return f"{spent} spent ({share} through the {word}) · on pace for {pace}{flag}"


def render_budgets_list(
    budgets: Sequence[Budget], *, checks: Mapping[int, BudgetCheck] | None = None, channel_id: str = ""
) -> Message:
    """`/usage budgets`: every budget, this channel's first, with the spend so far when known."""
    header = f"Budgets ({len(budgets):,})"
    if not budgets:
        body = "No budgets yet. Set one with `/usage budget $500 monthly`."
        return Message(text=f"{header}\n{body}", blocks=[header_block(header), section_block(body)])
    checks = checks or {}
    lines = []
    for budget in sorted(budgets, key=lambda b: b.channel_id != channel_id):
        where = channel_ref(budget.channel_id) or "a channel"
        line = f"• {where} · {budget_title(budget)}"
        check = checks.get(budget.id)
        if check is not None:
            line += f" · {_check_words(check, budget.period)}"
        lines.append(line)
    note = "Budget periods are GMT days and months, as Twilio counts them. Remove one with `/usage budget off …`."
    if not checks:
        note = "Spend so far is not shown: Twilio did not answer. " + note
    return list_message(header, lines, note)


def render_budget_warning(budget: Budget, check: BudgetCheck) -> Message:
    """'On pace to spend $612.00 of your $500.00 monthly budget (40% through the month; $310.00
    spent so far)', posted once per period."""
    unit = check.price_unit
    word = "day" if budget.period == "daily" else "month"
    what = "" if budget.category == TOTAL_SPEND else f" for {code_span(budget.category)}"
    sentence = (
        f"On pace to spend *{escape_mrkdwn(format_money(check.projected, unit))}* of your "
        f"{escape_mrkdwn(format_money(budget.amount, 'usd'))} {budget.period} budget{what} "
        f"({int(check.share * 100)}% through the {word}; "
        f"{escape_mrkdwn(format_money(check.spent, unit))} spent so far)."
    )
    trigger = (
        f" Twilio's trigger {code_span(budget.trigger_sid, 64)} alerts here if spend reaches it."
        if budget.trigger_sid
        else ""
    )
    note = f"Projected at the current rate over the GMT {word}, as Twilio counts it; one warning per {word}.{trigger}"
    blocks = [section_block(f":warning: *Budget warning* — {sentence}"), context_block(note)]
    return Message(text=clip(sentence.replace("*", ""), FALLBACK_BUDGET), blocks=blocks, public=True)


# --- the "on pace for" line -------------------------------------------------------


def render_pace_line(
    spent: Decimal, projected: Decimal, unit: str, *, share: float, ready: bool, period_word: str = "month"
) -> Message:
    """One context line for a summary of an unfinished period: 'On pace for $612.00 this month'."""
    if ready:
        pace = escape_mrkdwn(format_money(projected, unit))
        text = (
            f"On pace for *{pace}* this {period_word} (GMT) at the current rate · "
            f"{int(share * 100)}% of the {period_word} gone"
        )
    else:
        text = f'Too early in the {period_word} for an "on pace for" estimate ({int(share * 100)}% of it gone)'
    return Message(text=text, blocks=[context_block(text)])


def with_pace_line(message: Message, pace: Message) -> Message:
    """`message` with the pace line after its headline section (or in its last context block
    when one more block would break Slack's limit)."""
    blocks = list(message.blocks)
    line = pace.blocks[0] if pace.blocks else context_block(pace.text)
    if len(blocks) < MAX_BLOCKS:
        first_section = next((i for i, b in enumerate(blocks) if b.get("type") == "section"), len(blocks) - 1)
        blocks.insert(first_section + 1, line)
    else:
        last = max((i for i, b in enumerate(blocks) if b.get("type") == "context"), default=None)
        if last is not None and len(blocks[last]["elements"]) < MAX_CONTEXT_ELEMENTS:
            blocks[last] = {**blocks[last], "elements": [*blocks[last]["elements"], *line["elements"]]}
    text = message.text
    if slack_len(text) + slack_len(pace.text) + 1 <= FALLBACK_BUDGET:
        text = f"{text}\n{pace.text}"
    return Message(text=text, blocks=blocks, public=message.public, error=message.error)
