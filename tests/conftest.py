"""Fixtures: the fakes of Slack and Twilio, settings pointing at them, and the databases."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from slack_sdk import WebClient

from bot.config import Settings, normalize_database_url
from bot.slack import make_slack_clients
from bot.store import Store
from bot.usage.client import UsageClient
from tests.databases import postgres_schema
from tests.fakes.slack import VALID_TOKEN, FakeSlack
from tests.fakes.twilio import FakeTwilio
from tests.slack_requests import SIGNING_SECRET

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "twilio-test-auth-token"
PUBLIC_URL = "https://usage-bot.example.com"

_DATABASES = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        yield slack


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as twilio:
        yield twilio


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """The app's store on a fresh database, migrated to the newest schema."""
    store = Store.connect(database_url)
    store.migrate()
    yield store
    store.dispose()


@pytest.fixture
def usage(fake_twilio: FakeTwilio) -> Iterator[UsageClient]:
    """Our Twilio client on the fake (no retries: tests want the first answer)."""
    with UsageClient(ACCOUNT_SID, AUTH_TOKEN, base_url=fake_twilio.url, max_retries=0) as client:
        yield client


@pytest.fixture
def clients(fake_slack: FakeSlack) -> tuple[WebClient, WebClient]:
    """The relay's (poster, lookup) Slack clients, on the fake."""
    return make_slack_clients(VALID_TOKEN, fake_slack.api_url)


@pytest.fixture(params=_DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a private schema on the test PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/usage-bot.db"
        return
    with postgres_schema(os.environ["TEST_DATABASE_URL"], "t_") as (url, _):
        yield url


@pytest.fixture
def sqlite_url(tmp_path: object) -> str:
    return f"sqlite:///{tmp_path}/usage-bot.db"


def make_settings(slack: FakeSlack, twilio: FakeTwilio, database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "slack_bot_token": VALID_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "public_url": PUBLIC_URL,
        "database_url": normalize_database_url(database_url),
        "slack_api_url": slack.api_url,
        "twilio_api_url": twilio.url,
        "delivery_in_web": False,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]
