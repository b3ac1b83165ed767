"""Plain WSGI pieces for the two endpoints that platforms call at volume (`/slack/events`,
`/twilio/usage-triggers`). They sit in front of Flask: each is one fixed path, and Flask's routing,
request context and response objects cost about as much CPU as the work itself (bench/README.md).
Every other path goes on to Flask.
"""

from __future__ import annotations

import http
from collections.abc import Callable, Iterable
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def read_body(environ: dict[str, Any], max_body: int) -> bytes | None:
    """The request body, or None when it is larger than `max_body` (read no further)."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH") or ""
    if length.isdigit():
        size = int(length)
        return None if size > max_body else stream.read(size)
    if not environ.get("wsgi.input_terminated"):
        return b""  # no length and no end marker: nothing may be read safely (PEP 3333)
    data = stream.read(max_body + 1)  # chunked: the server marks the end
    return None if len(data) > max_body else data


def headers_of(environ: dict[str, Any]) -> dict[str, str]:
    """The request's headers by their usual names (`X-Slack-Signature`), from the environ."""
    headers = {name[5:].replace("_", "-").title(): value for name, value in environ.items() if name[:5] == "HTTP_"}
    if environ.get("CONTENT_TYPE"):
        headers["Content-Type"] = environ["CONTENT_TYPE"]
    return headers


def host_url(environ: dict[str, Any]) -> str:
    host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}"
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}"


def respond(
    start_response: Callable[..., Any], status: int, body: bytes = b"", headers: Iterable[tuple[str, str]] = ()
) -> list[bytes]:
    start_response(f"{status} {http.HTTPStatus(status).phrase}", [*headers, ("Content-Length", str(len(body)))])
    return [body]
