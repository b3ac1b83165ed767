"""The `/usage` command forms as help and error messages show them, and the help table.

Each sub-grammar names the form a ParseError points to; `USAGE_LINES` is what `/usage help`
lists, one row per form with what it does.
"""

from __future__ import annotations

USAGE_HELP = "/usage help [TOPIC]"
USAGE_PERIOD = "/usage today|yesterday|this-month|last-month|all-time [CATEGORY] [all] [public] [by-account]"
USAGE_RANGE = "/usage YYYY-MM-DD..YYYY-MM-DD [CATEGORY] [all] [public]"
USAGE_SERIES = "/usage daily|monthly [CATEGORY] [N] [public]"
USAGE_TRIGGER = "/usage trigger CATEGORY VALUE [by count|usage|price] [every day|month|year] [name TEXT]"
USAGE_TRIGGERS = "/usage triggers [CATEGORY]"
USAGE_UNTRIGGER = "/usage untrigger UT…"
USAGE_TRIGGER_DELETE = "/usage trigger delete UT…"
USAGE_ALERTS = "/usage alerts failed"
USAGE_DIGEST = "/usage digest daily|weekly|monthly [at HH:MM]"
USAGE_DIGEST_OFF = "/usage digest off"
USAGE_DIGESTS = "/usage digests"
USAGE_BUDGET = "/usage budget AMOUNT daily|monthly [CATEGORY]"
USAGE_BUDGET_OFF = "/usage budget off daily|monthly [CATEGORY]"
USAGE_BUDGETS = "/usage budgets"
USAGE_AUDIT = "/usage audit [N]"
USAGE_WATCH_ON = "/usage watch on [CATEGORY …] [sensitivity low|normal|high]"
USAGE_WATCH_OFF = "/usage watch off [CATEGORY …]"
USAGE_WATCH = "/usage watch"

USAGE_LINES: tuple[tuple[str, str], ...] = (
    (USAGE_HELP, "Show this help, or help on one command."),
    (
        "/usage today|yesterday|this-month|last-month|all-time [CATEGORY] [all] [public]",
        "Usage and spend for a period (GMT). `all` lists every category; `public` posts to the channel.",
    ),
    ("/usage today|… by-account", "The same, broken down per subaccount."),
    (USAGE_RANGE, "Usage between two dates, both included (GMT). One date alone means that day."),
    (USAGE_SERIES, "One line per day (last N, default 7, up to 31) or per month (default 6, up to 24)."),
    (
        USAGE_TRIGGER,
        "Set a Twilio usage trigger: VALUE is `1000`, `+1000` (from current usage) or `$25`. "
        "The alert comes to this channel.",
    ),
    (USAGE_TRIGGERS, "List the usage triggers, optionally for one category."),
    (USAGE_UNTRIGGER, "Delete a usage trigger (also `/usage trigger delete UT…`)."),
    (USAGE_ALERTS, "Alerts that could not be delivered to Slack."),
    (
        USAGE_DIGEST,
        "Post a usage summary to this channel every day, week or month, "
        "at HH:MM on the 24-hour clock (default 09:00, the bot's time zone).",
    ),
    (USAGE_DIGEST_OFF, "Stop this channel's digests."),
    (USAGE_DIGESTS, "List the digests."),
    (
        USAGE_BUDGET,
        "Set a daily or monthly spend budget, in total or for one category. AMOUNT is dollars: `500`, `$1,250.50`.",
    ),
    (USAGE_BUDGET_OFF, "Remove a budget."),
    (USAGE_BUDGETS, "List the budgets."),
    (
        USAGE_WATCH_ON,
        "Alert this channel within minutes when spend in a category climbs far faster than usual "
        "(default: every category with spend, normal sensitivity).",
    ),
    (USAGE_WATCH_OFF, "Stop watching those categories here (no category: stop every watch here)."),
    (USAGE_WATCH, "What this channel watches: usual rate at this hour, today so far, the last check."),
    (USAGE_AUDIT, "Who created, deleted or subscribed what: the last N entries (default 20, up to 100)."),
)
