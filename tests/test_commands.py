from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.commands.forms import (
    USAGE_ALERTS,
    USAGE_AUDIT,
    USAGE_BUDGET,
    USAGE_BUDGET_OFF,
    USAGE_BUDGETS,
    USAGE_DIGEST,
    USAGE_DIGEST_OFF,
    USAGE_DIGESTS,
    USAGE_HELP,
    USAGE_LINES,
    USAGE_PERIOD,
    USAGE_RANGE,
    USAGE_SERIES,
    USAGE_TRIGGER,
    USAGE_TRIGGER_DELETE,
    USAGE_TRIGGERS,
    USAGE_UNTRIGGER,
)
from bot.commands.grammar import MAX_TEXT_LENGTH, parse_command
from bot.commands.types import (
    CreateTrigger,
    DeleteTrigger,
    HelpCommand,
    ListBudgets,
    ListDigests,
    ListFailedAlerts,
    ListTriggers,
    ParseError,
    RemoveBudget,
    SeriesQuery,
    SetBudget,
    ShowAudit,
    ShowWatch,
    SubscribeDigest,
    UnsubscribeDigest,
    UsageQuery,
    WatchOff,
    WatchOn,
)
from bot.model import DateRange, Period

TODAY = date(2026, 11, 25)
SID = "UT" + "0123456789abcdef" * 2
COMMAND_TYPES = (
    HelpCommand,
    UsageQuery,
    SeriesQuery,
    CreateTrigger,
    ListTriggers,
    DeleteTrigger,
    ListFailedAlerts,
    SubscribeDigest,
    UnsubscribeDigest,
    ListDigests,
    SetBudget,
    RemoveBudget,
    ListBudgets,
    ShowAudit,
    WatchOn,
    WatchOff,
    ShowWatch,
)


def error(text: str, today: date | None = TODAY) -> ParseError:
    """Parse `text` and insist it is a ParseError."""
    result = parse_command(text, today)
    assert isinstance(result, ParseError), result
    return result


# --- help ----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", "help", "HELP", "?"])
def test_empty_or_help_is_help(text: str) -> None:
    assert parse_command(text) == HelpCommand()


def test_help_topic() -> None:
    assert parse_command("help trigger") == HelpCommand(topic="trigger")
    assert parse_command("help This_Month") == HelpCommand(topic="this-month")


def test_help_topic_is_shortened() -> None:
    result = parse_command("help " + "x" * 200)
    assert isinstance(result, HelpCommand)
    assert len(result.topic) == 30


# --- period queries --------------------------------------------------------------


@pytest.mark.parametrize(
    "word, period",
    [
        ("today", Period.TODAY),
        ("yesterday", Period.YESTERDAY),
        ("this-month", Period.THIS_MONTH),
        ("thismonth", Period.THIS_MONTH),
        ("this_month", Period.THIS_MONTH),
        ("this month", Period.THIS_MONTH),
        ("last-month", Period.LAST_MONTH),
        ("lastmonth", Period.LAST_MONTH),
        ("last_month", Period.LAST_MONTH),
        ("last month", Period.LAST_MONTH),
        ("all-time", Period.ALL_TIME),
        ("alltime", Period.ALL_TIME),
        ("all_time", Period.ALL_TIME),
        ("All Time", Period.ALL_TIME),
        ("TODAY", Period.TODAY),
    ],
)
def test_period_words(word: str, period: Period) -> None:
    assert parse_command(word) == UsageQuery(period=period)


def test_period_with_category_and_flags() -> None:
    assert parse_command("today sms all public") == UsageQuery(Period.TODAY, "sms", show_all=True, public=True)


def test_flags_in_any_order_and_case() -> None:
    expected = UsageQuery(Period.LAST_MONTH, "totalprice", show_all=True, public=True, by_account=True)
    assert parse_command("last-month PUBLIC by-account Spend All") == expected
    assert parse_command("last-month all spend public by-account") == expected


def test_by_account_spellings() -> None:
    for text in ["today by-account", "today by_account", "today byaccount", "today by account"]:
        assert parse_command(text) == UsageQuery(Period.TODAY, by_account=True), text


def test_lone_by_in_query_is_explained() -> None:
    err = error("today by")
    assert "by-account" in err.message
    assert err.usage == USAGE_PERIOD


def test_repeated_flag_and_same_category_are_harmless() -> None:
    assert parse_command("today sms messages all all") == UsageQuery(Period.TODAY, "sms", show_all=True)


def test_two_categories_are_an_error() -> None:
    err = error("today sms calls")
    assert "`sms`" in err.message
    assert "`calls`" in err.message
    assert err.usage == USAGE_PERIOD


def test_whitespace_of_any_kind_separates_words() -> None:
    assert parse_command("  today\n\tsms\r\npublic  ") == UsageQuery(Period.TODAY, "sms", public=True)


# --- unknown words and categories --------------------------------------------------


def test_payload_is_an_unknown_category() -> None:
    err = error("today payload")
    assert err.message == "Unknown category `payload`."
    assert err.usage == USAGE_PERIOD


