"""A fake Twilio REST API (Usage Records, Usage Triggers, the Accounts list) over real loopback HTTP.

    with FakeTwilio() as fake:
        fake.add_categories(5)
        client = UsageClient(fake.account_sid, fake.auth_token, base_url=fake.url)

The fake keeps an in-memory account, checks Basic auth, pages like Twilio (`next_page_uri`
carrying a `PageToken`), records every request it receives, and can be told to fail or to be slow.

Structure, for whoever extends it: `_Handler` only turns HTTP into a `FakeRequest` and a `Reply`
back into HTTP; `FakeTwilio.handle` does auth, failure injection and routing to the small
`_route_*` methods, each of which reads the request and returns a `Reply`.

The fake can also play Twilio's other side: `fire(sid)` calls a trigger's `callback_url` the way
Twilio does when a usage trigger fires (parameters, `X-Twilio-Signature` signed with the fake's
auth token over the registered URL, POST form or GET query), optionally delivering the request
somewhere else (`via_url`), as a PaaS router does. `callback(sid)` builds the same request
without sending it, for tests that tamper with it first. The signature is computed here, from
twilio-python's RequestValidator algorithm written out again (`twilio_signature`), so tests do
not check the app's signature code against itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urldefrag, urlencode, urlsplit, urlunsplit

import requests

from bot.model import Period

ACCOUNT_SID = "AC" + "a1" * 16
AUTH_TOKEN = "fake-auth-token-" + "5" * 16
API_VERSION = "2010-04-01"
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50

# Real Twilio codes (https://www.twilio.com/docs/api/errors) ...
CODE_AUTHENTICATE = 20003
CODE_NOT_FOUND = 20404
CODE_TOO_MANY_REQUESTS = 20429
# ... and the fake's own codes for parameter errors: the reference does not document Twilio's.
CODE_MISSING_PARAMETER = 21201
CODE_INVALID_PARAMETER = 21202

RECORD_RESOURCES = ("Records", *(p.value for p in Period))
_FIXED_PERIODS = ("Today", "Yesterday", "ThisMonth", "LastMonth", "AllTime", "Records")
_SUBRESOURCE_KEYS = {
    "AllTime": "all_time",
    "Daily": "daily",
    "LastMonth": "last_month",
    "Monthly": "monthly",
    "ThisMonth": "this_month",
    "Today": "today",
    "Yearly": "yearly",
    "Yesterday": "yesterday",
}
# Categories the fake accepts for triggers when bot/data/usage_categories.txt is unavailable.
_BASIC_CATEGORIES = frozenset(
    {"totalprice", "sms", "sms-inbound", "sms-outbound", "mms", "calls", "calls-inbound", "calls-outbound"}
    | {"phonenumbers", "recordings", "lookups", "calleridlookups", "channels-whatsapp"}
)
_CATEGORIES_FILE = Path(__file__).resolve().parents[2] / "bot" / "data" / "usage_categories.txt"


class RecordedRequest(NamedTuple):
    """What the fake received: query and form are decoded (`%2B1000` arrives as `+1000`)."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]


