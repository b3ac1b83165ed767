"""TwilioError: every failed Twilio request, with a sentence a Slack user can act on."""

from __future__ import annotations

import requests

from bot.http_dates import parse_retry_after
from bot.usage.twilio_json import as_int, as_text


class TwilioError(Exception):
    """A failed Twilio request: an error answer, or no answer at all (`status` None).

    `str()` is for logs (no credentials ever appear in it); `user_message` is for Slack.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        more_info: str = "",
        method: str = "",
        path: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.more_info = more_info
        self.method = method
        self.path = path
        self.retry_after = retry_after

    @classmethod
    def from_response(cls, response: requests.Response, *, method: str = "", path: str = "") -> TwilioError:
        """Build from an error answer; tolerates HTML or empty bodies (proxies, load balancers)."""
        status = response.status_code
        message = ""
        code: int | None = None
        more_info = ""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            message = as_text(body.get("message")).strip()
            code = as_int(body.get("code"))
            more_info = as_text(body.get("more_info"))
        if not message:
            message = f"HTTP {status} {response.reason or ''}".strip()
        return cls(
            message,
            status=status,
            code=code,
            more_info=more_info,
            method=method,
            path=path,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )

    def __str__(self) -> str:
        where = f" ({self.method} {self.path})" if self.path else ""
        if self.status is None:
            return f"Twilio request failed: {self.message}{where}"
        code = f", code {self.code}" if self.code is not None else ""
        return f"Twilio error (HTTP {self.status}{code}): {self.message}{where}"

    @property
    def user_message(self) -> str:
        """One sentence a Slack user can act on."""
        status, code = self.status, self.code
        if status == 401 or code == 20003:
            return "Twilio rejected the credentials: check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (or the API key)."
        if status == 429 or code == 20429:
            return "Twilio is rate-limiting us right now; try again in a minute."
        if status == 404 or code == 20404:
            return f"Twilio has no such resource: {_sentence(self.message or self.path)}"
        if status is None or status >= 500:
            detail = self.message if status is None else f"HTTP {status}"
            return f"Twilio is unavailable right now ({detail}); try again in a few minutes."
        if 400 <= status < 500:
            return f"Twilio refused that: {_sentence(self.message)}"
        return "Twilio gave an answer the bot did not understand; try again later."


def _sentence(text: str) -> str:
    text = text.strip() or "no details given"
    return text if text.endswith((".", "!", "?")) else text + "."
