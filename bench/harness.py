"""What the benchmarks share: gunicorn under the Procfile's config, and a multiprocess load generator.

    from bench import harness

    env = harness.usage_bot_env(slack_api_url=..., twilio_api_url=..., database_url=...)
    with harness.gunicorn("app:app", env, log_dir=tmp) as server:       # waits for GET /healthz
        spec = harness.LoadSpec(server.port, "/slack/events", body, headers, check=harness.ExpectBody(b"ok"))
        result = harness.run_load(spec, label="usage-bot", clients=16, seconds=10)
    print(harness.format_results([result]))

Every server is started with exactly `gunicorn -c gunicorn.conf.py <app>` from the repo root (the
Procfile's `web:` line), so usage-bot and the bare baseline (`bench.bare_app:app`) differ only in
the app. Only loopback is used. Every loop here is bounded in count and in time.

This module imports nothing from the app or the tests at import time: the load processes are
spawned and import it, and should stay light.
"""

from __future__ import annotations

import http.client
import math
import multiprocessing
import os
import queue as queue_module
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
BARE_APP = "bench.bare_app:app"
USAGE_BOT_APP = "app:app"

# The Twilio credentials the fake is started with (the same values as tests/conftest.py).
TWILIO_ACCOUNT_SID = "AC" + "1" * 32
TWILIO_AUTH_TOKEN = "twilio-test-auth-token"

REQUEST_TIMEOUT = 10.0  # seconds; a load request that takes longer is an error, and the client goes on
MAX_REQUESTS_PER_CLIENT = 1_000_000  # a count bound on top of the time bound
READY_TIMEOUT = 30.0  # seconds for gunicorn to answer GET /healthz


# --- small helpers ---------------------------------------------------------------------------


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so the `finally`s that stop the servers run (as on Ctrl-C)."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def run_script(main: Callable[[], int]) -> None:
    """Run a benchmark's `main` and exit with its status; SIGTERM and Ctrl-C stop the servers."""
    exit_on_sigterm()
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)


def free_port() -> int:
    """A TCP port free right now on every interface (gunicorn.conf.py binds 0.0.0.0:$PORT)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", 0))
        return int(sock.getsockname()[1])


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of `values`; NaN if there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table, first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def usage_bot_env(*, slack_api_url: str, twilio_api_url: str, database_url: str, **extra: str) -> dict[str, str]:
    """The environment usage-bot is started with against the fakes (tests/fakes)."""
    from tests.fakes.slack import VALID_TOKEN
    from tests.slack_requests import SIGNING_SECRET

    return {
        "SLACK_BOT_TOKEN": VALID_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
        "SLACK_API_URL": slack_api_url,
        "TWILIO_API_URL": twilio_api_url,
        "DATABASE_URL": database_url,
        "DELIVERY_IN_WEB": "false",
        **extra,
    }


# --- gunicorn --------------------------------------------------------------------------------


def gunicorn_command(app_spec: str) -> list[str]:
    """The Procfile's `web:` command for `app_spec` (only the app differs between servers)."""
    venv_gunicorn = Path(sys.executable).parent / "gunicorn"
    exe = str(venv_gunicorn) if venv_gunicorn.exists() else (shutil.which("gunicorn") or "gunicorn")
    return [exe, "-c", "gunicorn.conf.py", app_spec]


