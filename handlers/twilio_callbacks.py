"""`/twilio/usage-triggers`: Twilio calls this when a usage trigger fires.

Verify the signature, store the alert (with its outbox row) in one transaction, answer 200 only
once it is committed, then wake the delivery loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import parse_qsl

from flask import Blueprint, Response, request
from sqlalchemy.exc import SQLAlchemyError

from bot.alerts.receive import AlertWriter, parse_callback
from bot.alerts.signature import is_valid_signature

log = logging.getLogger(__name__)

CALLBACK_PATH = "/twilio/usage-triggers"


def twilio_blueprint(
    writer: AlertWriter, *, auth_token: str, public_url: str, on_stored: Callable[[], None]
) -> Blueprint:
    bp = Blueprint("twilio", __name__)

    @bp.route(CALLBACK_PATH, methods=["GET", "POST"])
    def usage_trigger_fired() -> Response:
        # Twilio signed the URL it called: PUBLIC_URL + path + query, exactly as registered.
        # Behind a PaaS router the request reaches us on another host and scheme, so the
        # request's own URL would not match.
        query = request.query_string.decode("latin-1")
        base = public_url or request.host_url.rstrip("/")
        url = base + request.path + (f"?{query}" if query else "")
        # GET callbacks carry their parameters in the (signed) URL; POST ones in the urlencoded
        # body, which parse_qsl reads for a fraction of the cost of werkzeug's general form parser.
        form = parse_qsl(request.get_data(as_text=True), keep_blank_values=True) if request.method == "POST" else []
        signature = request.headers.get("X-Twilio-Signature", "")
        if not is_valid_signature(auth_token, url, form, signature):
            log.warning("refused a Twilio callback with a bad or missing signature")
            return Response("invalid signature", status=403, content_type="text/plain")

        query_params = dict(parse_qsl(query, keep_blank_values=True))
        params = dict(form) if request.method == "POST" else query_params
        channel = query_params.get("channel", "")
        alert = parse_callback(
            params, header_token=request.headers.get("I-Twilio-Idempotency-Token", ""), channel=channel
        )
        if alert is None:
            return Response("no UsageTriggerSid: nothing to relay", status=200, content_type="text/plain")
        try:
            is_new = writer.store_alert(alert)
        except SQLAlchemyError:
            log.exception("could not store the alert for %s; Twilio will retry", alert.trigger_sid)
            return Response("could not store the alert; please retry", status=503, content_type="text/plain")
        if is_new:
            on_stored()
        return Response(status=200)

    return bp