def test_unknown_category_suggests_close_ones() -> None:
    err = error("today smss")
    assert err.message == "Unknown category `smss`."
    assert err.suggestions[0] == "sms"


def test_unknown_flag_close_to_a_flag_suggests_it() -> None:
    err = error("today sms pubic")
    assert "`pubic`" in err.message
    assert err.suggestions == ("public",)


def test_unknown_word_after_a_category_is_named() -> None:
    err = error("today sms payload")
    assert "`payload`" in err.message
    assert "after `today`" in err.message
    assert err.usage == USAGE_PERIOD


def test_unknown_first_word_suggests_commands() -> None:
    err = error("tody")
    assert "`tody`" in err.message
    assert "/usage help" in err.message
    assert "today" in err.suggestions
    assert err.usage == USAGE_HELP


def test_unknown_first_word_with_nothing_close() -> None:
    err = error("payload")
    assert err.message == "I don't know the command `payload`; see `/usage help`."
    assert err.suggestions == ()


def test_category_as_first_word_asks_for_a_period() -> None:
    err = error("spend")
    assert "`/usage today totalprice`" in err.message
    assert err.usage == USAGE_PERIOD


def test_misspelt_new_commands_are_suggested() -> None:
    assert "digest" in error("digets").suggestions
    assert "budget" in error("budgt").suggestions
    assert "audit" in error("audti").suggestions


@pytest.mark.parametrize(
    "text, shown",
    [
        ("<@U123>", "`&lt;@U123&gt;`"),
        ("today <@U123|bob>", "`&lt;@U123|bob&gt;`"),
        ("today &lt;@U123&gt;", "`&lt;@U123&gt;`"),
        ("today <#C123|general>", "`&lt;#C123|general&gt;`"),
        ("today <http://example.com>", "`&lt;http://example.com&gt;`"),
        ("trigger <!channel> 5", "`&lt;!channel&gt;`"),
    ],
)
def test_slack_mentions_and_links_are_unknown_words(text: str, shown: str) -> None:
    err = error(text)
    assert shown in err.message
    assert "I don't understand" in err.message
    # Echoed mentions stay escaped, so the error can never ping anyone.
    assert "<@" not in err.message
    assert "<!" not in err.message


def test_slack_escaped_ampersand_becomes_a_plain_word() -> None:
    err = error("today a&amp;b")
    assert err.message == "Unknown category `a&amp;b`."
    # `&amp;amp;` is a literal `&amp;` typed by the user, not a double escape.
    result = parse_command("trigger sms 5 name R&amp;amp;D")
    assert isinstance(result, CreateTrigger)
    assert result.name == "R&amp;D"


def test_backticks_in_echoed_words_cannot_break_the_code_span() -> None:
    err = error("today a`b")
    assert err.message == "Unknown category `a?b`."


def test_emoji_is_an_unknown_command() -> None:
    err = error("🎉")
    assert "`🎉`" in err.message
    err = error("today 🎉")
    assert err.message == "Unknown category `🎉`."


def test_very_long_input_is_rejected_without_echo() -> None:
    text = "today " + "a" * 4000
    err = error(text)
    assert "too long" in err.message
    assert "aaaaaaaaaa" not in err.message
    assert len(err.message) < 120


def test_input_at_the_limit_is_still_parsed() -> None:
    text = "today" + " " * (MAX_TEXT_LENGTH - 5)
    assert parse_command(text) == UsageQuery(Period.TODAY)
    assert "too long" in error(text + " ").message


def test_long_unknown_word_is_truncated_in_the_message() -> None:
    word = "x" * 500
    err = error(f"today {word}")
    assert "x" * 29 + "…" in err.message
    assert "x" * 31 not in err.message


# --- date ranges -----------------------------------------------------------------


def test_date_range() -> None:
    expected = UsageQuery(DateRange(date(2026, 11, 1), date(2026, 11, 20)))
    assert parse_command("2026-11-01..2026-11-20", TODAY) == expected


def test_date_range_with_options() -> None:
    result = parse_command("2026-11-01..2026-11-20 public spend all", TODAY)
    assert result == UsageQuery(DateRange(date(2026, 11, 1), date(2026, 11, 20)), "totalprice", True, True)


def test_single_date_is_a_one_day_range() -> None:
    assert parse_command("2026-02-28") == UsageQuery(DateRange(date(2026, 2, 28), date(2026, 2, 28)))


def test_ellipsis_is_accepted_as_the_separator() -> None:
    assert parse_command("2026-11-01…2026-11-02") == UsageQuery(DateRange(date(2026, 11, 1), date(2026, 11, 2)))


def test_range_may_end_after_today_if_it_starts_before() -> None:
    result = parse_command("2026-11-01..2026-12-31", TODAY)
    assert result == UsageQuery(DateRange(date(2026, 11, 1), date(2026, 12, 31)))


def test_future_checks_need_today() -> None:
    assert isinstance(parse_command("2099-01-01"), UsageQuery)