@dataclass
class Gunicorn:
    """A gunicorn master we started (in its own process group, with its workers)."""

    app: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the master and its live workers (Linux /proc)."""
        return _process_tree_cpu(self.proc.pid)

    def stop(self, timeout: float = 15.0) -> None:
        """Quick shutdown (SIGINT), then SIGKILL to the group if it lingers. Idempotent."""
        pgid = self.proc.pid  # start_new_session=True: the master leads its own group
        if self.proc.poll() is None:
            _signal_group(pgid, signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(pgid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        # Workers normally exit with the master; make sure none outlives it.
        _signal_group(pgid, signal.SIGKILL)


def start_gunicorn(
    app_spec: str,
    env: Mapping[str, str],
    *,
    log_dir: Path,
    ready_path: str = "/healthz",
    timeout: float = READY_TIMEOUT,
) -> Gunicorn:
    """Start `gunicorn -c gunicorn.conf.py app_spec` on a free port; return once `ready_path` is 200."""
    port = free_port()
    # gunicorn >= 25 opens a control socket in $XDG_RUNTIME_DIR (else ~/.gunicorn/gunicorn.ctl):
    # give each server its own, so that servers started side by side (or by others) don't share one.
    runtime_dir = log_dir / f"gunicorn-run-{port}"
    runtime_dir.mkdir(mode=0o700, exist_ok=True)
    full_env = {**os.environ, **env, "PORT": str(port), "XDG_RUNTIME_DIR": str(runtime_dir)}
    log_path = log_dir / f"gunicorn-{app_spec.replace(':', '-').replace('.', '-')}-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            gunicorn_command(app_spec),
            cwd=REPO_ROOT,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C is ours to handle; stop() signals the whole group
        )
    server = Gunicorn(app_spec, port, proc, log_path)
    try:
        _wait_ready(server, ready_path, timeout)
    except BaseException:
        server.stop()
        raise
    return server


@contextmanager
def gunicorn(
    app_spec: str, env: Mapping[str, str], *, log_dir: Path, ready_path: str = "/healthz"
) -> Iterator[Gunicorn]:
    server = start_gunicorn(app_spec, env, log_dir=log_dir, ready_path=ready_path)
    try:
        yield server
    finally:
        server.stop()


def _wait_ready(server: Gunicorn, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"gunicorn {server.app} exited with {server.proc.returncode}:\n{server.log_tail()}")
        conn = http.client.HTTPConnection(LOOPBACK, server.port, timeout=2)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                return
            last = f"HTTP {response.status}"
        except (OSError, http.client.HTTPException) as exc:
            last = repr(exc)
        finally:
            conn.close()
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn {server.app} not ready after {timeout:.0f} s ({last}):\n{server.log_tail()}")


def machine_cpu_seconds() -> float | None:
    """Busy CPU seconds of the whole machine since boot (Linux /proc/stat), None elsewhere."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in first[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(max_wait: float, *, busy_cores: float = 0.2, sample: float = 2.0) -> float | None:
    """Wait (at most `max_wait` s) until the machine's busy CPU over `sample` s is below `busy_cores`.

    Other jobs on the machine skew a benchmark; this gives them a chance to finish. Returns the last
    busy figure (cores), or None where /proc/stat is unavailable.
    """
    deadline = time.monotonic() + max_wait
    busy = None
    while True:
        before = machine_cpu_seconds()
        time.sleep(sample)
        after = machine_cpu_seconds()
        if before is None or after is None:
            return None
        busy = (after - before) / sample
        if busy < busy_cores or time.monotonic() >= deadline:
            return busy


def load_average() -> str:
    try:
        return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average unknown"


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _process_tree_cpu(pid: int) -> float:
    """CPU seconds of `pid` and its direct children (a gunicorn master and its workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        ppid = int(fields[1])
        if int(entry.name) == pid or ppid == pid:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def request_once(
    port: int, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
) -> tuple[int, bytes, float]:
    """One request on a fresh connection: (status, body, seconds)."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=REQUEST_TIMEOUT)
    try:
        started = time.perf_counter()
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        data = response.read()
        return response.status, data, time.perf_counter() - started
    finally:
        conn.close()


# --- load generator --------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpectBody:
    """A response check: the status is `status` and the body contains `needle`.

    Checks run in the load processes, so they must be picklable: a module-level function
    `(status: int, body: bytes) -> bool`, or an instance of a class like this one.
    """

    needle: bytes = b""
    status: int = 200

    def __call__(self, status: int, body: bytes) -> bool:
        return status == self.status and self.needle in body


@dataclass(frozen=True)
class LoadSpec:
    """The one request every client sends over and over on its keep-alive connection."""

    port: int
    path: str
    body: bytes
    headers: Mapping[str, str]
    check: Callable[[int, bytes], bool] = ExpectBody()
    method: str = "POST"
    host: str = LOOPBACK
    # For requests that must differ (e.g. each callback its own idempotency token): a picklable
    # module-level function from a unique key to (path, body, headers), used instead of the above.
    vary: Callable[[str], tuple[str, bytes, Mapping[str, str]]] | None = None


