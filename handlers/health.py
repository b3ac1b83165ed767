"""`GET /healthz`: is the database answering?"""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from bot.alerts.outbox import OutboxStatus, count_unsent
from bot.slack import SLACK_AUTH_STATE
from bot.store import Store


def health_blueprint(store: Store) -> Blueprint:
    bp = Blueprint("health", __name__)

    @bp.get("/healthz")
    def healthz() -> ResponseReturnValue:
        if not store.ping():
            return jsonify(status="unavailable", database="unreachable"), 503
        # The app is up while the database answers; delivery trouble is reported, loudly, beside it.
        slack_error = store.get_state(SLACK_AUTH_STATE) or ""
        alerts = count_unsent(store)
        delivery = {
            "pending": alerts.get(OutboxStatus.PENDING, 0) + alerts.get(OutboxStatus.SENDING, 0),
            "failed": alerts.get(OutboxStatus.FAILED, 0),
            "held": alerts.get(OutboxStatus.HELD, 0),  # snoozed: stored, released when the snooze ends
            "slack_token": f"rejected by Slack: {slack_error}" if slack_error else "ok",
        }
        return jsonify(status="ok", alerts=delivery)

    return bp
