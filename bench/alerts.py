"""Alert delivery, end to end: signed Twilio callbacks into usage-bot under gunicorn, posts into a fake Slack.

    PYTHONPATH=. .venv/bin/python bench/alerts.py latency [--rate 20] [--seconds 15] [--channels 20]
    PYTHONPATH=. .venv/bin/python bench/alerts.py storm [--alerts 300] [--within 3]
    PYTHONPATH=. .venv/bin/python bench/alerts.py all

latency: callbacks at a steady rate, spread round-robin over `--channels` channels (Slack allows about
one message per second per channel, so 20/s into one channel is a storm, not a steady state), and the
time from sending each callback to the fake Slack accepting the chat.postMessage that names it.

storm: `--alerts` callbacks for one channel within `--within` seconds, against a fake Slack that
enforces one message per second in that channel (429 + Retry-After beyond it): how many messages,
how many 429s, how long until the last alert is posted, and whether every alert is named.

The app runs exactly as the Procfile's web: line runs it (gunicorn -c gunicorn.conf.py app:app), with
the delivery loop under the web command (the default, DELIVERY_IN_WEB=true: its own process).
"""

from __future__ import annotations

import argparse
import http.client
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runnable without PYTHONPATH=.

from bench import common
from bot.alerts.signature import compute_signature
from tests.fakes.slack import FakeSlack

PUBLIC_URL = "https://usage-bot.example.com"
PATH = "/twilio/usage-triggers"


def callback(channel: str, i: int) -> tuple[str, bytes, dict[str, str]]:
    """A signed callback for alert number `i` (its own trigger SID, so each is told apart in Slack)."""
    query = urlencode({"channel": channel})
    params = {
        "AccountSid": common.TWILIO_ACCOUNT_SID,
        "UsageTriggerSid": f"UT{i:032x}",
        "UsageCategory": "sms",
        "TriggerBy": "count",
        "TriggerValue": "1000",
        "CurrentValue": str(1000 + i),
        "DateFired": "Wed, 25 Nov 2026 12:00:00 +0000",
        "IdempotencyToken": f"bench-{i}",
    }
    signature = compute_signature(common.TWILIO_AUTH_TOKEN, f"{PUBLIC_URL}{PATH}?{query}", params.items())
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
    return f"{PATH}?{query}", urlencode(params).encode(), headers


def first_post_times(slack: FakeSlack, n: int) -> dict[int, float]:
    """For each alert number, when the fake Slack first accepted a message naming it."""
    seen: dict[int, float] = {}
    with slack.lock:
        posts = list(slack.posted)
    for post in posts:
        text = str(post.blocks)
        for i in range(n):
            if i not in seen and f"UT{i:032x}" in text:
                seen[i] = post.at
    return seen


def send_at_rate(port: int, channels: list[str], total: int, rate: float) -> tuple[dict[int, float], int]:
    """Send `total` callbacks at `rate` per second from a few threads; (send time per alert, non-200s)."""
    sent: dict[int, float] = {}
    failures = 0
    lock = threading.Lock()
    start = time.time() + 0.2
    next_index = iter(range(total))

    def worker() -> None:
        nonlocal failures
        conn = http.client.HTTPConnection(common.LOOPBACK, port, timeout=common.REQUEST_TIMEOUT)
        for i in next_index:
            target = start + i / rate
            time.sleep(max(0.0, target - time.time()))
            path, body, headers = callback(channels[i % len(channels)], i)
            began = time.time()
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(common.LOOPBACK, port, timeout=common.REQUEST_TIMEOUT)
                ok = False
            with lock:
                sent[i] = began
                failures += 0 if ok else 1
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=total / rate + 60)
    return sent, failures


def wait_for_all(slack: FakeSlack, n: int, timeout: float) -> dict[int, float]:
    deadline = time.monotonic() + timeout
    while True:
        seen = first_post_times(slack, n)
        if len(seen) == n or time.monotonic() > deadline:
            return seen
        time.sleep(0.2)


