"""What the benchmarks share: servers started with the Procfile's web command, `wrk` as the load
generator, and the measurements around them (CPU and RSS from /proc, a quiet machine).

    from bench import common

    env = common.usage_bot_env(slack_api_url=..., twilio_api_url=..., database_url=...)
    with common.gunicorn(common.USAGE_BOT_APP, env, log_dir=tmp) as server:   # waits for GET /healthz
        common.write_requests(tmp / "requests", [("/slack/events", headers, body)])
        run = common.run_wrk(server, "/slack/events", requests_file=tmp / "requests", label="usage-bot")
    print(common.format_runs([run]))

Every server is started with exactly `gunicorn -c gunicorn.conf.py <app>` from the repo root (the
Procfile's `web:` line), so usage-bot and the bare baseline (`bench.bare_app:app`) differ only in
the app. The client is `wrk` (https://github.com/wg/wrk), a native load generator: it costs the
two cores far less than a Python client would, so the bare baseline is not client-bound. Its Lua
scripts are in bench/lua/. Only loopback is used; every loop and every run here is bounded.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
LUA_DIR = Path(__file__).resolve().with_name("lua")
LOOPBACK = "127.0.0.1"
BARE_APP = "bench.bare_app:app"
USAGE_BOT_APP = "app:app"

# The Twilio credentials the fake is started with (the same values as tests/conftest.py).
TWILIO_ACCOUNT_SID = "AC" + "1" * 32
TWILIO_AUTH_TOKEN = "twilio-test-auth-token"

REQUEST_TIMEOUT = 10.0  # seconds; a request that takes longer is an error (wrk --timeout too)
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

    def worker_pids(self) -> list[int]:
        """The live gunicorn workers (children of the master)."""
        return [pid for pid, ppid in _processes() if ppid == self.proc.pid]

    def worker_memory(self) -> list[tuple[int, int, int | None]]:
        """(pid, RSS KiB, PSS KiB or None) of each worker. RSS counts pages shared with the master
        (forked copy-on-write) in every worker; PSS shares them out, so PSS sums to the real total."""
        return [(pid, *_memory_kib(pid)) for pid in self.worker_pids()]

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


def _processes() -> Iterator[tuple[int, int]]:
    """(pid, parent pid) of every process we can see (Linux /proc)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                yield int(entry.name), int(stat[stat.rindex(")") + 2 :].split()[1])


def _process_tree_cpu(pid: int) -> float:
    """CPU seconds of `pid` and its direct children (a gunicorn master and its workers)."""
    total = 0
    for proc_pid, ppid in list(_processes()):
        if proc_pid == pid or ppid == pid:
            with suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/{proc_pid}/stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
                total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def _memory_kib(pid: int) -> tuple[int, int | None]:
    """(RSS, PSS) of a process in KiB, from /proc/PID/status and smaps_rollup."""
    rss, pss = 0, None
    with suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    with suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss


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


# --- wrk ---------------------------------------------------------------------------------------

WRK_MISSING = "wrk is not installed: sudo apt-get install wrk"
WRK_RESULT_MARK = "WRK_RESULT "  # the line bench/lua/*.lua's done() prints, followed by JSON


def wrk_path() -> str:
    """Where `wrk` is; if it is not installed, say how to install it and exit 2."""
    found = shutil.which("wrk")
    if not found:
        print(WRK_MISSING, file=sys.stderr)
        sys.exit(2)
    return found


