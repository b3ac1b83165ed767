"""`X-Twilio-Signature`, computed exactly as twilio-python's RequestValidator does.

HMAC-SHA1 (key: the auth token) over the full URL Twilio called, followed by every POST
parameter as name+value, names sorted, each name's distinct values sorted; base64.
A URL is accepted with or without its default port (:443 / :80), as Twilio's validator does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit


def compute_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """The signature Twilio sends for a request to `url` with these form parameters."""
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    payload = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    digest = hmac.new(auth_token.encode("utf-8"), payload.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii").strip()


def is_valid_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]], signature: str) -> bool:
    """True when `signature` signs `url` (with or without its default port) and `params`."""
    if not signature:
        return False
    params = list(params)
    expected = signature.encode("utf-8")
    for candidate in _port_variants(url):
        if candidate is not None and hmac.compare_digest(
            compute_signature(auth_token, candidate, params).encode("ascii"), expected
        ):
            return True
    return False


def _port_variants(url: str) -> tuple[str | None, str | None]:
    """The URL without its port, and with the scheme's default port made explicit."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: nothing can match
        return None, None
    if port is None:
        default = 443 if parts.scheme == "https" else 80
        return url, urlunsplit(parts._replace(netloc=f"{parts.netloc}:{default}"))
    return urlunsplit(parts._replace(netloc=parts.netloc.split(":", 1)[0])), url
