"""Settings from the environment (and `.env`), validated once at start-up."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

REQUIRED = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")
DEFAULT_DATABASE_URL = "sqlite:///usage-bot.db"
DEFAULT_RETENTION_DAYS = 90
DEFAULT_WATCH_MIN_EXCESS = 5.0


class ConfigError(Exception):
    """Start-up configuration is unusable; the message is one line meant for an operator."""


@dataclass(frozen=True)
class Settings:
    slack_bot_token: str
    slack_signing_secret: str
    twilio_account_sid: str
    twilio_auth_token: str
    twilio_api_key: str = ""
    twilio_api_secret: str = ""
    public_url: str = ""
    database_url: str = DEFAULT_DATABASE_URL
    alert_channel: str = ""
    usage_admins: frozenset[str] = field(default_factory=frozenset)
    slack_api_url: str = "https://slack.com/api/"
    slack_app_token: str = ""  # xapp-…: Socket Mode only (`python -m bot socket`)
    twilio_api_url: str = "https://api.twilio.com"
    usage_timezone: str = "UTC"
    # Run the alert delivery loop inside each web process (see README, "Alert delivery").
    delivery_in_web: bool = True
    # Days to keep delivered alerts and sent report runs; 0 keeps everything (README, "Retention").
    retention_days: int = DEFAULT_RETENTION_DAYS
    # Dollars above the usual spend so far today before a spend spike pages anyone (bot/watch/).
    watch_min_excess: float = DEFAULT_WATCH_MIN_EXCESS
    # The Unix socket of SQLite's single writer, which gunicorn.conf.py starts and names to its
    # workers (INTAKE_WRITER_SOCKET); empty: each process stores its callbacks itself.
    intake_writer_socket: str = ""

    def __repr__(self) -> str:  # never let a secret reach a log line through repr()
        return f"Settings(account={self.twilio_account_sid}, database={_redact_url(self.database_url)})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, required: Sequence[str] = REQUIRED) -> Settings:
        """Build settings from `env` (default: os.environ after loading `.env`).

        `required` narrows the check for tools that need less than the web app (the CLI).
        """
        if env is None:
            from dotenv import load_dotenv

            load_dotenv()
            env = os.environ
        values = {k: v.strip() for k, v in env.items()}
        missing = [name for name in required if not values.get(name)]
        if missing:
            raise ConfigError("Missing required environment variable(s): " + ", ".join(missing) + " (see .env.example)")
        if values.get("SLACK_CLIENT_ID") and values.get("SLACK_CLIENT_SECRET"):
            # Bolt would silently switch to OAuth mode and ignore SLACK_BOT_TOKEN.
            raise ConfigError("Unset SLACK_CLIENT_ID and SLACK_CLIENT_SECRET: usage-bot uses SLACK_BOT_TOKEN")
        tz = values.get("USAGE_TIMEZONE") or "UTC"
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"USAGE_TIMEZONE={tz!r} is not an IANA time zone (for example Europe/Paris)") from None
        if bool(values.get("TWILIO_API_KEY")) != bool(values.get("TWILIO_API_SECRET")):
            raise ConfigError("Set both TWILIO_API_KEY and TWILIO_API_SECRET, or neither")
        retention_days = _retention_days(values.get("RETENTION_DAYS", ""))
        app_token = values.get("SLACK_APP_TOKEN", "")
        if app_token and not app_token.startswith("xapp-"):
            raise ConfigError("SLACK_APP_TOKEN must be an app-level token (xapp-…), with the connections:write scope")
        return cls(
            slack_bot_token=values.get("SLACK_BOT_TOKEN", ""),
            slack_signing_secret=values.get("SLACK_SIGNING_SECRET", ""),
            twilio_account_sid=values.get("TWILIO_ACCOUNT_SID", ""),
            twilio_auth_token=values.get("TWILIO_AUTH_TOKEN", ""),
            twilio_api_key=values.get("TWILIO_API_KEY", ""),
            twilio_api_secret=values.get("TWILIO_API_SECRET", ""),
            public_url=values.get("PUBLIC_URL", "").rstrip("/"),
            database_url=normalize_database_url(values.get("DATABASE_URL") or DEFAULT_DATABASE_URL),
            alert_channel=values.get("ALERT_CHANNEL", ""),
            usage_admins=frozenset(u.strip() for u in values.get("USAGE_ADMINS", "").split(",") if u.strip()),
            slack_api_url=values.get("SLACK_API_URL") or "https://slack.com/api/",
            slack_app_token=app_token,
            twilio_api_url=(values.get("TWILIO_API_URL") or "https://api.twilio.com").rstrip("/"),
            usage_timezone=tz,
            delivery_in_web=delivers_in_web(values),
            retention_days=retention_days,
            watch_min_excess=_watch_min_excess(values.get("WATCH_MIN_EXCESS", "")),
            intake_writer_socket=values.get(INTAKE_WRITER_SOCKET, ""),
        )


# Set by gunicorn.conf.py for the web workers it forks, not by users (README, "Deploy to a PaaS":
# the single writer).
INTAKE_WRITER_SOCKET = "INTAKE_WRITER_SOCKET"


def is_sqlite_file(values: Mapping[str, str]) -> bool:
    """Is the database (DATABASE_URL, or the default) a SQLite file? Read by gunicorn.conf.py, which
    then starts SQLite's single writer (an in-memory database is each process's own: none)."""
    from sqlalchemy.engine import make_url  # here: gunicorn.conf.py reads this module before any app code
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(normalize_database_url(values.get("DATABASE_URL") or DEFAULT_DATABASE_URL))
    except ArgumentError:
        return False  # not a database URL: the workers say so when they start
    # The same test as bot/store/database.py's for a writer lock: a SQLite database with a file.
    return url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")


def delivers_in_web(values: Mapping[str, str]) -> bool:
    """DELIVERY_IN_WEB: does the web command deliver alerts (default yes)? Read here for the app and
    by gunicorn.conf.py, which starts the web command's relay process."""
    return values.get("DELIVERY_IN_WEB", "true").lower() not in ("0", "false", "no", "off")


def configure_logging() -> None:
    """Log lines with time, level and logger, at LOG_LEVEL (default INFO), which `.env` may set:
    it is loaded here too, as processes configure logging before they read their settings."""
    from dotenv import load_dotenv

    load_dotenv()
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _retention_days(text: str) -> int:
    """RETENTION_DAYS: a whole number of days, 0 (keep everything) or more; empty is the default."""
    if not text:
        return DEFAULT_RETENTION_DAYS
    if not (text.isascii() and text.isdigit()) or len(text) > 6:
        raise ConfigError(
            f"RETENTION_DAYS={text[:20]!r} is not a whole number of days from 0 to 999999 (0 keeps everything)"
        )
    return int(text)


def _watch_min_excess(text: str) -> float:
    """WATCH_MIN_EXCESS: dollars, 0 or more (`5`, `2.50`, `$10`); empty is the default."""
    if not text:
        return DEFAULT_WATCH_MIN_EXCESS
    number = text.removeprefix("$")
    try:
        value = float(number) if number.replace(".", "", 1).isdigit() and number.isascii() else -1.0
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1_000_000:
        raise ConfigError(f"WATCH_MIN_EXCESS={text[:20]!r} is not an amount of dollars from 0 to 1000000 (e.g. 5)")
    return value


def normalize_database_url(url: str) -> str:
    """Accept PaaS-style `postgres://` and plain `postgresql://`; use the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _redact_url(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url
