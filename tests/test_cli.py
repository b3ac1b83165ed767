"""`python -m bot usage …` in a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bot.commands.answer import QueryBot
from bot.commands.grammar import parse_command
from bot.render.plain import render_plain
from bot.usage.client import UsageClient
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN
from tests.fakes.twilio import FakeTwilio

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # A clean environment (and no .env in cwd) so nothing on this machine leaks in.
    base = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=ROOT / "tests",
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_sandbox_needs_no_credentials_and_says_it_is_sample_data() -> None:
    result = run_cli("usage", "--sandbox", "this-month")
    assert result.returncode == 0, result.stderr
    assert "Sample data" in result.stdout
    assert "Total spend: $" in result.stdout
    assert "*" not in result.stdout.replace("•", "")  # mrkdwn stripped


def test_real_account_prints_the_same_answer_as_slack(fake_twilio: FakeTwilio) -> None:
    fake_twilio.add_categories(12)
    env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_API_URL": fake_twilio.url}
    result = run_cli("usage", "today", "all", env=env)
    assert result.returncode == 0, result.stderr
    expected = QueryBot(UsageClient(ACCOUNT_SID, AUTH_TOKEN, base_url=fake_twilio.url)).answer(
        parse_command("today all")
    )
    assert result.stdout.strip() == render_plain(expected).strip()
    assert "Sample data" not in result.stdout


def test_bad_input_exits_2_with_the_right_form() -> None:
    result = run_cli("usage", "--sandbox", "2026-11-20..2026-11-01")
    assert result.returncode == 2
    assert "Usage:" in result.stdout


def test_a_range_starting_in_the_future_exits_2() -> None:
    result = run_cli("usage", "--sandbox", "2999-01-01")
    assert result.returncode == 2
    assert "starts in the future" in result.stdout


def test_missing_credentials_are_named_in_one_line() -> None:
    result = run_cli("usage", "today")
    assert result.returncode == 1
    first_line = result.stderr.splitlines()[0]
    assert "TWILIO_ACCOUNT_SID" in first_line and "TWILIO_AUTH_TOKEN" in first_line
    assert "Traceback" not in result.stderr


def test_twilio_error_exits_1_with_a_clear_message(fake_twilio: FakeTwilio) -> None:
    env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": "wrong", "TWILIO_API_URL": fake_twilio.url}
    result = run_cli("usage", "today", env=env)
    assert result.returncode == 1
    assert "credentials" in result.stdout
    assert "wrong" not in result.stdout + result.stderr


def test_web_app_refuses_to_start_without_its_settings() -> None:
    base = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py")],
        cwd=ROOT / "tests",
        env={**base, "SLACK_BOT_TOKEN": "xoxb-1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    for name in ("SLACK_SIGNING_SECRET", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
        assert name in result.stderr