def run_latency(rate: float, seconds: float, channel_count: int, tmp: Path, *, judged: bool = True) -> bool:
    total = int(rate * seconds)
    channels = [f"C{c:08d}" for c in range(channel_count)]
    with FakeSlack() as slack:
        env = common.usage_bot_env(
            slack_api_url=slack.api_url,
            twilio_api_url="http://127.0.0.1:9",
            database_url=f"sqlite:///{tmp}/latency.db",
            PUBLIC_URL=PUBLIC_URL,
            DELIVERY_IN_WEB="true",
        )
        with common.gunicorn(common.USAGE_BOT_APP, env, log_dir=tmp) as server:
            sent, failures = send_at_rate(server.port, channels, total, rate)
            seen = wait_for_all(slack, total, timeout=60)
        latencies = sorted(seen[i] - sent[i] for i in seen if i in sent)
        messages = len(slack.posted)
    p50 = common.percentile(latencies, 50) * 1000
    p99 = common.percentile(latencies, 99) * 1000
    ok = len(seen) == total and failures == 0 and p99 <= 500
    print(
        common.format_table(
            [
                "callbacks",
                "rate/s",
                "channels",
                "non-200",
                "posted",
                "messages",
                "p50 ms",
                "p99 ms",
                "max ms",
                "p99 ≤ 500",
            ],
            [
                [
                    total,
                    f"{rate:g}",
                    channel_count,
                    failures,
                    len(seen),
                    messages,
                    f"{p50:.0f}",
                    f"{p99:.0f}",
                    f"{latencies[-1] * 1000:.0f}" if latencies else "-",
                    common.verdict(ok) if judged else "(not a target)",
                ]
            ],
        )
    )
    return ok


def run_storm(alerts: int, within: float, tmp: Path) -> bool:
    with FakeSlack(channel_rate=1.0, channel_burst=1, retry_after=1) as slack:
        env = common.usage_bot_env(
            slack_api_url=slack.api_url,
            twilio_api_url="http://127.0.0.1:9",
            database_url=f"sqlite:///{tmp}/storm.db",
            PUBLIC_URL=PUBLIC_URL,
            DELIVERY_IN_WEB="true",
        )
        with common.gunicorn(common.USAGE_BOT_APP, env, log_dir=tmp) as server:
            began = time.time()
            sent, failures = send_at_rate(server.port, ["C0STORM"], alerts, alerts / within)
            fired_in = max(sent.values()) - min(sent.values())
            seen = wait_for_all(slack, alerts, timeout=120)
        last = max(seen.values()) - began if seen else float("nan")
        messages = len(slack.posted)
        limited = slack.status_counts.get(429, 0)
        twice = sum(1 for i in range(alerts) if sum(f"UT{i:032x}" in str(p.blocks) for p in slack.posted) > 1)
    ok = len(seen) == alerts and failures == 0 and messages < 80 and limited <= 10 and twice == 0
    print(
        common.format_table(
            [
                "alerts",
                "fired in s",
                "non-200",
                "named",
                "named twice",
                "messages",
                "429s",
                "last posted after s",
                "verdict",
            ],
            [
                [
                    alerts,
                    f"{fired_in:.2f}",
                    failures,
                    len(seen),
                    twice,
                    messages,
                    limited,
                    f"{last:.1f}",
                    common.verdict(ok),
                ]
            ],
        )
    )
    print("targets: every alert named once, < 80 messages, ≤ 10 responses 429")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=["latency", "storm", "all"])
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--channels", type=int, default=20)
    parser.add_argument("--alerts", type=int, default=300)
    parser.add_argument("--within", type=float, default=3.0)
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="usage-bot-bench-") as tmp:
        if args.scenario in ("latency", "all"):
            print(f"\nAlert latency, callback → chat.postMessage, steady {args.rate:g}/s over {args.channels} channels")
            ok &= run_latency(args.rate, args.seconds, args.channels, Path(tmp))
            if args.channels != 1:
                print("\nSame rate into one channel (Slack's ~1 message/s per channel groups them; informative)")
                one = Path(tmp) / "one"
                one.mkdir()
                run_latency(args.rate, args.seconds, 1, one, judged=False)
        if args.scenario in ("storm", "all"):
            print(f"\nStorm: {args.alerts} alerts at one channel within {args.within:g} s")
            ok &= run_storm(args.alerts, args.within, Path(tmp))
    return 0 if ok else 1


if __name__ == "__main__":
    common.run_script(main)