@dataclass
class WrkRun:
    """One `wrk` run against one server, with the CPU the parties used meanwhile."""

    label: str
    seconds: float  # as measured by wrk
    requests: int  # responses received in the run
    ok: int  # responses that passed the script's check (HTTP 200, and the body if it checks bodies)
    non_2xx: int  # responses with status >= 400 as wrk counts them (summary.errors.status)
    socket_errors: dict[str, int]  # connect / read / write / timeout
    latency_us: dict[str, float]  # p50 p90 p99 max mean, microseconds
    server_cpu: float | None = None  # CPU seconds of the gunicorn master + workers
    wrk_cpu: float = 0.0  # CPU seconds wrk used
    bench_cpu: float = 0.0  # CPU seconds this process used (the fakes in tests/fakes serve from here)
    other_cpu: float | None = None  # CPU seconds the rest of the machine used meanwhile (noise)
    loadavg: str = ""
    connections: list[int] | None = None  # wrk's connections held by each worker, mid-run
    extra: dict[str, object] | None = None  # whatever else the script's done() reported

    @property
    def rps(self) -> float:
        """Responses that passed the check, per second."""
        return self.ok / self.seconds if self.seconds > 0 else math.nan

    @property
    def errors(self) -> int:
        return self.requests - self.ok + sum(self.socket_errors.values())

    def ms(self, p: str) -> float:
        return self.latency_us.get(p, math.nan) / 1000


def write_requests(path: Path, requests: Iterable[tuple[str, Mapping[str, str], bytes]]) -> int:
    """Write (path, headers, body) requests for bench/lua/replay.lua; returns how many."""
    count = 0
    with open(path, "wb") as out:
        for url_path, headers, body in requests:
            out.write(f"{url_path}\n{len(headers)}\n".encode())
            for name, value in headers.items():
                out.write(f"{name}\n{value}\n".encode())
            out.write(f"{len(body)}\n".encode() + body)
            count += 1
    return count