def test_impossible_date() -> None:
    err = error("2026-02-30..2026-03-01")
    assert err.message == "`2026-02-30` isn't a real date: February 2026 has 28 days."
    assert err.usage == USAGE_RANGE


def test_leap_day() -> None:
    assert "February 2027 has 28 days" in error("2027-02-29").message
    assert parse_command("2028-02-29", date(2028, 3, 1)) == UsageQuery(DateRange(date(2028, 2, 29), date(2028, 2, 29)))


@pytest.mark.parametrize("text", ["2026-13-01", "2026-00-10", "0000-01-01"])
def test_impossible_month_or_year(text: str) -> None:
    err = error(text)
    assert err.message == f"`{text}` isn't a real date."


def test_reversed_range_suggests_the_right_order() -> None:
    err = error("2026-11-20..2026-11-01")
    assert "ends before it starts" in err.message
    assert "`2026-11-01..2026-11-20`" in err.message
    assert err.usage == USAGE_RANGE


def test_range_starting_in_the_future() -> None:
    err = error("2026-11-26..2026-11-30")
    assert "starts in the future" in err.message
    assert "2026-11-26" in err.message
    assert "starts in the future" in error("2027-01-01").message


@pytest.mark.parametrize(
    "text, shown",
    [
        ("2026-1-1..2026-1-5", "`2026-1-1`"),
        ("2026/11/01", "`2026/11/01`"),
        ("20261101", "`20261101`"),
        ("2026-11-01..2026-11-xx", "`2026-11-xx`"),
        ("2026-11-01...2026-11-05", "`.2026-11-05`"),
        ("7", "`7`"),
        ("2026-W01-1", "`2026-W01-1`"),
        ("２０２６-11-01", "`２０２６-11-01`"),
    ],
)
def test_malformed_dates_say_which_part_and_the_form(text: str, shown: str) -> None:
    err = error(text)
    assert shown in err.message
    assert "YYYY-MM-DD" in err.message
    assert err.usage == USAGE_RANGE


def test_range_missing_an_end() -> None:
    err = error("2026-11-01..")
    assert "no end date" in err.message
    assert "no start date" in error("..2026-11-01").message


def test_two_dates_with_a_space_suggest_the_range_form() -> None:
    err = error("2026-11-01 2026-11-20")
    assert "`2026-11-01..2026-11-20`" in err.message


def test_range_unknown_option_is_named() -> None:
    err = error("2026-11-01..2026-11-02 sms payload")
    assert "`payload`" in err.message
    assert err.usage == USAGE_RANGE


# --- daily / monthly series --------------------------------------------------------


def test_series_defaults() -> None:
    assert parse_command("daily") == SeriesQuery(Period.DAILY, None, 7)
    assert parse_command("monthly") == SeriesQuery(Period.MONTHLY, None, 6)


def test_series_with_options_in_any_order() -> None:
    assert parse_command("daily sms 14 public") == SeriesQuery(Period.DAILY, "sms", 14, public=True)
    assert parse_command("Monthly 24 Spend") == SeriesQuery(Period.MONTHLY, "totalprice", 24)
    assert parse_command("daily 1") == SeriesQuery(Period.DAILY, None, 1)
    assert parse_command("daily 31") == SeriesQuery(Period.DAILY, None, 31)


@pytest.mark.parametrize(
    "text, maximum",
    [("daily 0", 31), ("daily 32", 31), ("monthly 25", 24), ("daily -5", 31), ("daily 2.5", 31), ("daily 99999", 31)],
)
def test_series_count_out_of_range(text: str, maximum: int) -> None:
    err = error(text)
    assert f"from 1 to {maximum}" in err.message
    assert f"`{text.split()[1]}`" in err.message
    assert err.usage == USAGE_SERIES


def test_series_count_twice() -> None:
    assert "only once" in error("daily 3 4").message


def test_series_rejects_query_flags() -> None:
    err = error("daily all")
    assert "`all`" in err.message
    assert err.usage == USAGE_SERIES


def test_series_unknown_category() -> None:
    err = error("daily smss")
    assert err.message == "Unknown category `smss`."
    assert "sms" in err.suggestions


