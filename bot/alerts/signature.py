"""`X-Twilio-Signature`, computed exactly as twilio-python's RequestValidator does.

HMAC-SHA1 (key: the auth token) over the full URL Twilio called, followed by every POST
parameter as name+value, names sorted, each name's distinct values sorted; base64.
A URL is accepted with or without its default port (:443 / :80), as Twilio's validator does.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit


def compute_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """The signature Twilio sends for a request to `url` with these form parameters."""
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    payload = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    digest = hmac.digest(auth_token.encode("utf-8"), payload.encode("utf-8"), "sha1")
    return base64.b64encode(digest).decode("ascii").strip()


def is_valid_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]], signature: str) -> bool:
    """True when `signature` signs `url` (with or without its default port) and `params`."""
    if not signature:
        return False
    params = list(params)
    expected = signature.encode("utf-8")
    # The URL as given first (the usual match); the other port form only when that fails.
    if _signs(auth_token, url, params, expected):
        return True
    other = _other_port_form(url)
    return other is not None and _signs(auth_token, other, params, expected)


def _signs(auth_token: str, url: str, params: list[tuple[str, str]], expected: bytes) -> bool:
    return hmac.compare_digest(compute_signature(auth_token, url, params).encode("ascii"), expected)


def _other_port_form(url: str) -> str | None:
    """The URL with the scheme's default port made explicit if it has none, else without its port;
    None when its port is not a number."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    if port is None:
        default = 443 if parts.scheme == "https" else 80
        return urlunsplit(parts._replace(netloc=f"{parts.netloc}:{default}"))
    return urlunsplit(parts._replace(netloc=parts.netloc.split(":", 1)[0]))