def run_wrk(
    server: Gunicorn,
    path: str,
    *,
    requests_file: Path,
    label: str,
    cycle: bool = False,
    check: str = "",
    needle: str = "",
    seconds: float = 10.0,
    connections: int = 16,
    threads: int = 2,
) -> WrkRun:
    """`wrk -t threads -c connections -d seconds --timeout REQUEST_TIMEOUT -s bench/lua/replay.lua`.

    replay.lua sends the requests in `requests_file` (the first over and over, or with `cycle`
    each once in turn), checks responses as `check` says ("", "status" or "body" with `needle`)
    and prints its results as JSON. `path` only names the URL wrk connects to; each request
    carries its own. Server CPU (from /proc), wrk's CPU (its rusage) and the machine's (from
    /proc/stat) are sampled around the run.
    """
    script_env = {"REQUESTS_FILE": str(requests_file), "CYCLE": "1" if cycle else "0", "CHECK": check, "NEEDLE": needle}
    command = [
        wrk_path(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={REQUEST_TIMEOUT:g}s",
        "-s",
        str(LUA_DIR / "replay.lua"),
        f"{server.url}{path}",
        "--",
        str(threads),
    ]
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    server_before, machine_before = server.cpu_seconds(), machine_cpu_seconds()
    with subprocess.Popen(
        command, env={**os.environ, **script_env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        time.sleep(seconds / 2)
        split = connections_per_worker(server)  # mid-run, once wrk's connections are all open
        try:
            stdout, stderr = proc.communicate(timeout=seconds / 2 + REQUEST_TIMEOUT + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise RuntimeError(f"{label}: wrk did not finish in time") from None
    server_after, machine_after = server.cpu_seconds(), machine_cpu_seconds()
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    bench_cpu = _cpu(resource.getrusage(resource.RUSAGE_SELF)) - _cpu(self_before)
    if proc.returncode != 0:
        raise RuntimeError(f"{label}: wrk exited with {proc.returncode}:\n{stdout}\n{stderr}")
    result = parse_wrk_result(stdout)
    wrk_cpu = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    server_cpu = server_after - server_before
    other = None
    if machine_before is not None and machine_after is not None:
        other = max(0.0, machine_after - machine_before - server_cpu - wrk_cpu - bench_cpu)
    errors = result["errors"]
    return WrkRun(
        label=label,
        seconds=result["duration_us"] / 1e6,
        requests=result["requests"],
        ok=result.get("ok", result["requests"] - errors["status"]),
        non_2xx=errors["status"],
        socket_errors={k: errors[k] for k in ("connect", "read", "write", "timeout")},
        latency_us=result["latency_us"],
        server_cpu=server_cpu,
        wrk_cpu=wrk_cpu,
        bench_cpu=bench_cpu,
        other_cpu=other,
        loadavg=load_average(),
        connections=split,
        extra={k: v for k, v in result.items() if k not in ("duration_us", "requests", "ok", "errors", "latency_us")},
    )


def connections_per_worker(server: Gunicorn) -> list[int] | None:
    """How many open connections each worker holds on the server's port, most first (Linux /proc;
    None elsewhere): how the kernel spread wrk's connections over the workers. The workers are
    the master's children that listen on the port (not the relay process)."""
    from tests.servers import sockets_on_port

    try:
        sockets = sockets_on_port(server.port)
    except OSError:
        return None
    listening, established = sockets.get("0A", set()), sockets.get("01", set())
    counts = []
    for pid in server.worker_pids():
        held = _socket_inodes(pid)
        if held & listening:
            counts.append(len(held & established))
    return sorted(counts, reverse=True)


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:  # the process ended, or a descriptor closed meanwhile
        pass
    return inodes


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def parse_wrk_result(stdout: str) -> dict:
    """The JSON object that bench/lua/common.lua's done() prints after WRK_RESULT_MARK."""
    for line in stdout.splitlines():
        if line.startswith(WRK_RESULT_MARK):
            return json.loads(line[len(WRK_RESULT_MARK) :])
    raise RuntimeError(f"no {WRK_RESULT_MARK.strip()} line in wrk's output:\n{stdout}")


def format_runs(runs: Sequence[WrkRun]) -> str:
    rows = []
    for r in runs:
        answered = max(1, r.requests)
        cpu = f"{r.server_cpu / answered * 1000:.2f}" if r.server_cpu is not None else "-"
        rows.append(
            [
                r.label,
                f"{r.rps:,.0f}",
                f"{r.ok:,}",
                f"{r.errors:,}",
                f"{r.ms('p50'):.1f}",
                f"{r.ms('p90'):.1f}",
                f"{r.ms('p99'):.1f}",
                f"{r.ms('max'):.1f}",
                cpu,
                f"{r.wrk_cpu / r.seconds * 100:.0f}% ({r.wrk_cpu / answered * 1e6:.1f} us/req)",
                f"{r.bench_cpu / r.seconds * 100:.0f}%",
                "-" if r.other_cpu is None else f"{r.other_cpu / r.seconds * 100:.0f}%",
                "/".join(map(str, r.connections)) if r.connections else "-",
                r.loadavg.removeprefix("load average "),
            ]
        )
    headers = ["server", "req/s", "ok", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms", "srv CPU ms/req"]
    return format_table([*headers, "wrk CPU", "fakes CPU", "other CPU", "conns/worker", "load avg after"], rows)


RESULTS_LEGEND = (
    "req/s: responses that passed the check per second (wrk -t2 -c16); latencies: wrk's, over every request;\n"
    "errors: failed checks, non-2xx and socket errors; srv CPU ms/req: CPU of the gunicorn master + workers per\n"
    "response; wrk CPU / fakes CPU / other CPU: wrk / the bench process (FakeSlack, FakeTwilio) / the rest of\n"
    "the machine (noise: other jobs), in % of one core over the run; conns/worker: wrk's connections each\n"
    "gunicorn worker held mid-run (the kernel spreads them over the workers' sockets: gunicorn.conf.py)."
)


def report_memory(server: Gunicorn) -> str:
    """One line: RSS (and PSS) in MiB of each of the master's children, named by what it is: a
    gunicorn worker, the relay (`bot worker`) or SQLite's single writer (`bot intake-writer`)."""
    parts = [
        f"{_role(pid)} {pid}: RSS {rss / 1024:.1f} MiB" + ("" if pss is None else f" (PSS {pss / 1024:.1f} MiB)")
        for pid, rss, pss in server.worker_memory()
    ]
    return "; ".join(parts) or "no workers"


def _role(pid: int) -> str:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return "process"
    return "writer" if b"bot intake-writer" in command else "relay" if b"bot worker" in command else "worker"