# --- trigger ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("trigger sms 1000", CreateTrigger("sms", "1000", "count")),
        ("trigger sms +1000", CreateTrigger("sms", "+1000", "count")),
        ("trigger calls 12.5 by usage", CreateTrigger("calls", "12.5", "usage")),
        ("trigger sms 1,000", CreateTrigger("sms", "1000", "count")),
        ("trigger spend $25", CreateTrigger("totalprice", "25", "price")),
        ("trigger spend $25.50", CreateTrigger("totalprice", "25.50", "price")),
        ("trigger spend 25usd", CreateTrigger("totalprice", "25", "price")),
        ("trigger spend 25USD", CreateTrigger("totalprice", "25", "price")),
        ("trigger spend +$25", CreateTrigger("totalprice", "+25", "price")),
        ("trigger spend $25 by price", CreateTrigger("totalprice", "25", "price")),
        ("trigger totalprice 60 by price", CreateTrigger("totalprice", "60", "price")),
        ("trigger sms 100 by count", CreateTrigger("sms", "100", "count")),
        ("trigger sms 100 every day", CreateTrigger("sms", "100", "count", "daily")),
        ("trigger sms 100 every month", CreateTrigger("sms", "100", "count", "monthly")),
        ("trigger sms 100 every year", CreateTrigger("sms", "100", "count", "yearly")),
        ("trigger sms 100 daily", CreateTrigger("sms", "100", "count", "daily")),
        ("trigger sms 100 monthly", CreateTrigger("sms", "100", "count", "monthly")),
        ("trigger sms 100 yearly", CreateTrigger("sms", "100", "count", "yearly")),
        ("TRIGGER Messages +500 EVERY Month BY Usage", CreateTrigger("sms", "+500", "usage", "monthly")),
    ],
)
def test_create_trigger(text: str, expected: CreateTrigger) -> None:
    assert parse_command(text) == expected


def test_trigger_name_takes_the_rest_in_original_case() -> None:
    result = parse_command("trigger sms +1000 by count every month name Too many TEXTS by Friday")
    assert result == CreateTrigger("sms", "+1000", "count", "monthly", "Too many TEXTS by Friday")


def test_trigger_name_words_are_joined_with_single_spaces() -> None:
    result = parse_command("trigger sms 5 name  Night\n\tshift 🌙")
    assert isinstance(result, CreateTrigger)
    assert result.name == "Night shift 🌙"


def test_trigger_name_of_64_characters_is_fine_65_is_not() -> None:
    assert parse_command("trigger sms 5 name " + "n" * 64) == CreateTrigger("sms", "5", "count", name="n" * 64)
    err = error("trigger sms 5 name " + "n" * 65)
    assert "65 characters" in err.message
    assert "64" in err.message
    assert err.usage == USAGE_TRIGGER


def test_trigger_empty_name() -> None:
    assert "after `name`" in error("trigger sms 5 name").message


@pytest.mark.parametrize("value", ["abc", "1e9999", "NaN", "nan", "inf", "12.", ".5", "1,00", "$", "usd", "$+5", "٣"])
def test_trigger_rejects_non_numbers(value: str) -> None:
    err = error(f"trigger sms {value}")
    assert "isn't a trigger value" in err.message
    assert err.usage == USAGE_TRIGGER


@pytest.mark.parametrize("value", ["-5", "0", "0.00", "+0", "$0", "-$5"])
def test_trigger_value_must_be_positive(value: str) -> None:
    err = error(f"trigger sms {value}")
    assert "more than zero" in err.message
    assert f"`{value}`" in err.message


def test_trigger_value_too_large() -> None:
    assert "too large" in error("trigger sms 1" + "0" * 13).message
    assert parse_command("trigger sms 1" + "0" * 12) == CreateTrigger("sms", "1" + "0" * 12, "count")


def test_trigger_money_has_at_most_cents() -> None:
    assert "2 decimal places" in error("trigger spend $1.005").message
    assert "too many decimal places" in error("trigger sms 1.0000001").message


@pytest.mark.parametrize("by", ["count", "usage"])
def test_money_value_cannot_be_by_count_or_usage(by: str) -> None:
    err = error(f"trigger spend $25 by {by}")
    assert f"`by {by}`" in err.message
    assert "`$25`" in err.message


def test_trigger_missing_parts() -> None:
    err = error("trigger")
    assert "category and value" in err.message
    assert err.usage == USAGE_TRIGGER
    err = error("trigger sms")
    assert "`/usage trigger sms 1000`" in err.message
    assert err.usage == USAGE_TRIGGER


def test_trigger_value_before_category() -> None:
    assert "category before the value" in error("trigger 1000 sms").message


def test_trigger_unknown_category() -> None:
    err = error("trigger whatsap 5")
    assert err.message == "Unknown category `whatsap`."
    assert err.suggestions[0] == "channels-whatsapp"
    assert err.usage == USAGE_TRIGGER


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("trigger sms 5 by", "after `by`"),
        ("trigger sms 5 by dollars", "not `dollars`"),
        ("trigger sms 5 every", "after `every`"),
        ("trigger sms 5 every week", "not `week`"),
        ("trigger sms 5 by count by usage", "only once"),
        ("trigger sms 5 every day monthly", "only once"),
        ("trigger sms 5 public", "`public`"),
        ("trigger sms 5 payload", "`payload`"),
    ],
)
def test_trigger_option_errors(text: str, fragment: str) -> None:
    err = error(text)
    assert fragment in err.message
    assert err.usage == USAGE_TRIGGER


def test_trigger_misspelt_option_is_suggested() -> None:
    assert error("trigger sms 5 evry day").suggestions == ("every",)


def test_trigger_delete() -> None:
    assert parse_command(f"trigger delete {SID}") == DeleteTrigger(SID)
    err = error("trigger delete")
    assert "`/usage trigger delete UT…`" in err.message
    assert err.usage == USAGE_TRIGGER_DELETE


