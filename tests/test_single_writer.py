"""SQLite's single writer (bot/alerts/single_writer.py): one process stores every web worker's
callbacks; a worker that cannot reach it stores the alert itself, never twice and never lost."""

from __future__ import annotations

import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.alerts.receive import AlertWriter, parse_callback, write_alerts
from bot.alerts.single_writer import FAILED, decode, encode, serve
from bot.model import IncomingAlert
from bot.store import Store
from bot.store.schema import alerts, outbox
from tests.fakes.slack import FakeSlack
from tests.servers import app_env, gunicorn_app, send_all, signed_callback
from tests.test_relay_process import alive, children, wait_for


def alert(i: int, channel: str = "C0WRITER") -> IncomingAlert:
    found = parse_callback({"UsageTriggerSid": f"UT{i:032x}", "IdempotencyToken": f"w{i}"}, channel=channel)
    assert found is not None
    return found


def counts(store: Store) -> tuple[int, int]:
    with store.engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(alerts)).scalar_one(),
            conn.execute(select(func.count()).select_from(outbox)).scalar_one(),
        )


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = Store.connect(f"sqlite:///{tmp_path}/writer.db")
    store.migrate()
    yield store
    store.dispose()


@contextmanager
def writer_serving(
    path: str, write: Callable[[list[IncomingAlert]], Sequence[bool | Exception]]
) -> Iterator[list[int]]:
    """The single writer's loop on `path` in a thread; yields the sizes of the batches it wrote."""
    batches: list[int] = []

    def counted(batch: list[IncomingAlert]) -> Sequence[bool | Exception]:
        batches.append(len(batch))
        return write(batch)

    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=serve, args=(path, counted, stop), kwargs={"ready": ready})
    thread.start()
    try:
        assert ready.wait(10)
        yield batches
    finally:
        stop.set()
        thread.join(10)
    assert not os.path.exists(path)  # the socket goes with the writer


def stores_in(store: Store) -> Callable[[list[IncomingAlert]], list[bool | Exception]]:
    return lambda batch: write_alerts(store, batch, fallback_channel="", received=1.0)


