"""The web command's listening sockets (gunicorn.conf.py, handlers/gunicorn_worker.py): one per
worker, so the kernel spreads connections over the workers; a port in use refused; nothing
queued on a stopping worker's socket lost."""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.servers import sockets_on_port
from tests.test_deploy_config import free_port, gunicorn_in, log_of

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc/net/tcp")

# Answers each request after a short wait, so that a stopping worker has requests in hand for a
# while, during which the kernel may queue new connections on its socket.
SLOW_APP = (
    "import os, time\n"
    "def app(environ, start_response):\n"
    "    time.sleep(0.05)\n"
    "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
    "    return [str(os.getpid()).encode()]\n"
)


def slow_app(tmp_path: Path, port: int, workers: int = 2) -> AbstractContextManager[subprocess.Popen[bytes]]:
    (tmp_path / "slowapp.py").write_text(SLOW_APP)
    return gunicorn_in(tmp_path, "slowapp:app", PORT=str(port), WEB_CONCURRENCY=str(workers), GUNICORN_THREADS="4")


def answer(port: int) -> str:
    """One request on a new connection (as each Twilio callback comes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def wait_for_workers(port: int, workers: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(listening_sockets(port)) == workers:
            try:
                answer(port)
                return
            except OSError:
                pass
        time.sleep(0.1)
    raise AssertionError(f"not {workers} listening sockets on port {port}: {listening_sockets(port)}")


def listening_sockets(port: int) -> set[str]:
    return sockets_on_port(port).get("0A", set())


def test_each_worker_listens_on_a_socket_of_its_own(tmp_path: Path) -> None:
    port = free_port()
    with slow_app(tmp_path, port, workers=3):
        wait_for_workers(port, 3)
        assert len(listening_sockets(port)) == 3, log_of(tmp_path)  # one shared socket would be 1


def test_a_port_already_served_is_refused_rather_than_shared(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as other:  # another server that also lets the port be shared
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("0.0.0.0", port))
        other.listen()
        with slow_app(tmp_path, port) as server:
            assert server.wait(timeout=60) == 1
    assert f"port {port} is in use already" in log_of(tmp_path)


def test_workers_replaced_by_a_reload_lose_no_queued_connection(tmp_path: Path) -> None:
    """A SIGHUP replaces every worker while requests keep coming on new connections: each is
    answered, none reset (gunicorn's own worker left those queued on its socket unanswered)."""
    port = free_port()
    answered, failed = [], []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                answered.append(answer(port))
            except OSError as exc:
                failed.append(repr(exc))

    with slow_app(tmp_path, port) as server:
        wait_for_workers(port, 2)
        clients = [threading.Thread(target=client) for _ in range(8)]
        for thread in clients:
            thread.start()
        try:
            for _ in range(3):
                time.sleep(0.7)
                server.send_signal(signal.SIGHUP)
            time.sleep(0.7)
        finally:
            stop.set()
            for thread in clients:
                thread.join(timeout=30)
        assert not failed, f"{len(failed)} of {len(failed) + len(answered)} failed: {failed[:3]}\n{log_of(tmp_path)}"
        assert len(set(answered)) >= 4, "the workers were not replaced"  # 2 before, 2+ after