# --- triggers / untrigger -----------------------------------------------------------


def test_list_triggers() -> None:
    assert parse_command("triggers") == ListTriggers()
    assert parse_command("triggers Spend") == ListTriggers("totalprice")


def test_list_triggers_errors() -> None:
    err = error("triggers smss")
    assert err.message == "Unknown category `smss`."
    assert err.usage == USAGE_TRIGGERS
    assert "`calls`" in error("triggers sms calls").message


def test_untrigger() -> None:
    assert parse_command(f"untrigger {SID}") == DeleteTrigger(SID)
    # Upper-case hex is accepted and stored as Twilio writes SIDs.
    assert parse_command(f"untrigger {SID.upper()}") == DeleteTrigger(SID)


@pytest.mark.parametrize(
    "sid",
    ["UT123", "ut" + "0" * 32, "UT" + "g" * 32, "UT" + "0" * 33, "AC" + "0" * 32, "<@U123>"],
)
def test_untrigger_rejects_bad_sids(sid: str) -> None:
    err = error(f"untrigger {sid}")
    assert "32 hex digits" in err.message
    assert err.usage == USAGE_UNTRIGGER


def test_untrigger_missing_or_extra() -> None:
    err = error("untrigger")
    assert "which trigger" in err.message
    assert err.usage == USAGE_UNTRIGGER
    assert "`extra`" in error(f"untrigger {SID} extra").message


# --- alerts ----------------------------------------------------------------------------


def test_alerts_failed() -> None:
    assert parse_command("alerts failed") == ListFailedAlerts()
    assert parse_command("Alerts FAILED") == ListFailedAlerts()


@pytest.mark.parametrize("text", ["alerts", "alerts pending", "alerts failed now"])
def test_alerts_errors(text: str) -> None:
    err = error(text)
    assert err.usage == USAGE_ALERTS
    assert err.usage == "/usage alerts failed"


# --- digest / digests ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("digest daily", SubscribeDigest("daily", 9 * 60)),
        ("digest weekly", SubscribeDigest("weekly")),
        ("digest monthly", SubscribeDigest("monthly")),
        ("digest day", SubscribeDigest("daily")),
        ("digest week", SubscribeDigest("weekly")),
        ("digest month", SubscribeDigest("monthly")),
        ("digest every week", SubscribeDigest("weekly")),
        ("DIGEST Weekly AT 17:45", SubscribeDigest("weekly", 17 * 60 + 45)),
        ("digest daily at 9", SubscribeDigest("daily", 540)),
        ("digest daily at 9:30", SubscribeDigest("daily", 570)),
        ("digest daily at 09:30", SubscribeDigest("daily", 570)),
        ("digest daily at 0", SubscribeDigest("daily", 0)),
        ("digest daily at 00:00", SubscribeDigest("daily", 0)),
        ("digest daily at 23:59", SubscribeDigest("daily", 23 * 60 + 59)),
        ("digest at 8:15 monthly", SubscribeDigest("monthly", 8 * 60 + 15)),
        ("digest daily 7:05", SubscribeDigest("daily", 7 * 60 + 5)),
        ("digest daily daily", SubscribeDigest("daily")),
    ],
)
def test_subscribe_digest(text: str, expected: SubscribeDigest) -> None:
    assert parse_command(text) == expected


def test_digest_alone_shows_the_form() -> None:
    err = error("digest")
    assert "`/usage digest daily at 09:30`" in err.message
    assert "`/usage digest off`" in err.message
    assert err.usage == USAGE_DIGEST


@pytest.mark.parametrize("text", ["digest off", "digest OFF", "digest stop"])
def test_digest_off(text: str) -> None:
    assert parse_command(text) == UnsubscribeDigest()


def test_digest_off_takes_nothing_more() -> None:
    err = error("digest off daily")
    assert "`daily`" in err.message
    assert err.usage == USAGE_DIGEST_OFF
    err = error("digest daily off")
    assert "`/usage digest off`" in err.message
    assert err.usage == USAGE_DIGEST_OFF


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("digest daily at 25:00", "`25:00` isn't a time of day: hours go from 0 to 23."),
        ("digest daily at 24:00", "hours go from 0 to 23"),
        ("digest daily at 24", "hours go from 0 to 23"),
        ("digest daily at 9:60", "`9:60` isn't a time of day: minutes go from 00 to 59."),
        ("digest daily at 17h", "`17h` isn't a time of day; write HH:MM on the 24-hour clock"),
        ("digest daily at 9:5", "`9:5` isn't a time of day"),
        ("digest daily at 9.30", "`9.30` isn't a time of day"),
        ("digest daily at 009:00", "`009:00` isn't a time of day"),
        ("digest daily at noon", "`noon` isn't a time of day"),
        ("digest daily at -5", "`-5` isn't a time of day"),
        ("digest daily at ٩:٣٠", "isn't a time of day"),
        ("digest daily at", "after `at`"),
        ("digest daily at 9 at 10", "only once"),
        ("digest daily 9 10", "only once"),
        ("digest daily weekly", "only once"),
        ("digest every", "after `every`"),
        ("digest every year", "not `year`"),
        ("digest hourly", "Digests go out `daily`, `weekly` or `monthly`, not `hourly`."),
        ("digest at 9", "`/usage digest daily at 09:00`"),
        ("digest daily sms", "A digest covers every category; leave out `sms`."),
        ("digest daily payload", "I don't understand `payload` after `digest`."),
        ("digest <@U123>", "mentions, channels and links"),
    ],
)
def test_digest_errors(text: str, fragment: str) -> None:
    err = error(text)
    assert fragment in err.message
    assert err.usage == USAGE_DIGEST


