"""`GET /healthz`: is the database answering?"""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from bot.store import Store


def health_blueprint(store: Store) -> Blueprint:
    bp = Blueprint("health", __name__)

    @bp.get("/healthz")
    def healthz() -> ResponseReturnValue:
        if not store.ping():
            return jsonify(status="unavailable", database="unreachable"), 503
        return jsonify(status="ok")

    return bp
