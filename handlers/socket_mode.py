"""Socket Mode: the same Bolt listeners, fed over a WebSocket instead of `POST /slack/events`.

For local development: `python -m bot socket` needs no public URL for Slack
(https://api.slack.com/apis/socket-mode). slack_sdk's built-in client calls
`apps.connections.open` with the app-level token (`xapp-…`, scope `connections:write`), connects to
the WebSocket URL it gets, and acknowledges each envelope with what the HTTP response would have
been. Our listeners ack at once and hand slow work to the answer pool, so acks over the socket are
as prompt as over HTTP.

Requests arrive parsed, without a signature (the connection itself is authenticated), so only the
shape check of handlers/slack_http.py applies; each request still gets its key, for the listeners
to recognise a retried envelope (Slack resends the same payload, `retry_attempt` > 0).
"""

from __future__ import annotations

import json
import logging
import time

from slack_bolt import App, BoltRequest
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.socket_mode.internals import build_headers, send_response
from slack_sdk import WebClient
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.commands.handled import request_key
from handlers.slack_http import REQUEST_KEY, malformed

log = logging.getLogger(__name__)

APP_TOKEN_PREFIX = "xapp-"


class UsageSocketModeHandler(SocketModeHandler):
    """Bolt's built-in Socket Mode handler, with our shape check and request keys."""

    def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        started = time.time()
        body = req.payload
        problem = malformed(body)
        if problem is not None:
            # Acknowledged, so Slack does not resend it; nothing else is done with it.
            log.info("refused a malformed Socket Mode request: %s", problem)
            client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            return
        bolt_request = BoltRequest(mode="socket_mode", body=body, headers=build_headers(req))
        bolt_request.context[REQUEST_KEY] = request_key(json.dumps(body, sort_keys=True).encode())
        send_response(client, req, self.app.dispatch(bolt_request), started)


def socket_mode_handler(bolt: App, *, app_token: str, slack_api_url: str) -> UsageSocketModeHandler:
    """A handler for `bolt` that connects with `app_token` through the Web API at `slack_api_url`."""
    if not app_token.startswith(APP_TOKEN_PREFIX):
        raise ValueError("Socket Mode needs an app-level token (xapp-…)")
    # apps.connections.open authenticates with the app token, passed per call; this client only
    # says where the Web API is.
    return UsageSocketModeHandler(bolt, app_token=app_token, web_client=WebClient(base_url=slack_api_url))
