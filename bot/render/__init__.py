"""The Block Kit toolkit: Slack messages are Block Kit blocks (plain dicts) plus a plain `text` fallback.

Everything here is pure: no I/O, no Slack SDK.
This package re-exports nothing: import from the module that defines a name
(`from bot.render.blocks import section_block`).

- blocks.py      the Block Kit toolkit: Slack's limits and our budgets below them, mrkdwn
                 escaping, mentions, block builders, packing lines into blocks, the fallback text
- formats.py     money, quantities, sparklines, plurals, "as of" dates
- audit.py       the audit trail
- plain.py       any message as terminal text (the command line)
- limits.py      `check_limits`, the validator of Slack's limits

Each capability renders its own messages with this toolkit, beside the code that produces them:
bot/usage/render.py and render_accounts.py (usage answers), bot/alerts/render.py and
render_triggers.py (alerts and triggers), bot/reports/render_digests.py and render_budgets.py,
bot/commands/help.py (help and errors).

Every renderer keeps its message inside Slack's limits
(https://api.slack.com/reference/block-kit/blocks): at most 50 blocks, section text ≤ 3,000
characters, header ≤ 150, context ≤ 10 elements; and the fallback text ≤ 4,000, as
https://api.slack.com/methods/chat.postMessage advises. On top of the documented limits, Slack
rejects messages whose blocks carry roughly 12,000 characters of text in total
(`msg_blocks_too_long`), so renderers budget 10,000 characters for all block text.

Text that comes from users or from Twilio (descriptions, categories, trigger names) is escaped
(`&`, `<`, `>`) before it goes into mrkdwn, so it cannot mention anyone or forge a link.
"""
