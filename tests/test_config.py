"""Settings from the environment."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, Settings, is_sqlite_file, normalize_database_url

BASE = {
    "SLACK_BOT_TOKEN": "xoxb-secret-bot-token",
    "SLACK_SIGNING_SECRET": "signing-secret-value",
    "TWILIO_ACCOUNT_SID": "AC" + "a" * 32,
    "TWILIO_AUTH_TOKEN": "twilio-secret-token",
}


def test_missing_required_variables_are_all_named_in_one_line() -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"SLACK_BOT_TOKEN": "xoxb-1", "TWILIO_AUTH_TOKEN": "  "})
    message = str(err.value)
    assert "\n" not in message
    for name in ("SLACK_SIGNING_SECRET", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
        assert name in message
    assert "SLACK_BOT_TOKEN" not in message


def test_every_variable_is_read() -> None:
    env = dict(
        BASE,
        TWILIO_API_KEY="SK123",
        TWILIO_API_SECRET="key-secret",
        PUBLIC_URL="https://bot.example.com/",
        DATABASE_URL="postgres://u:p@db:5432/usage",
        ALERT_CHANNEL="C0ALERTS",
        USAGE_ADMINS="U1, U2,,",
        SLACK_API_URL="http://127.0.0.1:9/api/",
        TWILIO_API_URL="http://127.0.0.1:8/",
        USAGE_TIMEZONE="Europe/Paris",
        DELIVERY_IN_WEB="false",
        WATCH_MIN_EXCESS="$12.50",
    )
    s = Settings.from_env(env)
    assert s.public_url == "https://bot.example.com"
    assert s.database_url == "postgresql+psycopg://u:p@db:5432/usage"
    assert s.alert_channel == "C0ALERTS"
    assert s.usage_admins == frozenset({"U1", "U2"})
    assert s.slack_api_url == "http://127.0.0.1:9/api/"
    assert s.twilio_api_url == "http://127.0.0.1:8"
    assert s.usage_timezone == "Europe/Paris"
    assert (s.twilio_api_key, s.twilio_api_secret) == ("SK123", "key-secret")
    assert s.delivery_in_web is False
    assert s.watch_min_excess == 12.5


def test_defaults() -> None:
    s = Settings.from_env(BASE)
    assert s.database_url == "sqlite:///usage-bot.db"
    assert s.slack_api_url == "https://slack.com/api/"
    assert s.twilio_api_url == "https://api.twilio.com"
    assert s.usage_timezone == "UTC"
    assert s.usage_admins == frozenset()
    assert s.delivery_in_web is True
    assert s.watch_min_excess == 5.0


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgresql://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_database_urls(url: str, expected: str) -> None:
    assert normalize_database_url(url) == expected


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"USAGE_TIMEZONE": "Mars/Olympus"}, "USAGE_TIMEZONE"),
        ({"TWILIO_API_KEY": "SK1"}, "TWILIO_API_SECRET"),
        ({"SLACK_CLIENT_ID": "1", "SLACK_CLIENT_SECRET": "2"}, "SLACK_CLIENT_ID"),
        ({"WATCH_MIN_EXCESS": "-5"}, "WATCH_MIN_EXCESS"),
        ({"WATCH_MIN_EXCESS": "five"}, "WATCH_MIN_EXCESS"),
        ({"WATCH_MIN_EXCESS": "1e9"}, "WATCH_MIN_EXCESS"),
    ],
)
def test_inconsistent_settings_are_refused(extra: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        Settings.from_env(dict(BASE, **extra))


def test_secrets_stay_out_of_repr() -> None:
    env = dict(BASE, DATABASE_URL="postgres://user:dbpassword@db/x", TWILIO_API_SECRET="k", TWILIO_API_KEY="SK1")
    text = repr(Settings.from_env(env))
    for secret in ("xoxb-secret-bot-token", "signing-secret-value", "twilio-secret-token", "dbpassword"):
        assert secret not in text


@pytest.mark.parametrize(
    ("url", "single_writer"),
    [
        ("", True),  # the default, a file
        ("sqlite:///data/usage-bot.db", True),
        ("sqlite:///:memory:", False),  # each process's own: nothing to share
        ("sqlite://", False),
        ("postgres://u@db.example.com/bot", False),
        ("postgresql://u@db.example.com/bot", False),
        ("not a database url", False),  # the workers say what is wrong with it
    ],
)
def test_the_web_command_runs_a_single_writer_for_a_sqlite_file_only(url: str, single_writer: bool) -> None:
    assert is_sqlite_file({"DATABASE_URL": url} if url else {}) is single_writer