@dataclass
class LoadResult:
    label: str
    clients: int
    processes: int
    window: float  # seconds measured (after the warm-up)
    ok: int  # responses that passed the check, completed inside the window
    errors: int  # transport errors, non-200s and failed checks, completed inside the window
    latencies: list[float]  # seconds, every request completed inside the window, sorted
    warmup_requests: int = 0
    reconnects: int = 0  # connections (re)opened after the first one per client
    client_cpu: float = 0.0  # CPU seconds the load processes used in the window
    server_cpu: float | None = None  # CPU seconds the server used in the window, if measured
    other_cpu: float | None = None  # CPU seconds the rest of the machine used meanwhile (noise)
    error_samples: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return self.ok + self.errors

    @property
    def rps(self) -> float:
        """Successful responses per second."""
        return self.ok / self.window if self.window > 0 else math.nan

    def ms(self, p: float) -> float:
        return percentile(self.latencies, p) * 1000

    @property
    def max_ms(self) -> float:
        return self.latencies[-1] * 1000 if self.latencies else math.nan


def run_load(
    spec: LoadSpec,
    *,
    label: str,
    clients: int = 16,
    processes: int = 4,
    warmup: float = 1.0,
    seconds: float = 10.0,
    max_requests_per_client: int = MAX_REQUESTS_PER_CLIENT,
    server_cpu: Callable[[], float] | None = None,
) -> LoadResult:
    """`clients` keep-alive clients (threads spread over `processes` spawned processes) send `spec`
    back to back for `warmup` + `seconds`; only requests completed after the warm-up count.

    Each client stops by itself at the end of the window or after `max_requests_per_client`; a
    request that hangs fails after REQUEST_TIMEOUT. `server_cpu`, if given (e.g. Gunicorn.cpu_seconds),
    is sampled at both ends of the whole run to report the server's CPU cost per request.
    """
    processes = max(1, min(processes, clients))
    per_process = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes + 1)
    results: Any = ctx.Queue()
    workers = [
        ctx.Process(
            target=_load_process,
            args=(spec, n, warmup, seconds, max_requests_per_client, barrier, results),
            name=f"load-{i}",
            daemon=True,
        )
        for i, n in enumerate(per_process)
    ]
    for worker in workers:
        worker.start()
    try:
        try:
            barrier.wait(timeout=60)  # every process has its connections open
        except threading.BrokenBarrierError:
            try:
                failure = results.get(timeout=5).get("error", "?")
            except queue_module.Empty:
                failure = "no report"
            raise RuntimeError(f"{label}: a load process could not start:\n{failure}") from None
        cpu_before = server_cpu() if server_cpu else None
        machine_before = machine_cpu_seconds()
        deadline = time.monotonic() + warmup + seconds + REQUEST_TIMEOUT + 30
        parts = []
        for _ in workers:
            try:
                part = results.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue_module.Empty:
                raise RuntimeError(f"{label}: a load process did not report in time") from None
            if "error" in part:
                raise RuntimeError(f"{label}: a load process failed:\n{part['error']}")
            parts.append(part)
        cpu_after = server_cpu() if server_cpu else None
        machine_after = machine_cpu_seconds()
        for worker in workers:
            worker.join(timeout=10)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=5)
    latencies = sorted(x for part in parts for x in part["latencies"])
    # CPU was sampled around warm-up + window: scale every figure to the window.
    scale = seconds / (warmup + seconds)
    client_cpu = sum(p["cpu"] for p in parts)
    server_total = (cpu_after - cpu_before) if cpu_before is not None and cpu_after is not None else None
    other = None
    if server_total is not None and machine_before is not None and machine_after is not None:
        other = max(0.0, machine_after - machine_before - server_total - client_cpu) * scale
    return LoadResult(
        label=label,
        clients=clients,
        processes=processes,
        window=seconds,
        ok=sum(p["ok"] for p in parts),
        errors=sum(p["errors"] for p in parts),
        latencies=latencies,
        warmup_requests=sum(p["warmup"] for p in parts),
        reconnects=sum(p["reconnects"] for p in parts),
        client_cpu=client_cpu * scale,
        server_cpu=None if server_total is None else server_total * scale,
        other_cpu=other,
        error_samples=[s for p in parts for s in p["error_samples"]][:5],
    )


