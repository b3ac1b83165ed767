"""The web command's relay process (handlers/relay_process.py, started by gunicorn.conf.py):
running beside the workers, started again when it dies, gone when the server stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

from handlers.relay_process import RelayProcess
from tests.fakes.slack import FakeSlack
from tests.servers import app_env, free_port, gunicorn_app, send_all, signed_callback

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def wait_for(condition: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out; {[children(p) for p, _ in children(os.getpid())]}"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return True  # no /proc here: kill(0) said it exists


def test_a_relay_that_dies_is_started_again_and_stop_ends_it(tmp_path: Path) -> None:
    relay = RelayProcess(SLEEPER, cwd=tmp_path, first_delay=0.1)
    relay.start()
    try:
        wait_for(lambda: relay.pid is not None)
        first = relay.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: relay.pid not in (None, first))
        assert relay.starts == 2
        second = relay.pid
        assert second is not None
    finally:
        relay.stop(timeout=5)
    assert not alive(second)
    time.sleep(0.3)
    assert relay.starts == 2  # stopped: not started again


def test_a_process_given_a_start_delay_starts_after_it(tmp_path: Path) -> None:
    relay = RelayProcess(SLEEPER, cwd=tmp_path, start_after=0.6)
    began = time.monotonic()
    relay.start()
    try:
        time.sleep(0.3)
        assert relay.pid is None and relay.starts == 0
        wait_for(lambda: relay.pid is not None, timeout=5)
        assert time.monotonic() - began >= 0.6
    finally:
        relay.stop(timeout=5)


def test_a_process_that_could_not_be_started_is_tried_again(tmp_path: Path) -> None:
    # An exec that fails (a missing binary here; once EFAULT while the master set a variable)
    # used to end the supervising thread: the relay was then never started at all.
    relay = RelayProcess([str(tmp_path / "missing")], cwd=tmp_path, first_delay=0.05)
    relay.start()
    try:
        time.sleep(0.3)
        assert relay.starts == 0
        relay.command = SLEEPER
        wait_for(lambda: relay.pid is not None, timeout=5)
    finally:
        relay.stop(timeout=5)


def test_a_restart_starts_it_again_at_once(tmp_path: Path) -> None:
    relay = RelayProcess(SLEEPER, cwd=tmp_path, first_delay=60)  # a crash would wait a minute
    relay.start()
    try:
        wait_for(lambda: relay.pid is not None)
        first = relay.pid
        relay.restart()
        wait_for(lambda: relay.pid not in (None, first), timeout=5)
    finally:
        relay.stop(timeout=5)


def test_a_fork_while_the_relay_starts_does_not_stall_it(tmp_path: Path) -> None:
    # The gunicorn master forks workers while its relay thread may be starting the relay. A fork
    # in the middle of subprocess.Popen used to hand the child Popen's internal pipe, and the
    # thread then waited for that child to exit (a relay never started again). Here the relay
    # exits at once and is started again and again, while this process forks children that live
    # for 5 s: each start must still take moments, not until they exit.
    relay = RelayProcess(["/bin/true"], cwd=tmp_path, check_every=0.001)
    relay.start()
    forked = []
    try:
        for _ in range(20):
            pid = os.fork()
            if pid == 0:  # the child: as a gunicorn worker, it keeps what it inherited for a while
                time.sleep(5)
                os._exit(0)
            forked.append(pid)
            time.sleep(0.01)
        before = relay.starts
        wait_for(lambda: relay.starts >= before + 10, timeout=3)
    finally:
        relay.stop(timeout=5)
        for pid in forked:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes whose parent is `pid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return found


def test_the_web_command_delivers_from_a_relay_process_it_keeps_running(
    database_url: str, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    env = app_env(slack_api_url=fake_slack.api_url, database_url=database_url)
    with gunicorn_app(env, log_dir=str(tmp_path)) as port:
        # This server's master (an earlier test's may still be on its way out): the one on our port.
        master = next(
            pid
            for pid, cmd in children(os.getpid())
            if "gunicorn" in cmd and f"PORT={port}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        )
        relays = lambda: [pid for pid, cmd in children(master) if "bot worker" in cmd]  # noqa: E731
        wait_for(lambda: len(relays()) == 1)
        first = relays()[0]
        assert send_all(port, [signed_callback(i, "C0RELAYP") for i in range(5)]) == [200] * 5
        wait_for(lambda: len(fake_slack.posted) >= 1)

        os.kill(first, signal.SIGKILL)  # the relay dies: the master starts another
        wait_for(lambda: relays() not in ([], [first]))
        assert send_all(port, [signed_callback(i, "C0RELAYQ") for i in range(5, 10)]) == [200] * 5
        wait_for(lambda: any(p.channel == "C0RELAYQ" for p in fake_slack.posted))
        last = relays()[0]
    assert not alive(last)  # gone with the server


def test_an_app_that_names_no_relay_process_gets_none(tmp_path: Path) -> None:
    # The benchmarks' bare baseline runs under the same gunicorn.conf.py: it must not pay for a relay.
    port = free_port()
    runtime_dir = tmp_path / "run"  # gunicorn's control socket: this server's own
    runtime_dir.mkdir(mode=0o700)
    env = {"PATH": os.environ.get("PATH", ""), "PORT": str(port), "XDG_RUNTIME_DIR": str(runtime_dir)}
    root = Path(__file__).resolve().parent.parent
    with (tmp_path / "gunicorn.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "bench.bare_app:app"],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: _answers(port))
        workers = children(server.pid)
        assert workers and not [cmd for _, cmd in workers if "bot worker" in cmd]
    finally:
        server.terminate()
        server.wait(timeout=20)


def _answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def test_a_relay_whose_parent_dies_stops(database_url: str, fake_slack: FakeSlack) -> None:
    # The master SIGKILLed (an OOM kill, a crashed dyno): its relay must not live on unwatched.
    env = {**os.environ, **app_env(slack_api_url=fake_slack.api_url, database_url=database_url)}
    starter = (
        "import subprocess, sys, time\n"
        "relay = subprocess.Popen([sys.executable, '-m', 'bot', 'worker', '--exit-with-parent'])\n"
        "print(relay.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    root = Path(__file__).resolve().parent.parent
    parent = subprocess.Popen([sys.executable, "-c", starter], cwd=root, env=env, stdout=subprocess.PIPE)
    assert parent.stdout is not None
    relay = int(parent.stdout.readline())
    try:
        time.sleep(3)  # started and delivering
        assert alive(relay)
        parent.kill()
        parent.wait(timeout=10)
        wait_for(lambda: not alive(relay))
    finally:
        if alive(relay):
            os.kill(relay, signal.SIGKILL)