@pytest.mark.parametrize(
    "time, suggestion",
    [("5pm", "at 17:00"), ("5:30pm", "at 17:30"), ("9am", "at 09:00"), ("12am", "at 00:00"), ("12pm", "at 12:00")],
)
def test_digest_twelve_hour_times_are_translated(time: str, suggestion: str) -> None:
    err = error(f"digest daily at {time}")
    assert f"`{suggestion}`" in err.message
    assert "24-hour" in err.message
    assert err.suggestions == (suggestion,)


def test_digest_time_with_separate_am_pm_word() -> None:
    err = error("digest daily at 5 pm")
    assert err.suggestions == ("at 17:00",)


def test_digest_misspelt_cadence_is_suggested() -> None:
    assert error("digest wekly").suggestions == ("weekly",)
    assert error("digest daily att 9").suggestions == ("at",)


def test_list_digests() -> None:
    assert parse_command("digests") == ListDigests()
    assert parse_command("DIGESTS") == ListDigests()


def test_digests_takes_nothing_more() -> None:
    err = error("digests daily")
    assert "`daily`" in err.message
    assert err.usage == USAGE_DIGESTS
    assert error("digests off").suggestions == ("digest off",)


# --- budget / budgets -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("budget $500 monthly", SetBudget(Decimal(500), "monthly")),
        ("budget 500 monthly", SetBudget(Decimal(500), "monthly")),
        ("budget 500usd daily", SetBudget(Decimal(500), "daily")),
        ("budget 500USD daily", SetBudget(Decimal(500), "daily")),
        ("budget 500 usd daily", SetBudget(Decimal(500), "daily")),
        ("budget $1,250.50 monthly", SetBudget(Decimal("1250.50"), "monthly")),
        ("budget $0.01 day", SetBudget(Decimal("0.01"), "daily")),
        ("budget 12.5 month", SetBudget(Decimal("12.5"), "monthly")),
        ("budget $500 monthly sms", SetBudget(Decimal(500), "monthly", "sms")),
        ("budget $500 daily messages", SetBudget(Decimal(500), "daily", "sms")),
        ("budget monthly $500 sms", SetBudget(Decimal(500), "monthly", "sms")),
        ("budget sms $500 monthly", SetBudget(Decimal(500), "monthly", "sms")),
        ("budget $500 every month", SetBudget(Decimal(500), "monthly")),
        ("budget $500 per day calls", SetBudget(Decimal(500), "daily", "calls")),
        ("budget $500 monthly monthly", SetBudget(Decimal(500), "monthly")),
        ("BUDGET $500 MONTHLY SMS", SetBudget(Decimal(500), "monthly", "sms")),
        ("budget 1,000,000,000 daily", SetBudget(Decimal(10**9), "daily")),
        # Total spend is the budget without a category.
        ("budget $500 monthly spend", SetBudget(Decimal(500), "monthly")),
        ("budget $500 monthly totalprice", SetBudget(Decimal(500), "monthly")),
    ],
)
def test_set_budget(text: str, expected: SetBudget) -> None:
    result = parse_command(text)
    assert result == expected
    assert isinstance(result, SetBudget)
    assert isinstance(result.amount, Decimal)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("budget", "`/usage budget $500 monthly`"),
        ("budget monthly", "Say the amount, e.g. `/usage budget $500 monthly`."),
        ("budget daily sms", "`/usage budget $500 daily sms`"),
        ("budget $500", "Say whether `$500` is a `daily` or `monthly` budget"),
        ("budget $500 sms", "`/usage budget $500 monthly sms`"),
        ("budget $0 monthly", "more than zero, not `$0`"),
        ("budget 0.00 monthly", "more than zero"),
        ("budget -5 monthly", "more than zero, not `-5`"),
        ("budget -$5 monthly", "more than zero"),
        ("budget $-5 monthly", "more than zero"),
        ("budget 1000000000.01 monthly", "too large for a budget"),
        ("budget 1" + "0" * 200 + " monthly", "too large for a budget"),
        ("budget $1.005 monthly", "`$1.005` has fractions of a cent"),
        ("budget $ monthly", "`$` isn't an amount"),
        ("budget +500 monthly", "`+500` isn't an amount"),
        ("budget 1e9999 monthly", "`1e9999` isn't an amount"),
        ("budget 1,00 monthly", "`1,00` isn't an amount"),
        ("budget $500usd monthly", "isn't an amount"),
        ("budget ٥٠٠ monthly", "isn't an amount"),
        ("budget $5 $6 monthly", "amount only once"),
        ("budget $5 daily monthly", "only once"),
        ("budget $5 weekly", "Budgets are `daily` or `monthly`, not `weekly`."),
        ("budget $5 yearly", "not `yearly`"),
        ("budget $5 every week", "not `week`"),
        ("budget $5 every", "after `every`"),
        ("budget $5 monthly sms calls", "(got `sms` and `calls`)"),
        ("budget $5 monthly sms payload", "I don't understand `payload` after `budget`."),
        ("budget $5 monthly smss", "Unknown category `smss`."),
        ("budget $5 monthly public", "`public`"),
        ("budget $5 monthly <!channel>", "mentions, channels and links"),
    ],
)
def test_set_budget_errors(text: str, fragment: str) -> None:
    err = error(text)
    assert fragment in err.message
    assert err.usage == USAGE_BUDGET