@dataclass
class FakeRequest:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class Reply:
    status: int
    body: dict[str, Any] | str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def error_body(status: int, code: int, message: str) -> dict[str, Any]:
    """Twilio's 2010-API error JSON."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def error(status: int, code: int, message: str) -> Reply:
    return Reply(status, error_body(status, code, message))


# --- trigger callbacks: what Twilio sends when a usage trigger fires -------------------------
# https://www.twilio.com/docs/usage/api/usage-trigger


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]] | Mapping[str, str] = ()) -> str:
    """`X-Twilio-Signature` as twilio-python's `RequestValidator.compute_signature` makes it.

    Written out independently of bot/twilio_signature.py: the URL exactly as given (query
    included), then for each distinct parameter name in code-point order, each of its distinct
    values in order, `name + value` with no separator; HMAC-SHA1 keyed with the auth token,
    base64.
    """
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    signed = url
    for name in sorted({name for name, _ in pairs}):
        for value in sorted({v for n, v in pairs if n == name}):
            signed += name + value
    mac = hmac.new(auth_token.encode("utf-8"), signed.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii").strip()


def callback_get_url(url: str, params: Mapping[str, str]) -> str:
    """The URL a GET callback calls (and signs): the registered URL with the parameters added."""
    return url + ("&" if urlsplit(url).query else "?") + urlencode(params)


@dataclass
class Callback:
    """One trigger callback as Twilio would send it; change a field to tamper with it.

    `url` is what Twilio calls and signs (for GET it carries the parameters), `form` the POST
    body (empty for GET), `params` every callback parameter whichever way it travels.
    """

    method: str
    url: str
    form: list[tuple[str, str]]
    headers: dict[str, str]
    params: dict[str, str]

    def target(self, via_url: str | None = None) -> str:
        """Where the request goes: `url`, or `via_url`.

        A bare `via_url` (scheme and host only, e.g. the app on `http://127.0.0.1:PORT`) gets
        the path and query of `url`: the same request reaching the app through a router. A
        `via_url` with a path or query is used as it is (replays to another address).
        """
        if via_url is None:
            return self.url
        via = urlsplit(via_url)
        if via.path.strip("/") or via.query:
            return via_url
        own = urlsplit(self.url)
        return urlunsplit((via.scheme, via.netloc, own.path, own.query, ""))

    def send(self, via_url: str | None = None, *, timeout: float = 5) -> requests.Response:
        """Deliver it over HTTP (no redirects followed: Twilio's signature would not survive one)."""
        return requests.request(
            self.method,
            self.target(via_url),
            data=self.form if self.method == "POST" else None,
            headers=self.headers,
            timeout=timeout,
            allow_redirects=False,
        )


def make_record(
    category: str,
    *,
    account_sid: str = ACCOUNT_SID,
    count: str | None = "0",
    count_unit: str = "",
    usage: str | None = None,
    usage_unit: str = "",
    price: str | float | int | None = "0",
    price_unit: str = "usd",
    description: str = "",
    start_date: date | str | None = None,
    end_date: date | str | None = None,
    as_of: str | None = None,
) -> dict[str, Any]:
    """A usage record dict shaped like the real API's (numbers as strings, https://www.twilio.com/docs/usage/api/usage-record)."""
    today = datetime.now(UTC).date()
    start = start_date.isoformat() if isinstance(start_date, date) else (start_date or today.isoformat())
    end = end_date.isoformat() if isinstance(end_date, date) else (end_date or today.isoformat())
    base = f"/{API_VERSION}/Accounts/{account_sid}/Usage/Records"
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "as_of": as_of or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00"),
        "category": category,
        "count": count,
        "count_unit": count_unit,
        "description": description or category.replace("-", " ").title(),
        "end_date": end,
        "price": price,
        "price_unit": price_unit,
        "start_date": start,
        "subresource_uris": {key: f"{base}/{name}.json?Category={category}" for name, key in _SUBRESOURCE_KEYS.items()},
        "uri": f"{base}.json?Category={category}&StartDate={start}&EndDate={end}",
        "usage": count if usage is None else usage,
        "usage_unit": usage_unit or count_unit,
    }


def period_dates(resource: str, today: date) -> tuple[date, date]:
    """The GMT dates a fixed-period resource covers."""
    if resource == "Yesterday":
        day = today - timedelta(days=1)
        return day, day
    if resource == "ThisMonth":
        return today.replace(day=1), today
    if resource == "LastMonth":
        last = today.replace(day=1) - timedelta(days=1)
        return last.replace(day=1), last
    if resource in ("AllTime", "Records"):
        return date(2010, 1, 1), today
    return today, today


def _resource_name(period: Period | str) -> str:
    name = period.value if isinstance(period, Period) else period
    if name not in RECORD_RESOURCES:
        raise ValueError(f"unknown records resource {name!r}; one of {RECORD_RESOURCES}")
    return name


