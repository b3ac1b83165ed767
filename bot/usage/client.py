"""Twilio Usage Records and Usage Triggers over plain `requests` (no Twilio SDK).

One `UsageClient` is shared by every thread of the app: it keeps a pooled `requests.Session`,
retries what is safe to retry, and turns every failure into a `TwilioError` whose
`user_message` can be shown in Slack as is.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import HTTPBasicAuth

from bot.config import Settings
from bot.model import Account, DateRange, Period, UsageRecord, UsageTrigger
from bot.usage.errors import TwilioError
from bot.usage.twilio_json import parse_account, parse_records, parse_trigger

log = logging.getLogger("bot.usage.client")

API_VERSION = "2010-04-01"
PAGE_SIZE = 1000  # Twilio's maximum: a 1,000-category account is one request
MAX_SLEEP = 8.0  # cap on one backoff sleep, Retry-After included: a Slack user is waiting
POOL_SIZE = 32  # the app answers /usage from a 32-thread pool
USER_AGENT = "usage-bot/0.1 (python-requests)"
_IDEMPOTENT = frozenset({"GET", "HEAD", "DELETE"})


class UsageClient:
    """Twilio's Usage API for one account. Thread-safe; share one instance."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        api_key: str = "",
        api_secret: str = "",
        base_url: str = "https://api.twilio.com",
        session: requests.Session | None = None,
        timeout: tuple[float, float] = (3.05, 10.0),
        max_retries: int = 3,
        backoff: float = 0.5,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self.account_sid = account_sid
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.backoff = backoff
        self._sleep = sleep
        # An API key authenticates instead of the auth token when one is configured.
        if api_key and api_secret:
            self._auth = HTTPBasicAuth(api_key, api_secret)
        else:
            self._auth = HTTPBasicAuth(account_sid, auth_token)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self._session = session
        self._lock = threading.Lock()
        self.request_count = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> UsageClient:
        return cls(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            api_key=settings.twilio_api_key,
            api_secret=settings.twilio_api_secret,
            base_url=settings.twilio_api_url,
        )

    def __repr__(self) -> str:
        # no credentials, ever
        return f"UsageClient(account={self.account_sid}, base_url={self.base_url})"

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()

    def __enter__(self) -> UsageClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- Usage Records ------------------------------------------------------

    def records(
        self,
        period: Period | DateRange | None = None,
        category: str | None = None,
        *,
        start: date | None = None,
        end: date | None = None,
        include_subaccounts: bool | None = None,
        account_sid: str | None = None,
    ) -> list[UsageRecord]:
        """Every usage record of a period (a subresource) or a date range (`Records.json`), all pages."""
        if isinstance(period, Period):
            resource = f"Usage/Records/{period.value}.json"
        else:
            resource = "Usage/Records.json"
            if isinstance(period, DateRange):
                if start is not None or end is not None:
                    raise ValueError("give either a DateRange or start/end, not both")
                start, end = period.start, period.end
        params: dict[str, str] = {}
        if category:
            params["Category"] = category
        if start is not None:
            params["StartDate"] = start.isoformat()
        if end is not None:
            params["EndDate"] = end.isoformat()
        if include_subaccounts is not None:
            params["IncludeSubaccounts"] = "true" if include_subaccounts else "false"
        items = self._list(self._account_path(resource, account_sid), params, "usage_records")
        return parse_records(items)

    # --- Accounts -----------------------------------------------------------

    def subaccounts(self) -> list[Account]:
        """The subaccounts of this account (closed and suspended ones too, with their status).

        `Accounts.json` lists the account whose credentials are used plus its subaccounts; the
        main account itself is left out here. The auth tokens Twilio includes are never kept.
        """
        items = self._list(f"/{API_VERSION}/Accounts.json", {}, "accounts")
        found: dict[str, Account] = {}
        for item in items:
            if not isinstance(item, dict):
                continue
            account = parse_account(item)
            # A page boundary shifting under concurrent changes can repeat an account: keep one.
            if account.sid and account.sid != self.account_sid:
                found.setdefault(account.sid, account)
        return list(found.values())

    # --- Usage Triggers -----------------------------------------------------

    def create_trigger(
        self,
        category: str,
        value: str,
        *,
        callback_url: str,
        trigger_by: str = "count",
        recurring: str = "",
        friendly_name: str = "",
        callback_method: str = "POST",
    ) -> UsageTrigger:
        """Create a Usage Trigger. `value` may be relative (`+1000`); the form encoding keeps the `+`."""
        form = {
            "UsageCategory": category,
            "TriggerValue": value,
            "CallbackUrl": callback_url,
            "CallbackMethod": callback_method,
            "TriggerBy": trigger_by,
        }
        if recurring:  # leaving it out makes a one-shot trigger
            form["Recurring"] = recurring
        if friendly_name:
            form["FriendlyName"] = friendly_name
        response = self._request("POST", self._account_path("Usage/Triggers.json"), data=form)
        return parse_trigger(self._json(response, "POST"))

    def list_triggers(self, category: str | None = None) -> list[UsageTrigger]:
        """Every Usage Trigger of the account (all pages), optionally of one category."""
        params = {"UsageCategory": category} if category else {}
        items = self._list(self._account_path("Usage/Triggers.json"), params, "usage_triggers")
        return [parse_trigger(item) for item in items if isinstance(item, dict)]

    def fetch_trigger(self, sid: str) -> UsageTrigger:
        """One Usage Trigger (a TwilioError with status 404 when there is no such trigger)."""
        response = self._request("GET", self._trigger_path(sid))
        return parse_trigger(self._json(response, "GET"))

    def delete_trigger(self, sid: str) -> None:
        """Delete a Usage Trigger (Twilio answers 204)."""
        self._request("DELETE", self._trigger_path(sid))

    # --- HTTP ---------------------------------------------------------------

    def _account_path(self, resource: str, account_sid: str | None = None) -> str:
        # quote(): a SID typed by a user must not be able to walk to another path
        sid = quote(account_sid or self.account_sid, safe="")
        return f"/{API_VERSION}/Accounts/{sid}/{resource}"

    def _trigger_path(self, sid: str) -> str:
        return self._account_path(f"Usage/Triggers/{quote(sid.strip(), safe='')}.json")

    def _url(self, path_or_uri: str) -> str:
        """`next_page_uri` is relative to the base URL; never send credentials to another host."""
        parts = urlsplit(path_or_uri)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def _list(self, path: str, params: Mapping[str, str], key: str) -> list[Any]:
        """Collect a list resource by following `next_page_uri` until it is null."""
        items: list[Any] = []
        uri: str | None = path
        query: dict[str, str] | None = {**params, "PageSize": str(PAGE_SIZE)}
        seen: set[str] = set()
        while uri:
            seen.add(uri)
            page = self._json(self._request("GET", uri, params=query), "GET")
            page_items = page.get(key)
            if isinstance(page_items, list):
                items.extend(page_items)
            next_uri = page.get("next_page_uri")
            if not isinstance(next_uri, str) or not next_uri:
                break
            if next_uri in seen:  # a loop would page forever
                log.warning("Twilio repeated a page URI while paging %s; stopping", path)
                break
            uri, query = next_uri, None  # next_page_uri already carries the query and PageToken
        return items

    def _json(self, response: requests.Response, method: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise TwilioError(
                "Twilio's answer was not the JSON object expected",
                status=response.status_code,
                method=method,
                path=_path_only(response.url),
            )
        return body

    def _request(
        self,
        method: str,
        path_or_uri: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send one request, retrying what is safe to retry; raise TwilioError on failure."""
        url = self._url(path_or_uri)
        path = _path_only(url)
        idempotent = method in _IDEMPOTENT
        attempt = 0
        while True:
            with self._lock:
                self.request_count += 1
            started = time.perf_counter()
            cause: BaseException | None = None
            try:
                response = self._session.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    auth=self._auth,
                    timeout=self.timeout,
                    headers={"Accept": "application/json", "User-Agent": USER_AGENT},
                )
            # Timeouts before ConnectionError: ConnectTimeout is both.
            except requests.ConnectTimeout as exc:
                cause = exc
                error = TwilioError(f"could not connect within {self.timeout[0]:g} s", method=method, path=path)
                retryable = idempotent  # keep it simple: a POST is only ever resent after a 429
            except requests.Timeout as exc:
                cause = exc
                error = TwilioError(f"no answer within {self.timeout[1]:g} s", method=method, path=path)
                retryable = idempotent  # a POST may have been processed: never resend it
            except requests.ConnectionError as exc:
                cause = exc
                error = TwilioError("could not reach Twilio", method=method, path=path)
                retryable = idempotent
            except requests.RequestException as exc:
                cause = exc
                error = TwilioError(f"request failed ({type(exc).__name__})", method=method, path=path)
                retryable = False
            else:
                elapsed_ms = (time.perf_counter() - started) * 1000
                log.debug(
                    "Twilio %s %s -> %s in %.0f ms (request id %s)",
                    method,
                    path,
                    response.status_code,
                    elapsed_ms,
                    response.headers.get("Twilio-Request-Id", "-"),
                )
                if response.status_code < 400:
                    return response
                error = TwilioError.from_response(response, method=method, path=path)
                # A 429 (20429) was not processed, so even a POST is safe to resend.
                retryable = response.status_code == 429 or (idempotent and response.status_code >= 500)
            if cause is not None:
                elapsed_ms = (time.perf_counter() - started) * 1000
                log.debug("Twilio %s %s -> %s after %.0f ms", method, path, type(cause).__name__, elapsed_ms)
            if not retryable or attempt >= self.max_retries:
                raise error from cause
            delay = self._delay(attempt, error.retry_after)
            log.warning(
                "Twilio %s %s failed (%s); retry %d/%d in %.2f s",
                method,
                path,
                error.status or error.message,
                attempt + 1,
                self.max_retries,
                delay,
            )
            self._sleep(delay)
            attempt += 1

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter (so many threads do not retry in step), or Retry-After."""
        if retry_after is not None:
            return min(MAX_SLEEP, max(0.0, retry_after))
        base = self.backoff * 2**attempt
        return min(MAX_SLEEP, base + random.uniform(0, base / 2))


def _path_only(url: str) -> str:
    return urlsplit(url).path