def format_results(results: Sequence[LoadResult]) -> str:
    rows = []
    for r in results:
        cpu = f"{r.server_cpu / r.requests * 1000:.2f}" if r.server_cpu is not None and r.requests else "-"
        rows.append(
            [
                r.label,
                f"{r.rps:,.0f}",
                f"{r.ok:,}",
                f"{r.errors:,}",
                f"{r.ms(50):.1f}",
                f"{r.ms(90):.1f}",
                f"{r.ms(99):.1f}",
                f"{r.max_ms:.1f}",
                cpu,
                f"{r.client_cpu / r.window * 100:.0f}%",
                "-" if r.other_cpu is None else f"{r.other_cpu / r.window * 100:.0f}%",
                r.reconnects,
            ]
        )
    headers = ["server", "req/s", "ok", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms", "srv CPU ms/req"]
    return format_table([*headers, "client CPU", "other CPU", "reconnects"], rows)


RESULTS_LEGEND = (
    "req/s: responses that passed the check per second; latencies: every request completed in the window;\n"
    "srv CPU ms/req: CPU time of the gunicorn master + workers per request; client CPU / other CPU: load\n"
    "processes / the rest of the machine (noise: other jobs), in % of one core over the window."
)


def _load_process(
    spec: LoadSpec,
    threads: int,
    warmup: float,
    seconds: float,
    max_requests: int,
    barrier: Any,
    results: Any,
) -> None:
    """One load process: `threads` clients, each on its own keep-alive connection."""
    try:
        conns = [http.client.HTTPConnection(spec.host, spec.port, timeout=REQUEST_TIMEOUT) for _ in range(threads)]
        for conn in conns:
            conn.connect()  # http.client sets TCP_NODELAY and sends headers + body in one write
        barrier.wait(timeout=60)
        cpu0 = time.process_time()
        start = time.perf_counter()
        window = (start + warmup, start + warmup + seconds)
        stats = [_ClientStats() for _ in range(threads)]
        clients = [
            threading.Thread(target=_client, args=(conn, spec, window, max_requests, s), daemon=True)
            for conn, s in zip(conns, stats, strict=True)
        ]
        for client in clients:
            client.start()
        for client in clients:
            client.join(timeout=max(0.1, window[1] - time.perf_counter()) + REQUEST_TIMEOUT + 5)
        cpu = time.process_time() - cpu0
        for conn in conns:
            conn.close()
        results.put(
            {
                "latencies": [x for s in stats for x in s.latencies],
                "ok": sum(s.ok for s in stats),
                "errors": sum(s.errors for s in stats),
                "warmup": sum(s.warmup for s in stats),
                "reconnects": sum(s.reconnects for s in stats),
                "cpu": cpu,
                "error_samples": [e for s in stats for e in s.error_samples][:5],
            }
        )
    except BaseException:
        barrier.abort()  # the parent stops waiting for us at once
        results.put({"error": traceback.format_exc()})


@dataclass
class _ClientStats:
    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    errors: int = 0
    warmup: int = 0
    reconnects: int = 0
    error_samples: list[str] = field(default_factory=list)


def _client(
    conn: http.client.HTTPConnection,
    spec: LoadSpec,
    window: tuple[float, float],
    max_requests: int,
    stats: _ClientStats,
) -> None:
    begin, end = window
    path, body, headers = spec.path, spec.body, dict(spec.headers)
    clock = time.perf_counter
    client_key = f"{os.getpid()}-{threading.get_ident()}"
    for n in range(max_requests):
        if spec.vary is not None:
            path, body, headers = spec.vary(f"{client_key}-{n}")
        started = clock()
        if started >= end:
            break
        if conn.sock is None:
            stats.reconnects += 1  # http.client reopens it on request()
        try:
            conn.request(spec.method, path, body=body, headers=dict(headers))

            response = conn.getresponse()
            answer = response.read()
            good = spec.check(response.status, answer)
            problem = "" if good else f"HTTP {response.status}: {answer[:200]!r}"

        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            problem = repr(exc)
        finished = clock()
        if finished < begin:
            stats.warmup += 1
            continue
        if finished > end:
            break  # straddles the end of the window: not counted
        stats.latencies.append(finished - started)
        if problem:
            stats.errors += 1
            if len(stats.error_samples) < 3:
                stats.error_samples.append(problem)
        else:
            stats.ok += 1
