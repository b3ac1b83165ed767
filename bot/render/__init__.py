"""Slack messages for usage-bot: Block Kit blocks (plain dicts) plus a plain `text` fallback.

Everything here is pure: records, triggers and reports in, `Message` out. No I/O, no Slack SDK.
This package re-exports nothing: import from the module that defines a name
(`from bot.render.usage import render_summary`).

- blocks.py      the Block Kit toolkit: Slack's limits and our budgets below them, mrkdwn
                 escaping, mentions, block builders, packing lines into blocks, the fallback text
- formats.py     money, quantities, sparklines, plurals, "as of" dates
- usage.py       `/usage` summaries and day/month series
- by_account.py  spend per account (`by-account`)
- help.py        help, parse errors, platform errors
- triggers.py    trigger created, the paged trigger list, trigger deleted
- alerts.py      fired-trigger alerts, their buttons, undelivered alerts
- audit.py       the audit trail
- digests.py     digests and digest subscriptions
- budgets.py     budgets, budget warnings, the "on pace for" line
- plain.py       any message as terminal text (the command line)
- limits.py      `check_limits`, the validator of Slack's limits

Every renderer keeps its message inside Slack's limits
(https://api.slack.com/reference/block-kit/blocks): at most 50 blocks, section text ≤ 3,000
characters, header ≤ 150, context ≤ 10 elements; and the fallback text ≤ 4,000, as
https://api.slack.com/methods/chat.postMessage advises. On top of the documented limits, Slack
rejects messages whose blocks carry roughly 12,000 characters of text in total
(`msg_blocks_too_long`), so renderers budget 10,000 characters for all block text.

Text that comes from users or from Twilio (descriptions, categories, trigger names) is escaped
(`&`, `<`, `>`) before it goes into mrkdwn, so it cannot mention anyone or forge a link.
"""