def test_callbacks_from_many_threads_are_stored_once_each_by_the_writer_in_shared_transactions(
    sqlite_store: Store, tmp_path: Path
) -> None:
    path = str(tmp_path / "intake.sock")
    worker = AlertWriter(sqlite_store, fallback_channel="", single_writer=path)
    firsts: dict[int, bool] = {}
    repeats: dict[int, bool] = {}
    start = threading.Barrier(16)

    def request_thread(t: int) -> None:
        start.wait()
        for i in range(t * 25, t * 25 + 25):
            firsts[i] = worker.store_alert(alert(i))
            repeats[i] = worker.store_alert(alert(i))  # Twilio's retry of the same callback

    with writer_serving(path, stores_in(sqlite_store)) as batches:
        threads = [threading.Thread(target=request_thread, args=(t,)) for t in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert firsts == dict.fromkeys(range(400), True)
    assert repeats == dict.fromkeys(range(400), False)
    assert counts(sqlite_store) == (400, 400)
    assert sum(batches) == 800 and len(batches) < 800  # callbacks in flight together shared a commit
    assert worker.batches == 0 and worker.unreachable == 0  # the worker wrote nothing itself


def test_without_a_writer_the_worker_stores_the_alert_itself(sqlite_store: Store, tmp_path: Path) -> None:
    worker = AlertWriter(sqlite_store, fallback_channel="", single_writer=str(tmp_path / "none.sock"))
    assert worker.store_alert(alert(1)) is True
    assert worker.store_alert(alert(1)) is False
    assert counts(sqlite_store) == (1, 1)
    assert worker.unreachable == 2 and worker.batches == 2


def test_an_alert_the_writer_committed_before_it_died_is_stored_once(sqlite_store: Store, tmp_path: Path) -> None:
    # The writer stores the alert, then dies before it answers (SIGKILL between commit and send).
    path = str(tmp_path / "intake.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def commit_then_die() -> None:
        conn, _ = listener.accept()
        (size,) = struct.unpack("!I", conn.recv(4))
        body = b""
        while len(body) < size:
            body += conn.recv(size - len(body))
        assert write_alerts(sqlite_store, [decode(body)], fallback_channel="", received=1.0) == [True]
        conn.close()

    thread = threading.Thread(target=commit_then_die)
    thread.start()
    worker = AlertWriter(sqlite_store, fallback_channel="", single_writer=path)
    try:
        assert worker.store_alert(alert(7)) is False  # stored already, by the writer
    finally:
        thread.join(10)
        listener.close()
    assert counts(sqlite_store) == (1, 1)
    assert worker.unreachable == 1


def test_an_alert_the_writer_could_not_store_is_stored_by_the_worker(sqlite_store: Store, tmp_path: Path) -> None:
    path = str(tmp_path / "intake.sock")
    worker = AlertWriter(sqlite_store, fallback_channel="", single_writer=path)
    with writer_serving(path, lambda batch: [RuntimeError("disk I/O error")] * len(batch)):
        assert worker.store_alert(alert(3)) is True
    assert counts(sqlite_store) == (1, 1)
    assert worker.unreachable == 1


def test_what_is_not_a_frame_of_ours_closes_that_connection_only(sqlite_store: Store, tmp_path: Path) -> None:
    path = str(tmp_path / "intake.sock")
    worker = AlertWriter(sqlite_store, fallback_channel="", single_writer=path)
    with writer_serving(path, stores_in(sqlite_store)) as batches:
        for junk in (struct.pack("!I", 5) + b"{nope", struct.pack("!I", 2) + b"{}", struct.pack("!I", 1 << 30)):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stranger:
                stranger.settimeout(5)
                stranger.connect(path)
                stranger.sendall(junk)
                assert stranger.recv(1) == b""  # closed, unanswered
        assert worker.store_alert(alert(9)) is True
    assert batches == [1] and counts(sqlite_store) == (1, 1)
    assert worker.unreachable == 0


def test_a_frame_carries_every_field_of_the_alert() -> None:
    original = alert(11)
    body = encode(original)
    assert struct.unpack("!I", body[:4])[0] == len(body) - 4
    assert decode(body[4:]) == original
    assert FAILED not in (b"1", b"0")


def test_on_sqlite_the_web_command_runs_a_single_writer_and_keeps_it_running(
    fake_slack: FakeSlack, sqlite_url: str, tmp_path: Path
) -> None:
    env = app_env(slack_api_url=fake_slack.api_url, database_url=sqlite_url)
    with gunicorn_app(env, log_dir=str(tmp_path)) as port:
        writers = lambda: [pid for pid, cmd in children(_master(port)) if "bot intake-writer" in cmd]  # noqa: E731
        wait_for(lambda: len(writers()) == 1 and _sockets(writers()[0]) >= 1)  # listening
        first = writers()[0]
        listening = _sockets(first)
        assert send_all(port, [signed_callback(i, "C0SINGLE") for i in range(40)], clients=8) == [200] * 40
        assert _sockets(first) > listening  # the workers' request threads connected to it

        os.kill(first, signal.SIGKILL)  # meanwhile the workers store callbacks themselves
        assert send_all(port, [signed_callback(i, "C0SINGLE") for i in range(40, 60)], clients=8) == [200] * 20
        wait_for(lambda: writers() not in ([], [first]))
        assert send_all(port, [signed_callback(i, "C0SINGLE") for i in range(60, 80)], clients=8) == [200] * 20
        last = writers()[0]
    assert not alive(last)  # gone with the server
    store = Store.connect(sqlite_url)
    try:
        assert counts(store) == (80, 80)
    finally:
        store.dispose()


def test_the_web_command_runs_a_single_writer_only_on_sqlite(
    fake_slack: FakeSlack, database_url: str, tmp_path: Path
) -> None:
    env = app_env(slack_api_url=fake_slack.api_url, database_url=database_url)
    with gunicorn_app(env, log_dir=str(tmp_path)) as port:
        master = _master(port)
        wait_for(lambda: any("bot worker" in cmd for _, cmd in children(master)))  # the relay is up
        time.sleep(1.5)  # past the writer's start delay (gunicorn.conf.py)
        writers = [cmd for _, cmd in children(master) if "bot intake-writer" in cmd]
    assert len(writers) == (1 if database_url.startswith("sqlite") else 0)


def _master(port: int) -> int:
    """The gunicorn master serving `port` (an earlier test's may still be on its way out)."""
    return next(pid for pid, cmd in children(os.getpid()) if "gunicorn" in cmd and _port_of(pid) == port)


def _port_of(pid: int) -> int | None:
    for entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
        if entry.startswith(b"PORT="):
            return int(entry[5:])
    return None


def _sockets(pid: int) -> int:
    """How many sockets the process has open (its listener and its connections)."""
    found = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            found += os.readlink(fd).startswith("socket:")
        except FileNotFoundError:
            continue  # closed meanwhile
    return found