def test_budget_unknown_category_suggests_close_ones() -> None:
    assert error("budget $5 monthly smss").suggestions[0] == "sms"
    assert error("budget $5 monthy").suggestions == ("monthly",)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("budget off monthly", RemoveBudget("monthly")),
        ("budget off daily sms", RemoveBudget("daily", "sms")),
        ("budget off sms day", RemoveBudget("daily", "sms")),
        ("budget off every month", RemoveBudget("monthly")),
        ("budget OFF monthly spend", RemoveBudget("monthly")),
        ("budget remove monthly", RemoveBudget("monthly")),
        ("budget delete daily calls", RemoveBudget("daily", "calls")),
    ],
)
def test_remove_budget(text: str, expected: RemoveBudget) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("budget off", "Say which budget to remove, e.g. `/usage budget off monthly`"),
        ("budget off sms", "`/usage budget off monthly sms`"),
        ("budget off $500 monthly", "`budget off` takes no amount"),
        ("budget off weekly", "not `weekly`"),
        ("budget off monthly payload", "`payload`"),
        ("budget $500 monthly off", "put `off` first"),
    ],
)
def test_remove_budget_errors(text: str, fragment: str) -> None:
    err = error(text)
    assert fragment in err.message
    assert err.usage == USAGE_BUDGET_OFF


def test_list_budgets() -> None:
    assert parse_command("budgets") == ListBudgets()
    err = error("budgets sms")
    assert "`sms`" in err.message
    assert err.usage == USAGE_BUDGETS


# --- audit -------------------------------------------------------------------------------


def test_audit() -> None:
    assert parse_command("audit") == ShowAudit(20)
    assert parse_command("audit 1") == ShowAudit(1)
    assert parse_command("Audit 50") == ShowAudit(50)
    assert parse_command("audit 100") == ShowAudit(100)


@pytest.mark.parametrize("word", ["0", "101", "-5", "2.5", "1000", "9" * 500, "all", "٥", "<@U123>"])
def test_audit_count_out_of_range(word: str) -> None:
    err = error(f"audit {word}")
    assert "from 1 to 100" in err.message
    assert err.usage == USAGE_AUDIT
    assert "<@" not in err.message


def test_audit_takes_one_number() -> None:
    err = error("audit 5 6")
    assert "`6`" in err.message
    assert err.usage == USAGE_AUDIT


# --- help lines ------------------------------------------------------------------------

NEW_FORMS = (
    USAGE_DIGEST,
    USAGE_DIGEST_OFF,
    USAGE_DIGESTS,
    USAGE_BUDGET,
    USAGE_BUDGET_OFF,
    USAGE_BUDGETS,
    USAGE_AUDIT,
)


def test_usage_lines_cover_every_form() -> None:
    forms = [form for form, _ in USAGE_LINES]
    for usage in (
        USAGE_HELP,
        USAGE_RANGE,
        USAGE_SERIES,
        USAGE_TRIGGER,
        USAGE_TRIGGERS,
        USAGE_UNTRIGGER,
        USAGE_ALERTS,
        *NEW_FORMS,
    ):
        assert usage in forms
    assert any("by-account" in form for form in forms)
    assert any(form.startswith("/usage today|yesterday|this-month|last-month|all-time") for form in forms)
    assert all(form.startswith("/usage ") and explanation for form, explanation in USAGE_LINES)


def test_usage_lines_are_in_help_order() -> None:
    forms = [form for form, _ in USAGE_LINES]
    assert forms.index(USAGE_ALERTS) < forms.index(USAGE_DIGEST) < forms.index(USAGE_DIGESTS)
    assert forms.index(USAGE_DIGESTS) < forms.index(USAGE_BUDGET) < forms.index(USAGE_BUDGETS)
    assert forms.index(USAGE_BUDGETS) < forms.index(USAGE_AUDIT) == len(forms) - 1


# --- properties ------------------------------------------------------------------------

