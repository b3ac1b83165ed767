"""Slack requests already handled, so that a command or a click is never worked twice.

Slack resends a request it heard no answer to in time with the same body, marked with an
`X-Slack-Retry-Num` header (https://api.slack.com/apis/events-api#retries), and a flaky network
or proxy can deliver one signed request twice. Either way the body is the same, and no two requests
Slack sends for different commands or clicks share a body: each carries its own `trigger_id`
(and a command its own `response_url`, https://api.slack.com/interactivity/slash-commands).
So the key is a hash of the body alone, whatever the timestamp a retry is signed with.

A key is kept KEEP_SECONDS, far beyond Slack's 5-minute signature window, after which a request
could not pass the signature check anyway; older keys are deleted whenever one is added.
"""

from __future__ import annotations

import functools
import hashlib

from sqlalchemy import Connection, Insert, delete
from sqlalchemy.dialects import postgresql, sqlite

from bot.store import Store
from bot.store.schema import handled_requests

KEEP_SECONDS = 3600


def request_key(body: bytes) -> str:
    """The key of a Slack request: the SHA-256 of its raw body, in hex."""
    return hashlib.sha256(body).hexdigest()


def first_time(store: Store, key: str, *, now: float) -> bool:
    """Remember the request `key`; False when it was handled already (a retry, a double submit).

    One transaction; concurrent requests with the same key get one True between them.
    """

    def claim(conn: Connection) -> bool:
        conn.execute(delete(handled_requests).where(handled_requests.c.handled_at < now - KEEP_SECONDS))
        # The row comes back only if it was inserted (rowcount is no help here: -1 on psycopg).
        return conn.execute(_insert(conn.dialect.name), {"key": key, "handled_at": now}).first() is not None

    return store.write(claim)


@functools.cache
def _insert(dialect_name: str) -> Insert:
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return dialect.insert(handled_requests).on_conflict_do_nothing().returning(handled_requests.c.key)