class FakeTwilio:
    """An in-memory Twilio account behind a real HTTP server on 127.0.0.1."""

    def __init__(
        self,
        account_sid: str = ACCOUNT_SID,
        auth_token: str = AUTH_TOKEN,
        *,
        api_key: str = "",
        api_secret: str = "",
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.api_key = api_key
        self.api_secret = api_secret
        self._credentials = (auth_token, api_key, api_secret)  # what reset() restores
        self.delay = 0.0  # seconds to wait before answering each request
        self.requests: list[RecordedRequest] = []
        self.triggers: dict[str, dict[str, Any]] = {}  # sid -> trigger JSON, in creation order
        self.trigger_forms: dict[str, dict[str, str]] = {}  # sid -> the decoded create form
        # Deleted triggers, whose callbacks can still arrive: a firing Twilio is still delivering
        # (it retries a failed webhook, https://www.twilio.com/docs/usage/webhooks/webhooks-connection-overrides)
        # when the trigger is deleted. `fire(sid)` works for them; the REST API no longer knows them.
        self.deleted_triggers: dict[str, dict[str, Any]] = {}
        self.categories: set[str] = set(_load_categories())  # what trigger creation accepts
        self.subaccounts: set[str] = set()
        self.friendly_name = "My first Twilio account"  # the main account's, in Accounts.json
        self.account_info: dict[str, tuple[str, str]] = {}  # subaccount sid -> (friendly name, status)
        self.in_flight = 0  # requests being answered now, and the most at once (concurrency checks)
        self.max_in_flight = 0
        self._records: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._failures: deque[Reply] = deque()
        self._account_failures: dict[str, Reply] = {}  # account sid -> the answer to every request under it
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Reply]]] = [
            ("GET", re.compile(r"Usage/Records\.json"), self._route_records),
            (
                "GET",
                re.compile(rf"Usage/Records/(?P<resource>{'|'.join(p.value for p in Period)})\.json"),
                self._route_records,
            ),
            ("GET", re.compile(r"Usage/Triggers\.json"), self._route_list_triggers),
            ("POST", re.compile(r"Usage/Triggers\.json"), self._route_create_trigger),
            ("GET", re.compile(r"Usage/Triggers/(?P<sid>[^/]+)\.json"), self._route_fetch_trigger),
            ("POST", re.compile(r"Usage/Triggers/(?P<sid>[^/]+)\.json"), self._route_update_trigger),
            ("DELETE", re.compile(r"Usage/Triggers/(?P<sid>[^/]+)\.json"), self._route_delete_trigger),
        ]

    # --- lifecycle ----------------------------------------------------------

    def start(self) -> FakeTwilio:
        """Start serving on a free loopback port."""
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-twilio", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (requests still sleeping in `delay` are abandoned: daemon threads)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. `http://127.0.0.1:54321` (what `UsageClient(base_url=...)` takes)."""
        if self._server is None:
            raise RuntimeError("FakeTwilio is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- account state ------------------------------------------------------

    def set_records(
        self, period: Period | str, records: list[dict[str, Any]], *, account_sid: str | None = None
    ) -> None:
        """Replace the records one resource serves (`Period.TODAY`, `"Today"`, or `"Records"`)."""
        with self._lock:
            self._records[(account_sid or self.account_sid, _resource_name(period))] = list(records)

    def records(self, period: Period | str, *, account_sid: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._records.get((account_sid or self.account_sid, _resource_name(period)), []))

    def add_categories(
        self, n: int, *, period: Period | str | None = None, account_sid: str | None = None
    ) -> list[dict[str, Any]]:
        """Replace the records of `period` (default: every fixed period and `Records`) with `n`
        records: `n - 1` priced categories plus `totalprice`, their sum (so a 1,000-category
        account is exactly 1,000 records, one full page). Prices rise with the index; returns
        the records of the last resource set."""
        if n < 1:
            raise ValueError("n must be at least 1 (totalprice)")
        sid = account_sid or self.account_sid
        today = datetime.now(UTC).date()
        resources = [_resource_name(period)] if period is not None else list(_FIXED_PERIODS)
        names = _category_names(n - 1)
        made: list[dict[str, Any]] = []
        for resource in resources:
            start, end = period_dates(resource, today)
            made = []
            total = Decimal(0)
            for i, name in enumerate(names):
                price = Decimal(i + 1) * Decimal("0.0079")
                total += price
                made.append(
                    make_record(
                        name,
                        account_sid=sid,
                        count=str((i + 1) * 10),
                        count_unit="messages" if "sms" in name else "units",
                        price=str(price),
                        start_date=start,
                        end_date=end,
                    )
                )
            made.insert(
                0,
                make_record(
                    "totalprice",
                    account_sid=sid,
                    count=None,
                    usage=str(total),
                    usage_unit="usd",
                    price=str(total),
                    description="Total Price",
                    start_date=start,
                    end_date=end,
                ),
            )
            self.set_records(resource, made, account_sid=sid)
        return made

    def set_today(
        self,
        totals: Mapping[str, tuple[float, float]],
        *,
        day: date | None = None,
        quiet: Iterable[str] = ("calls", "mms", "recordings"),
        as_of: str | None = None,
    ) -> list[dict[str, Any]]:
        """Serve `Usage/Records/Today` for `day` (default today, GMT): one record per category,
        `{category: (count, price)}` so far today, plus `totalprice` (their sum) and a zero record
        for each `quiet` category, as Twilio lists every category, used or not. Call it again
        between scheduled passes to make the day's usage grow (the records are cumulative)."""
        when = day or _today()
        made = [
            make_record(
                "totalprice",
                count=None,
                usage=str(round(sum(p for _, p in totals.values()), 6)),
                usage_unit="usd",
                price=str(round(sum(p for _, p in totals.values()), 6)),
                description="Total Price",
                start_date=when,
                end_date=when,
                as_of=as_of,
            )
        ]
        for category, (count, price) in totals.items():
            made.append(
                make_record(
                    category,
                    count=str(count),
                    count_unit="messages" if category.startswith(("sms", "mms")) else "",
                    price=str(price),
                    start_date=when,
                    end_date=when,
                    as_of=as_of,
                )
            )
        made += [make_record(c, start_date=when, end_date=when, as_of=as_of) for c in quiet if c not in totals]
        self.set_records("Today", made)
        return made

    def set_daily(self, days: Iterable[date], totals: Mapping[str, tuple[float, float]]) -> None:
        """Serve `Usage/Records/Daily`: one record per category per day, `{category: (count, price)}`
        each day (Daily returns several records per category, one per day)."""
        made = [
            make_record(category, count=str(count), price=str(price), start_date=day, end_date=day)
            for day in sorted(days)
            for category, (count, price) in totals.items()
        ]
        self.set_records("Daily", made)

    def add_subaccount(self, sid: str, *, friendly_name: str | None = None, status: str = "active") -> None:
        """Let paths under this account SID answer (records are set with `account_sid=`), and list
        it in `Accounts.json`. The main account's credentials reach it, as Twilio allows a parent.

        Its records are its own usage; the main account's default (`IncludeSubaccounts` true)
        answers add them in, `IncludeSubaccounts=false` leaves them out.
        """
        with self._lock:
            self.subaccounts.add(sid)
            name = f"Subaccount {sid[-6:]}" if friendly_name is None else friendly_name
            self.account_info[sid] = (name, status)

    def fail_account(self, sid: str, status: int = 404, message: str = "") -> None:
        """Answer every request under account `sid` (after auth) with this error, as Twilio may
        for a closed subaccount; other accounts are unaffected, however requests interleave."""
        code = {404: CODE_NOT_FOUND, 401: CODE_AUTHENTICATE, 429: CODE_TOO_MANY_REQUESTS}.get(status, status)
        with self._lock:
            self._account_failures[sid] = error(status, code, message or f"Account {sid} is not available")

    # --- failure injection and inspection -----------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        body: dict[str, Any] | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next `n` requests (any route, before auth) with `status`.

        `body` None gives Twilio's error JSON for that status; a str is sent as is (HTML if it
        starts with `<`), e.g. a load balancer's error page."""
        if body is None:
            code = CODE_TOO_MANY_REQUESTS if status == 429 else status
            body = error_body(status, code, "Too Many Requests" if status == 429 else "Service unavailable")
        with self._lock:
            for _ in range(n):
                self._failures.append(Reply(status, body, dict(headers or {})))

    def requests_to(self, path_suffix: str, method: str | None = None) -> list[RecordedRequest]:
        """The recorded requests whose path ends with `path_suffix` (and of `method`, if given)."""
        with self._lock:
            return [r for r in self.requests if r.path.endswith(path_suffix) and (method is None or r.method == method)]

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()
            self.max_in_flight = self.in_flight

    def reset(self) -> None:
        """Back to a new, empty account (same URL and SIDs), for a fake shared by several tests."""
        with self._lock:
            self.auth_token, self.api_key, self.api_secret = self._credentials
            self.delay = 0.0
            self.requests.clear()
            self.triggers.clear()
            self.deleted_triggers.clear()
            self.trigger_forms.clear()
            self.categories = set(_load_categories())
            self.subaccounts.clear()
            self.account_info.clear()
            self._records.clear()
            self._failures.clear()
            self._account_failures.clear()
            self.max_in_flight = self.in_flight

    # --- triggers made outside the REST API, and firing them ----------------

    def add_trigger(
        self,
        category: str = "totalprice",
        value: str = "100",
        *,
        callback_url: str,
        callback_method: str = "POST",
        trigger_by: str = "usage",
        recurring: str = "",
        friendly_name: str = "",
        account_sid: str | None = None,
    ) -> dict[str, Any]:
        """Create a trigger directly (validated as the API would; not recorded as a request)."""
        form = {
            "UsageCategory": category,
            "TriggerValue": value,
            "CallbackUrl": callback_url,
            "CallbackMethod": callback_method,
            "TriggerBy": trigger_by,
        }
        if recurring:
            form["Recurring"] = recurring
        if friendly_name:
            form["FriendlyName"] = friendly_name
        account = account_sid or self.account_sid
        request = FakeRequest("POST", f"/{API_VERSION}/Accounts/{account}/Usage/Triggers.json", {}, form, {})
        reply = self._route_create_trigger(request, account)
        if reply.status != 201 or not isinstance(reply.body, dict):
            raise ValueError(f"could not create the trigger: {reply.body}")
        return dict(reply.body)

    def signature(
        self, url: str, params: Iterable[tuple[str, str]] | Mapping[str, str] = (), *, auth_token: str | None = None
    ) -> str:
        """`X-Twilio-Signature` for a request to `url` with these POST parameters (default: our token)."""
        return twilio_signature(self.auth_token if auth_token is None else auth_token, url, params)

    def callback(
        self,
        sid: str,
        *,
        current_value: str | None = None,
        idempotency_token: str | None = None,
        date_fired: str | None = None,
        header_token: str | None = None,
        extra: Mapping[str, str] | None = None,
        auth_token: str | None = None,
    ) -> Callback:
        """The request Twilio would send when trigger `sid` fires, signed, not yet sent.

        `idempotency_token` / `date_fired`: None makes a fresh one (a new token; now, RFC 2822),
        "" leaves the parameter out. `header_token` adds `I-Twilio-Idempotency-Token` (Twilio
        sends it on retries). `extra` adds or overrides parameters. `auth_token` signs with
        another token. Two firings of one trigger within the same second share a DateFired: pass
        distinct `date_fired` values when that matters.
        """
        with self._lock:
            trigger = self.triggers.get(sid) or self.deleted_triggers.get(sid)
            if trigger is None:
                raise KeyError(f"no trigger {sid} in the fake")
            trigger = dict(trigger)
        fired = _rfc2822_now() if date_fired is None else date_fired
        token = f"{sid}-{secrets.token_hex(8)}" if idempotency_token is None else idempotency_token
        # The order Twilio documents them in; the GET signing example of
        # https://www.twilio.com/docs/usage/security urlencodes them in this order.
        params = {
            "AccountSid": trigger["account_sid"],
            "UsageTriggerSid": sid,
            "DateFired": fired,
            "Recurring": trigger["recurring"],
            "UsageCategory": trigger["usage_category"],
            "TriggerBy": trigger["trigger_by"],
            "TriggerValue": trigger["trigger_value"],
            "CurrentValue": trigger["trigger_value"].lstrip("+") if current_value is None else current_value,
            "UsageRecordUri": trigger["usage_record_uri"],
            "IdempotencyToken": token,
        }
        if not fired:
            del params["DateFired"]
        if not token:
            del params["IdempotencyToken"]
        params.update(extra or {})
        # Twilio leaves a connection-override fragment (`#rc=…`) out of the request and the signature.
        url, _ = urldefrag(trigger["callback_url"])
        method = trigger["callback_method"]
        form = list(params.items()) if method == "POST" else []
        if method == "GET":
            url = callback_get_url(url, params)
        headers = {
            "X-Twilio-Signature": self.signature(url, form, auth_token=auth_token),
            "User-Agent": "TwilioProxy/1.1",
        }
        if header_token:
            headers["I-Twilio-Idempotency-Token"] = header_token
        return Callback(method=method, url=url, form=form, headers=headers, params=params)

    def fire(
        self,
        sid: str,
        *,
        current_value: str | None = None,
        idempotency_token: str | None = None,
        date_fired: str | None = None,
        header_token: str | None = None,
        extra: Mapping[str, str] | None = None,
        via_url: str | None = None,
        timeout: float = 5,
    ) -> requests.Response:
        """Fire trigger `sid`: send its signed callback (to `via_url` when given, see
        `Callback.target`) and record the firing on the trigger (`date_fired`, `current_value`)."""
        callback = self.callback(
            sid,
            current_value=current_value,
            idempotency_token=idempotency_token,
            date_fired=date_fired,
            header_token=header_token,
            extra=extra,
        )
        with self._lock:
            trigger = self.triggers.get(sid)
            if trigger is not None:
                trigger["current_value"] = callback.params["CurrentValue"]
                trigger["date_fired"] = callback.params.get("DateFired") or _rfc2822_now()
        return callback.send(via_url, timeout=timeout)

    # --- request handling ---------------------------------------------------

    def handle(self, request: FakeRequest) -> Reply:
        """Answer one request: record it, wait `delay`, inject failures, check auth, route."""
        with self._lock:
            self.requests.append(RecordedRequest(request.method, request.path, request.query, request.form))
            delay = self.delay
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return self._answer(request, delay)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _answer(self, request: FakeRequest, delay: float) -> Reply:
        if delay > 0:
            time.sleep(delay)
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
        if failure is not None:
            return failure
        if not self._authorised(request.headers.get("authorization", "")):
            return error(401, CODE_AUTHENTICATE, "Authenticate")
        if request.path == f"/{API_VERSION}/Accounts.json":
            if request.method != "GET":  # creating subaccounts is not faked
                return error(405, 20004, "Method not allowed")
            return self._route_list_accounts(request)
        prefix = re.match(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/(?P<rest>.*)$", request.path)
        if prefix is None:
            return self._not_found(request)
        account = prefix["account"]
        if account != self.account_sid and account not in self.subaccounts:
            return self._not_found(request)
        with self._lock:
            account_failure = self._account_failures.get(account)
        if account_failure is not None:
            return account_failure
        path_matched = False
        for method, pattern, route in self._routes:
            match = pattern.fullmatch(prefix["rest"])
            if match is None:
                continue
            path_matched = True
            if method == request.method:
                return route(request, account, **match.groupdict())
        if path_matched:
            return error(405, 20004, "Method not allowed")
        return self._not_found(request)

    def _authorised(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        allowed = {(self.account_sid, self.auth_token)}
        if self.api_key:
            allowed.add((self.api_key, self.api_secret))
        return any(secrets.compare_digest(f"{user}:{password}", f"{u}:{p}") for u, p in allowed)

    def _not_found(self, request: FakeRequest) -> Reply:
        return error(404, CODE_NOT_FOUND, f"The requested resource {request.path} was not found")

    # --- routes: Usage Records ----------------------------------------------

    def _route_records(self, request: FakeRequest, account: str, resource: str = "Records") -> Reply:
        query = request.query
        try:
            start = _query_date(query.get("StartDate"))
            end = _query_date(query.get("EndDate"))
        except ValueError as exc:
            return error(400, CODE_INVALID_PARAMETER, str(exc))
        include = query.get("IncludeSubaccounts", "true").lower()
        if include not in ("true", "false"):
            return error(400, CODE_INVALID_PARAMETER, f"IncludeSubaccounts {include!r} must be true or false")
        with self._lock:
            items = list(self._records.get((account, resource), []))
            # Twilio's default covers the account and all its subaccounts: one summed record per
            # category (totalprice included, so it stays the sum of the family's spend).
            if include == "true" and account == self.account_sid:
                family = [self._records.get((sub, resource), []) for sub in sorted(self.subaccounts)]
                if any(family):
                    items = _sum_records([items, *family], account)
            # A date range on Records.json, when the test set Daily records but no Records: the
            # days in the range added up per category, as Twilio does (digests compare two ranges).
            if resource == "Records" and (start or end) and (account, "Records") not in self._records:
                days = [r for r in self._records.get((account, "Daily"), []) if _overlaps(r, start, end)]
                if days:
                    items = _sum_records([[{**r, "start_date": "", "end_date": ""} for r in days]], account)
        if query.get("Category"):
            items = [r for r in items if r.get("category") == query["Category"]]
        if resource == "Records" and (start or end):
            # Records.json sums each category over the range asked for: one record each.
            items = [
                {**r, "start_date": (start or date(2010, 1, 1)).isoformat(), "end_date": (end or _today()).isoformat()}
                for r in items
            ]
        elif resource in ("Daily", "Monthly", "Yearly") and (start or end):
            items = [r for r in items if _overlaps(r, start, end)]
        filters = {k: query[k] for k in ("Category", "StartDate", "EndDate", "IncludeSubaccounts") if k in query}
        return self._page(request, items, "usage_records", filters)

    # --- routes: Accounts ---------------------------------------------------

    def _route_list_accounts(self, request: FakeRequest) -> Reply:
        """`GET /2010-04-01/Accounts.json`: the main account, then its subaccounts."""
        query = request.query
        with self._lock:
            listed = [(self.account_sid, self.friendly_name, "active")]
            listed += [(sid, name, status) for sid, (name, status) in self.account_info.items()]
        items = [self._account_json(sid, name, status) for sid, name, status in listed]
        for param, key in (("FriendlyName", "friendly_name"), ("Status", "status")):
            if query.get(param):
                items = [a for a in items if a[key] == query[param]]
        filters = {k: query[k] for k in ("FriendlyName", "Status") if k in query}
        return self._page(request, items, "accounts", filters)

    def _account_json(self, sid: str, friendly_name: str, status: str) -> dict[str, Any]:
        now = _rfc2822_now()
        base = f"/{API_VERSION}/Accounts/{sid}"
        return {
            # Twilio lists every account's auth token; a client must not keep or show it.
            "auth_token": "fake-subaccount-token-" + hashlib.sha256(sid.encode()).hexdigest()[:16],
            "date_created": now,
            "date_updated": now,
            "friendly_name": friendly_name,
            "owner_account_sid": self.account_sid,
            "sid": sid,
            "status": status,
            "subresource_uris": {"usage_records": f"{base}/Usage/Records.json"},
            "type": "Full",
            "uri": f"{base}.json",
        }

    # --- routes: Usage Triggers ---------------------------------------------

    def _route_create_trigger(self, request: FakeRequest, account: str) -> Reply:
        form = request.form
        missing = [name for name in ("CallbackUrl", "TriggerValue", "UsageCategory") if not form.get(name)]
        if missing:
            return error(400, CODE_MISSING_PARAMETER, f"Missing required parameter {missing[0]} in the post body")
        value = form["TriggerValue"]
        if not re.fullmatch(r"\+?\d+(\.\d+)?", value):
            return error(400, CODE_INVALID_PARAMETER, f"TriggerValue {value!r} is not a valid value")
        category = form["UsageCategory"]
        if category not in self._known_categories():
            return error(400, CODE_INVALID_PARAMETER, f"UsageCategory {category!r} is not a valid usage category")
        trigger_by = form.get("TriggerBy", "usage")  # Twilio's default
        if trigger_by not in ("count", "usage", "price"):
            return error(400, CODE_INVALID_PARAMETER, f"TriggerBy {trigger_by!r} must be count, usage or price")
        recurring = form.get("Recurring", "")
        if recurring not in ("", "daily", "monthly", "yearly", "alltime"):
            return error(400, CODE_INVALID_PARAMETER, f"Recurring {recurring!r} must be daily, monthly or yearly")
        method = form.get("CallbackMethod", "POST").upper()
        if method not in ("GET", "POST"):
            return error(400, CODE_INVALID_PARAMETER, f"CallbackMethod {method!r} must be GET or POST")
        sid = "UT" + secrets.token_hex(16)
        now = _rfc2822_now()
        trigger = {
            "account_sid": account,
            "api_version": API_VERSION,
            "callback_method": method,
            "callback_url": form["CallbackUrl"],
            "current_value": self._current_value(account, category, trigger_by, recurring),
            "date_created": now,
            "date_fired": None,
            "date_updated": now,
            "friendly_name": form.get("FriendlyName", ""),
            "recurring": "" if recurring == "alltime" else recurring,
            "sid": sid,
            "trigger_by": trigger_by,
            "trigger_value": value,
            "uri": f"/{API_VERSION}/Accounts/{account}/Usage/Triggers/{sid}.json",
            "usage_category": category,
            "usage_record_uri": f"/{API_VERSION}/Accounts/{account}/Usage/Records.json?Category={category}",
        }
        with self._lock:
            self.triggers[sid] = trigger
            self.trigger_forms[sid] = dict(form)
        return Reply(201, trigger)

    def _route_list_triggers(self, request: FakeRequest, account: str) -> Reply:
        query = request.query
        with self._lock:
            items = [t for t in self.triggers.values() if t["account_sid"] == account]
        for param, key in (("UsageCategory", "usage_category"), ("TriggerBy", "trigger_by")):
            if query.get(param):
                items = [t for t in items if t[key] == query[param]]
        if "Recurring" in query:
            wanted = "" if query["Recurring"] == "alltime" else query["Recurring"]
            items = [t for t in items if t["recurring"] == wanted]
        filters = {k: query[k] for k in ("UsageCategory", "TriggerBy", "Recurring") if k in query}
        return self._page(request, items, "usage_triggers", filters)

    def _route_fetch_trigger(self, request: FakeRequest, account: str, sid: str) -> Reply:
        trigger = self._trigger(account, sid)
        return Reply(200, trigger) if trigger is not None else self._not_found(request)

    def _route_update_trigger(self, request: FakeRequest, account: str, sid: str) -> Reply:
        with self._lock:
            trigger = self._trigger(account, sid)
            if trigger is None:
                return self._not_found(request)
            for param, key in (("CallbackUrl", "callback_url"), ("FriendlyName", "friendly_name")):
                if param in request.form:
                    trigger[key] = request.form[param]
            if "CallbackMethod" in request.form:
                trigger["callback_method"] = request.form["CallbackMethod"].upper()
            trigger["date_updated"] = _rfc2822_now()
            return Reply(200, dict(trigger))

    def _route_delete_trigger(self, request: FakeRequest, account: str, sid: str) -> Reply:
        with self._lock:
            if self._trigger(account, sid) is None:
                return self._not_found(request)
            self.deleted_triggers[sid] = self.triggers.pop(sid)
        return Reply(204)

    # --- helpers ------------------------------------------------------------

    def _trigger(self, account: str, sid: str) -> dict[str, Any] | None:
        with self._lock:
            trigger = self.triggers.get(sid)
            return trigger if trigger is not None and trigger["account_sid"] == account else None

    def _known_categories(self) -> set[str]:
        with self._lock:
            known = set(self.categories)
            for items in self._records.values():
                known.update(str(r.get("category")) for r in items)
        return known

    def _current_value(self, account: str, category: str, trigger_by: str, recurring: str) -> str:
        resource = {"daily": "Today", "monthly": "ThisMonth"}.get(recurring, "AllTime")
        for record in self.records(resource, account_sid=account):
            if record.get("category") == category:
                return str(record.get(trigger_by) or "0")
        return "0"

    def _page(self, request: FakeRequest, items: list[Any], key: str, filters: dict[str, str]) -> Reply:
        """One page of `items`, with Twilio's paging keys; the PageToken encodes the offset."""
        query = request.query
        try:
            size = int(query.get("PageSize", DEFAULT_PAGE_SIZE))
            offset = _decode_token(query["PageToken"]) if query.get("PageToken") else 0
        except ValueError:
            return error(400, CODE_INVALID_PARAMETER, "PageSize or PageToken is not valid")
        if size < 1:
            return error(400, CODE_INVALID_PARAMETER, "PageSize must be at least 1")
        size = min(size, MAX_PAGE_SIZE)
        page_number = offset // size
        chunk = items[offset : offset + size]

        def uri(page: int, start: int) -> str:
            params = {**filters, "PageSize": str(size), "Page": str(page)}
            if start:
                params["PageToken"] = _encode_token(start)
            return f"{request.path}?{urlencode(params)}"

        body: dict[str, Any] = {
            "first_page_uri": uri(0, 0),
            "next_page_uri": uri(page_number + 1, offset + size) if offset + size < len(items) else None,
            "previous_page_uri": uri(page_number - 1, max(0, offset - size)) if offset > 0 else None,
            "page": page_number,
            "page_size": size,
            "start": offset,
            "end": offset + max(len(chunk) - 1, 0),
            "uri": uri(page_number, offset),
            key: chunk,
        }
        return Reply(200, body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops connections when 16+ threads connect at once
    fake: FakeTwilio

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is expected in the delay tests; stay quiet.
        pass


class _Handler(BaseHTTPRequestHandler):
    """HTTP in, `FakeRequest` to the fake, `Reply` out. No Twilio logic here."""

    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, like api.twilio.com, so pooling is exercised
    disable_nagle_algorithm = True  # else small replies wait ~40 ms for a delayed ACK
    wbufsize = 64 * 1024  # headers and body leave in one write (flushed after each request)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        form: dict[str, str] = {}
        if "application/x-www-form-urlencoded" in self.headers.get("Content-Type", ""):
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        request = FakeRequest(
            method=self.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            form=form,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        self._send(self.server.fake.handle(request))

    def _send(self, reply: Reply) -> None:
        if reply.body is None:
            payload, content_type = b"", "application/json"
        elif isinstance(reply.body, str):
            payload = reply.body.encode()
            content_type = "text/html" if reply.body.lstrip().startswith("<") else "text/plain"
        else:
            payload, content_type = json.dumps(reply.body).encode(), "application/json"
        self.send_response(reply.status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Twilio-Request-Id", "RQ" + secrets.token_hex(16))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read fake.requests instead of stderr noise


def _load_categories() -> frozenset[str]:
    try:
        lines = _CATEGORIES_FILE.read_text(encoding="utf-8").splitlines()
    except OSError:
        return _BASIC_CATEGORIES
    return _BASIC_CATEGORIES | {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def _category_names(n: int) -> list[str]:
    """`n` distinct category names: real ones first, then made-up ones."""
    real = ["sms", "calls", "mms", "phonenumbers", "recordings", "lookups", "calls-inbound", "sms-inbound"]
    return real[:n] + [f"fake-category-{i:04d}" for i in range(max(0, n - len(real)))]


def _today() -> date:
    return datetime.now(UTC).date()


def _query_date(value: str | None) -> date | None:
    """`YYYY-MM-DD`, or Twilio's relative `-30days` / `+30days`; ValueError otherwise."""
    if not value:
        return None
    relative = re.fullmatch(r"([+-])(\d+)days", value)
    if relative:
        days = int(relative[2])
        return _today() + timedelta(days=days if relative[1] == "+" else -days)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a valid date (YYYY-MM-DD)")


def _overlaps(record: dict[str, Any], start: date | None, end: date | None) -> bool:
    try:
        r_start = date.fromisoformat(str(record.get("start_date")))
        r_end = date.fromisoformat(str(record.get("end_date")))
    except ValueError:
        return True
    return (start is None or r_end >= start) and (end is None or r_start <= end)


def _sum_records(groups: list[list[dict[str, Any]]], account_sid: str) -> list[dict[str, Any]]:
    """Several accounts' records added up per category and dates, reported under `account_sid`."""
    merged: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
    for records in groups:
        for record in records:
            key = (record.get("category"), record.get("start_date"), record.get("end_date"))
            if key not in merged:
                merged[key] = {**record, "account_sid": account_sid}
                continue
            into = merged[key]
            for name in ("count", "usage", "price"):
                into[name] = _add_numbers(into.get(name), record.get(name))
    return list(merged.values())


def _add_numbers(a: Any, b: Any) -> Any:
    """Two record numbers (strings, as Twilio sends them) added; a missing one counts as absent."""
    try:
        values = [Decimal(str(v)) for v in (a, b) if v is not None and v != ""]
    except ArithmeticError:  # a deliberately malformed value: keep it as it was
        return a
    return str(sum(values, Decimal(0))) if values else a


def _encode_token(offset: int) -> str:
    return "PA" + base64.urlsafe_b64encode(f"offset={offset}".encode()).decode()


def _decode_token(token: str) -> int:
    if not token.startswith("PA"):
        raise ValueError(token)
    decoded = base64.urlsafe_b64decode(token[2:].encode()).decode()
    if not decoded.startswith("offset="):
        raise ValueError(token)
    return int(decoded.removeprefix("offset="))


def _rfc2822_now() -> str:
    return format_datetime(datetime.now(UTC).replace(microsecond=0))
