from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.commands import (
    MAX_TEXT_LENGTH,
    USAGE_ALERTS,
    USAGE_HELP,
    USAGE_LINES,
    USAGE_PERIOD,
    USAGE_RANGE,
    USAGE_SERIES,
    USAGE_TRIGGER,
    USAGE_TRIGGER_DELETE,
    USAGE_TRIGGERS,
    USAGE_UNTRIGGER,
    parse_command,
)
from bot.model import (
    CreateTrigger,
    DateRange,
    DeleteTrigger,
    HelpCommand,
    ListFailedAlerts,
    ListTriggers,
    ParseError,
    Period,
    SeriesQuery,
    UsageQuery,
)

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


@pytest.mark.parametrize("word", ["digest", "digests", "budget", "budgets", "audit"])
def test_spec_commands_without_a_model_type_say_so(word: str) -> None:
    err = error(f"{word} daily")
    assert f"`/usage {word}`" in err.message
    assert "isn't available" in err.message


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


# --- help lines ------------------------------------------------------------------------


def test_usage_lines_cover_every_form() -> None:
    forms = [form for form, _ in USAGE_LINES]
    for usage in (USAGE_HELP, USAGE_RANGE, USAGE_SERIES, USAGE_TRIGGER, USAGE_TRIGGERS, USAGE_UNTRIGGER, USAGE_ALERTS):
        assert usage in forms
    assert any("by-account" in form for form in forms)
    assert any(form.startswith("/usage today|yesterday|this-month|last-month|all-time") for form in forms)
    assert all(form.startswith("/usage ") and explanation for form, explanation in USAGE_LINES)


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