GRAMMAR_WORDS = [
    "help",
    "today",
    "yesterday",
    "this-month",
    "last-month",
    "all-time",
    "this",
    "month",
    "daily",
    "monthly",
    "yearly",
    "trigger",
    "triggers",
    "untrigger",
    "delete",
    "alerts",
    "failed",
    "all",
    "public",
    "by",
    "by-account",
    "count",
    "usage",
    "price",
    "every",
    "day",
    "year",
    "name",
    "digest",
    "digests",
    "budget",
    "budgets",
    "audit",
    "weekly",
    "week",
    "off",
    "stop",
    "remove",
    "at",
    "per",
    "usd",
    "9",
    "9:30",
    "09:30",
    "25:00",
    "9:60",
    "5pm",
    "pm",
    "$1,250.50",
    "$1.005",
    "1000000001",
    "100",
    "101",
    "sms",
    "spend",
    "payload",
    "1000",
    "+1000",
    "$25",
    "25usd",
    "-5",
    "0",
    "7",
    "40",
    "1e9999",
    "2026-11-01",
    "2026-02-30",
    "2026-11-01..2026-11-20",
    "2026-11-20..2026-11-01",
    "..",
    SID,
    "UT123",
    "<@U123|bob>",
    "&amp;",
    "&lt;",
    "🎉",
    "`",
]
grammar_text = st.lists(
    st.one_of(st.sampled_from(GRAMMAR_WORDS), st.text(max_size=8)),
    max_size=8,
).map(" ".join)
any_text = st.one_of(st.text(), grammar_text)
any_today = st.one_of(st.none(), st.dates())


def check_result(result: object) -> None:
    assert isinstance(result, (*COMMAND_TYPES, ParseError))
    if isinstance(result, ParseError):
        assert result.message.strip()
        assert len(result.message) < 300
        assert result.usage.startswith("/usage ")
        assert "\n" not in result.message


@settings(max_examples=300)
@given(any_text, any_today)
def test_never_raises_on_any_text(text: str, today: date | None) -> None:
    check_result(parse_command(text, today))


@settings(max_examples=300)
@given(grammar_text)
def test_never_raises_on_grammar_words_and_junk(text: str) -> None:
    check_result(parse_command(text, TODAY))


@given(st.text(min_size=MAX_TEXT_LENGTH + 1, max_size=MAX_TEXT_LENGTH + 200))
def test_long_text_is_always_rejected_briefly(text: str) -> None:
    err = parse_command(text)
    assert isinstance(err, ParseError)
    assert "too long" in err.message
    assert len(err.message) < 120


@given(st.dates(), st.integers(min_value=0, max_value=400), st.integers(min_value=0, max_value=400))
def test_valid_date_ranges_round_trip(start: date, length: int, slack: int) -> None:
    end = min(start + timedelta(days=length), date.max)
    today = min(end + timedelta(days=slack), date.max)
    text = f"{start.isoformat()}..{end.isoformat()}"
    assert parse_command(text, today) == UsageQuery(DateRange(start, end))
    assert parse_command(start.isoformat(), today) == UsageQuery(DateRange(start, start))


@given(st.dates(), st.dates())
def test_any_two_dates_give_a_range_or_a_reason(a: date, b: date) -> None:
    result = parse_command(f"{a.isoformat()}..{b.isoformat()}")
    if a <= b:
        assert result == UsageQuery(DateRange(a, b))
    else:
        assert isinstance(result, ParseError)
        assert "ends before it starts" in result.message


@given(st.integers(min_value=1, max_value=10**12))
def test_whole_trigger_values_round_trip(value: int) -> None:
    assert parse_command(f"trigger sms {value}") == CreateTrigger("sms", str(value), "count")
    assert parse_command(f"trigger sms +{value}") == CreateTrigger("sms", f"+{value}", "count")
    assert parse_command(f"trigger spend ${value}") == CreateTrigger("totalprice", str(value), "price")


@given(
    st.integers(min_value=0, max_value=23),
    st.integers(min_value=0, max_value=59),
    st.sampled_from(["daily", "weekly", "monthly"]),
)
def test_digest_times_round_trip(hour: int, minute: int, cadence: str) -> None:
    expected = SubscribeDigest(cadence, hour * 60 + minute)
    assert parse_command(f"digest {cadence} at {hour:02d}:{minute:02d}") == expected
    assert parse_command(f"digest at {hour}:{minute:02d} {cadence}") == expected


@given(
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10**9), places=2), st.sampled_from(["daily", "monthly"])
)
def test_budget_amounts_round_trip(amount: Decimal, period: str) -> None:
    assert parse_command(f"budget ${amount} {period}") == SetBudget(amount, period)
    assert parse_command(f"budget {period} {amount}usd sms") == SetBudget(amount, period, "sms")
    assert parse_command(f"budget ${amount:,} {period}") == SetBudget(amount, period)


@given(st.integers(min_value=-(10**4), max_value=10**4))
def test_audit_counts(count: int) -> None:
    result = parse_command(f"audit {count}")
    if 1 <= count <= 100:
        assert result == ShowAudit(count)
    else:
        assert isinstance(result, ParseError)
        assert result.usage == USAGE_AUDIT
