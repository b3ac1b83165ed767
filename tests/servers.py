"""Serve the app for tests and benchmarks that want real HTTP: a WSGI app on a thread, or
usage-bot under gunicorn exactly as the Procfile's `web:` line runs it; and Twilio callbacks
signed as Twilio signs them."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

from flask import Flask
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent
PROCFILE_WEB = ["gunicorn", "-c", "gunicorn.conf.py", "app:app"]  # the Procfile's `web:` line


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """Yield the base URL of `app` served by a threaded werkzeug server."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))  # gunicorn.conf.py binds 0.0.0.0:$PORT
        return s.getsockname()[1]


def sockets_on_port(port: int) -> dict[str, set[str]]:
    """The inodes of the TCP sockets whose own end is `port`, by state ("0A" listening, "01"
    established), from Linux's /proc/net/tcp and tcp6; OSError where there is no such file."""
    found: dict[str, set[str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for fields in (line.split() for line in Path(table).read_text().splitlines()[1:]):
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.setdefault(fields[3], set()).add(fields[9])
    return found


def app_env(*, slack_api_url: str, database_url: str, **extra: str) -> dict[str, str]:
    """usage-bot's environment, pointing at the fakes (the Twilio credentials of tests/conftest.py)."""
    from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL
    from tests.fakes.slack import VALID_TOKEN
    from tests.slack_requests import SIGNING_SECRET

    return {
        "SLACK_BOT_TOKEN": VALID_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PUBLIC_URL": PUBLIC_URL,
        "DATABASE_URL": database_url,
        "SLACK_API_URL": slack_api_url,
        "TWILIO_API_URL": "http://127.0.0.1:9",
        **extra,
    }


@contextmanager
def gunicorn_app(
    env: Mapping[str, str], *, log_dir: str | None = None, timeout: float = 60, app: str = "app:app"
) -> Iterator[int]:
    """Run usage-bot as the Procfile does (`gunicorn -c gunicorn.conf.py app:app`, from the repo
    root) with `env` on a free port; yield the port once GET /healthz answers 200. `app`: another
    WSGI app served by the same command (bench/bare_app.py's baseline)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="usage-bot-gunicorn-", dir=log_dir) as run_dir:
        # gunicorn >= 25 opens a control socket in $XDG_RUNTIME_DIR: one of its own per server.
        full_env = {**os.environ, **env, "PORT": str(port), "XDG_RUNTIME_DIR": run_dir, "PYTHONPATH": str(ROOT)}
        command = [str(Path(sys.executable).parent / PROCFILE_WEB[0]), *PROCFILE_WEB[1:-1], app]
        with open(Path(run_dir) / "gunicorn.log", "wb") as log:
            proc = subprocess.Popen(
                command, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            _wait_healthy(proc, port, timeout, Path(run_dir) / "gunicorn.log")
            yield port
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)


def _wait_healthy(proc: subprocess.Popen[bytes], port: int, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not answer /healthz within {timeout} s:\n{log.read_text()[-2000:]}")


def trigger_sid(i: int) -> str:
    return f"UT{i:032x}"


def signed_callback(i: int, channel: str, *, token: str = "") -> tuple[str, bytes, dict[str, str]]:
    """(path, body, headers) of Twilio's callback for firing `i` of a usage trigger, to `channel`,
    signed as Twilio signs it (https://www.twilio.com/docs/usage/webhooks/webhooks-security)."""
    from bot.alerts.signature import compute_signature
    from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL

    path = f"/twilio/usage-triggers?channel={channel}"
    params = {
        "AccountSid": ACCOUNT_SID,
        "UsageTriggerSid": trigger_sid(i),
        "UsageCategory": "totalprice",
        "TriggerBy": "price",
        "TriggerValue": "100",
        "CurrentValue": f"{100 + i}.00",
        "DateFired": "Tue, 01 Dec 2026 00:00:00 +0000",
        "IdempotencyToken": token or f"firing-{i}",
    }
    signature = compute_signature(AUTH_TOKEN, PUBLIC_URL + path, params.items())
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
    return path, urlencode(params).encode(), headers


def send_all(port: int, requests: list[tuple[str, bytes, dict[str, str]]], *, clients: int = 16) -> list[int]:
    """POST every request over `clients` keep-alive connections at once; the statuses, in order."""
    statuses = [0] * len(requests)
    next_index = iter(range(len(requests)))
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            while True:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                path, body, headers = requests[i]
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                statuses[i] = response.status
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses
