"""Cold start: from spawning the Procfile's `web:` command to the first acknowledged `/usage help`.

    .venv/bin/python bench/cold_start.py [--spawns 5]

As on a PaaS where `release: python -m bot migrate` ran before: the SQLite database is migrated
first, then each spawn starts a fresh `gunicorn -c gunicorn.conf.py app:app` (2 workers x 16
threads, gunicorn.conf.py) and polls it with a signed `/usage help` every 5 ms until the first
HTTP 200 that carries the help text. Reported: the time from spawn to that answer (median of
`--spawns`, target <= 1.0 s), and the RSS (and PSS) of each worker read from /proc right after
the first answer. The FakeSlack/FakeTwilio are idle (the help ack calls neither).
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runnable without PYTHONPATH=.

from bench import common
from tests.fakes.slack import FakeSlack
from tests.fakes.twilio import FakeTwilio
from tests.slack_requests import sign, slash_command

TARGET_SECONDS = 1.0
HELP_NEEDLE = b"/usage"
POLL_INTERVAL = 0.005
SPAWN_TIMEOUT = 30.0


def first_help(server: common.Gunicorn, body: bytes, started: float) -> float:
    """Poll until `/usage help` is answered 200 with the help text; seconds since `started`."""
    deadline = started + SPAWN_TIMEOUT
    while time.perf_counter() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.proc.returncode}:\n{server.log_tail()}")
        conn = http.client.HTTPConnection(common.LOOPBACK, server.port, timeout=SPAWN_TIMEOUT)
        try:
            conn.request("POST", "/slack/events", body=body, headers=sign(body))
            response = conn.getresponse()
            answer = response.read()
            if response.status == 200 and HELP_NEEDLE in answer:
                return time.perf_counter() - started
            if response.status != 503:
                raise RuntimeError(f"unexpected answer HTTP {response.status}: {answer[:200]!r}")
        except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
            pass  # not listening yet
        finally:
            conn.close()
        time.sleep(POLL_INTERVAL)
    raise RuntimeError(f"no help answer within {SPAWN_TIMEOUT:.0f} s:\n{server.log_tail()}")


def spawn(env: dict[str, str], log_dir: Path, n: int) -> common.Gunicorn:
    """Start the Procfile's web command without waiting for anything (start_gunicorn waits)."""
    port = common.free_port()
    runtime_dir = log_dir / f"gunicorn-run-{n}"
    runtime_dir.mkdir(mode=0o700, exist_ok=True)
    log_path = log_dir / f"cold-{n}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            common.gunicorn_command(common.USAGE_BOT_APP),
            cwd=common.REPO_ROOT,
            env={**os.environ, **env, "PORT": str(port), "XDG_RUNTIME_DIR": str(runtime_dir)},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return common.Gunicorn(common.USAGE_BOT_APP, port, proc, log_path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawns", type=int, default=5, help="fresh processes to time (default 5)")
    parser.add_argument("--wait-quiet", type=float, default=10.0, help="wait up to this long for a quiet machine")
    args = parser.parse_args()
    if not 1 <= args.spawns <= 20:
        parser.error("keep --spawns in [1, 20]")
    print(f"cold start — {time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} CPUs, {common.load_average()}")
    print(f"command: {' '.join(common.gunicorn_command(common.USAGE_BOT_APP))} (the Procfile's web:), SQLite")
    times: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="usage-bot-bench-") as tmp,
        FakeSlack() as slack,
        FakeTwilio(account_sid=common.TWILIO_ACCOUNT_SID, auth_token=common.TWILIO_AUTH_TOKEN) as twilio,
    ):
        tmpdir = Path(tmp)
        database_url = f"sqlite:///{tmpdir}/bench.db"
        env = common.usage_bot_env(slack_api_url=slack.api_url, twilio_api_url=twilio.url, database_url=database_url)
        # The release phase: `python -m bot migrate`, once, before any web process.
        subprocess.run(
            [sys.executable, "-m", "bot", "migrate"], cwd=common.REPO_ROOT, env={**os.environ, **env}, check=True
        )
        body = slash_command("help", slack.response_url("cold"))
        for n in range(1, args.spawns + 1):
            busy = common.wait_for_quiet(args.wait_quiet) if args.wait_quiet else None
            started = time.perf_counter()
            server = spawn(env, tmpdir, n)
            try:
                seconds = first_help(server, body, started)
                memory = common.report_memory(server)
            finally:
                server.stop()
            times.append(seconds)
            noise = "" if busy is None else f", machine busy before: {busy:.2f} cores"
            print(f"spawn {n}: first /usage help after {seconds:.3f} s; {memory}{noise}; {common.load_average()}")
    result = common.median(times)
    print(
        f"spawn -> first acknowledged /usage help, median of {len(times)}: {result:.3f} s  "
        f"target <= {TARGET_SECONDS:.1f} s  {common.verdict(result <= TARGET_SECONDS)}"
    )
    return 0 if result <= TARGET_SECONDS else 1


if __name__ == "__main__":
    common.run_script(main)
