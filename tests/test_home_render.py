"""The Home view and the forms as pure functions: within Slack's view limits however much there
is to show, and the manifests declaring what the listeners answer."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest

from bot.commands.modals import FORMS, form_view, outcome_view, working_view
from bot.home.model import HomeView, LocalRecords
from bot.home.render import HOME_ACTIONS, render_home
from bot.home.snapshot import Snapshot, TriggerFigures
from bot.model import Message, StoredAlert
from bot.render.blocks import section_block
from bot.reports.model import Budget, Subscription
from handlers.modals import SHORTCUT
from tests.slack_surfaces import check_view, view_text

ROOT = Path(__file__).resolve().parent.parent
NOW = time.time()


def crowded() -> HomeView:
    """Far more of everything than fits: 2,000 triggers with long names, 500 budgets, …"""
    long = "ü" * 64 + " <@U1> & `x`"
    triggers = [
        TriggerFigures(f"UT{i:032x}", "sms-outbound-longcode" * 3, "+1000000", "999999.5", "count", "monthly", long)
        for i in range(2000)
    ]
    snap = Snapshot(
        fetched_at=NOW,
        today="1234567.891",
        month="98765432.1",
        pace="On pace for *$1.00* this month",
        daily=[(f"2026-11-{d:02d}", str(d * 1000) if d % 3 else None) for d in range(1, 15)],
        triggers=triggers,
        usage_at=NOW,
        triggers_at=NOW,
        usage_error="x" * 5000,
    )
    failed = [
        StoredAlert(
            i, "failed", None, None, "UT1", "sms" * 40, "count", "1", "2", "", NOW, "C1", "U1", long, "C1", "e" * 900
        )
        for i in range(50)
    ]
    local = LocalRecords(
        owners={t.sid: ("C0123456789", "U0123456789") for t in triggers},
        budgets=[
            Budget(i, f"C{i:010d}", "monthly", "totalprice", Decimal("1e9"), "UT1", "U1", NOW) for i in range(500)
        ],
        digests=[Subscription(i, f"C{i:010d}", "weekly", 540, "U1", NOW) for i in range(500)],
        watched=[(f"C{i:010d}", "`sms` spikes over 3× its usual day " * 20) for i in range(500)],
        unsent={"pending": 10**6, "held": 5, "failed": 50},
        failed=failed,
        snoozes=[("UT1", f"C{i:010d}", NOW + 3600, "U1") for i in range(20)],
        error="database is down " * 100,
    )
    return HomeView("U0PAT", snap, local, "Europe/Paris", NOW)


def test_a_crowded_home_stays_within_slacks_limits() -> None:
    view = render_home(crowded())
    check_view(view)
    assert len(view["blocks"]) <= 100
    text = view_text(view)
    assert "… and" in text and "more" in text  # what did not fit is counted, not dropped silently


@pytest.mark.parametrize(
    "home",
    [
        HomeView("U0PAT", None, LocalRecords(), "UTC", NOW),  # nothing fetched yet
        HomeView("U0PAT", Snapshot(fetched_at=NOW, usage_error="Twilio is unavailable"), LocalRecords(), "UTC", NOW),
        HomeView("U0PAT", Snapshot(fetched_at=NOW), LocalRecords(error="The database is down"), "UTC", NOW),
    ],
)
def test_an_empty_or_failing_home_is_never_blank(home: HomeView) -> None:
    view = render_home(home)
    check_view(view)
    actions = [e["action_id"] for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert tuple(actions) == HOME_ACTIONS
    assert len(view["blocks"]) > 5


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("channel", ["", "C0HERE"])
def test_every_form_view_is_valid(form: str, channel: str) -> None:
    check_view(form_view(form, channel_id=channel, origin="home"))
    check_view(working_view(form))
    long = Message(text="x", blocks=[section_block("y" * 5000)] * 150 + [{"type": "actions", "elements": []}])
    check_view(outcome_view(form, long))


def test_the_manifests_declare_what_the_listeners_answer() -> None:
    http = (ROOT / "manifest.yml").read_text()
    socket = (ROOT / "manifest.socket.yml").read_text()
    for manifest in (http, socket):
        assert f"callback_id: {SHORTCUT}" in manifest
        assert "home_tab_enabled: true" in manifest
        assert "- app_home_opened" in manifest
    assert "socket_mode_enabled: false" in http and "socket_mode_enabled: true" in socket
    assert "message_menu_options_url: https://usage-bot.example.com/slack/events" in http
    assert "request_url: https://usage-bot.example.com/slack/events" in http
    assert "https://" not in socket.split("oauth_config:")[0].split("features:")[1]  # no URL: Socket Mode
