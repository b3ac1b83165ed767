"""`/twilio/usage-triggers`: Twilio calls this when a usage trigger fires.

Verify the signature, store the alert (with its outbox row) in one transaction, answer 200 only
once it is committed, then wake the delivery loop.

This endpoint is a plain WSGI app in front of Flask rather than a Flask view: it is one fixed
path that reads a small urlencoded body and writes one row, and at the start of a billing period
hundreds of triggers fire at once. Flask's routing, request context and response processing cost
as much CPU as the work itself (bench/README.md, callbacks), so the intake skips them. Every other
path goes on to Flask unchanged.
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

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
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
        status, body = self.answer(environ)
        data = body.encode()
        start_response(status, [*_TEXT, ("Content-Length", str(len(data)))] if data else [("Content-Length", "0")])
        return [data]

    def answer(self, environ: dict[str, Any]) -> tuple[str, str]:
        method = environ.get("REQUEST_METHOD", "")
        if method not in ("GET", "POST"):
            return "405 METHOD NOT ALLOWED", "use POST (or GET) as Twilio does"
        raw = self._body(environ) if method == "POST" else b""
        if raw is None:
            return "413 REQUEST ENTITY TOO LARGE", "the callback is too large"
        # Twilio signed the URL it called: PUBLIC_URL + path + query, exactly as registered.
        # Behind a PaaS router the request reaches us on another host and scheme, so the
        # request's own URL would not match. (WSGI gives the query as latin-1 text: PEP 3333.)
        query = environ.get("QUERY_STRING", "")
        url = (self.public_url or _host_url(environ)) + CALLBACK_PATH + (f"?{query}" if query else "")
        # GET callbacks carry their parameters in the (signed) URL; POST ones in the urlencoded body.
        form = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True) if method == "POST" else []
        if not is_valid_signature(self.auth_token, url, form, environ.get("HTTP_X_TWILIO_SIGNATURE", "")):
            log.warning("refused a Twilio callback with a bad or missing signature")
            return "403 FORBIDDEN", "invalid signature"

        query_params = dict(parse_qsl(query, keep_blank_values=True))
        alert = parse_callback(
            dict(form) if method == "POST" else query_params,
            header_token=environ.get("HTTP_I_TWILIO_IDEMPOTENCY_TOKEN", ""),
            channel=query_params.get("channel", ""),
        )
        if alert is None:
            return "200 OK", "no UsageTriggerSid: nothing to relay"
        try:
            is_new = self.writer.store_alert(alert)
        except SQLAlchemyError:
            log.exception("could not store the alert for %s; Twilio will retry", alert.trigger_sid)
            return "503 SERVICE UNAVAILABLE", "could not store the alert; please retry"
        if is_new:
            self.on_stored()
        return "200 OK", ""

    def _body(self, environ: dict[str, Any]) -> bytes | None:
        """The request body, or None when it is larger than `max_body` (read no further)."""
        stream = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH") or ""
        if length.isdigit():
            size = int(length)
            return None if size > self.max_body else stream.read(size)
        if not environ.get("wsgi.input_terminated"):
            return b""  # no length and no end marker: nothing may be read safely (PEP 3333)
        data = stream.read(self.max_body + 1)  # chunked: the server marks the end
        return None if len(data) > self.max_body else data


def _host_url(environ: dict[str, Any]) -> str:
    host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}"
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}"
