"""`/twilio/usage-triggers`: Twilio calls this when a usage trigger fires.

Verify the signature, store the alert (with its outbox row) in one transaction, answer 200 only
once it is committed, then wake the delivery loop.

A plain WSGI endpoint in front of Flask (handlers/wsgi.py says why): at the start of a billing
period hundreds of triggers fire at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy.exc import SQLAlchemyError

from bot.alerts.receive import AlertWriter, parse_callback
from bot.alerts.signature import is_valid_signature
from bot.alerts.triggers import CALLBACK_PATH
from handlers.wsgi import WSGIApp, host_url, read_body, respond

log = logging.getLogger(__name__)

_TEXT = [("Content-Type", "text/plain; charset=utf-8")]


class CallbackEndpoint:
    """WSGI middleware: answers `CALLBACK_PATH` itself and passes every other request to `app`."""

    def __init__(
        self,
        app: WSGIApp,
        writer: AlertWriter,
        *,
        auth_token: str,
        public_url: str,
        on_stored: Callable[[], None],
        max_body: int,
    ) -> None:
        self.app = app
        self.writer = writer
        self.auth_token = auth_token
        self.public_url = public_url.rstrip("/")
        self.on_stored = on_stored
        self.max_body = max_body

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != CALLBACK_PATH:
            return self.app(environ, start_response)
        status, text = self.answer(environ)
        return respond(start_response, status, text.encode(), _TEXT if text else ())

    def answer(self, environ: dict[str, Any]) -> tuple[int, str]:
        method = environ.get("REQUEST_METHOD", "")
        if method not in ("GET", "POST"):
            return 405, "use POST (or GET) as Twilio does"
        raw = read_body(environ, self.max_body) if method == "POST" else b""
        if raw is None:
            return 413, "the callback is too large"
        # Twilio signed the URL it called: PUBLIC_URL + path + query, exactly as registered.
        # Behind a PaaS router the request reaches us on another host and scheme, so the
        # request's own URL would not match. (WSGI gives the query as latin-1 text: PEP 3333.)
        query = environ.get("QUERY_STRING", "")
        url = (self.public_url or host_url(environ)) + CALLBACK_PATH + (f"?{query}" if query else "")
        # GET callbacks carry their parameters in the (signed) URL; POST ones in the urlencoded body.
        form = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True) if method == "POST" else []
        if not is_valid_signature(self.auth_token, url, form, environ.get("HTTP_X_TWILIO_SIGNATURE", "")):
            log.warning("refused a Twilio callback with a bad or missing signature")
            return 403, "invalid signature"

        query_params = dict(parse_qsl(query, keep_blank_values=True))
        alert = parse_callback(
            dict(form) if method == "POST" else query_params,
            header_token=environ.get("HTTP_I_TWILIO_IDEMPOTENCY_TOKEN", ""),
            channel=query_params.get("channel", ""),
        )
        if alert is None:
            return 200, "no UsageTriggerSid: nothing to relay"
        try:
            is_new = self.writer.store_alert(alert)
        except SQLAlchemyError:
            log.exception("could not store the alert for %s; Twilio will retry", alert.trigger_sid)
            return 503, "could not store the alert; please retry"
        if is_new:
            self.on_stored()
        return 200, ""
