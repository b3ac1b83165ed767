"""SQLite's single writer: one process stores every web worker's Twilio callbacks.

SQLite takes one writer at a time. When each gunicorn worker wrote its own callbacks, the workers
took turns on a lock across processes (bot/store/database.py SQLiteWriterLock), and each turn
waited until the next worker's thread was scheduled and had its interpreter lock back: the
database sat idle between turns while the workers had CPU to spare (bench/README.md, "One writer
for SQLite"). Here one process with one thread writes for all of them. A request thread sends its
alert over a Unix socket and waits; the writer stores whatever arrived meanwhile in one
transaction (`write_alerts`, the same code a worker runs) and then answers each thread, which
answers Twilio only then, as before.

Nothing depends on the writer being there: when it cannot be reached (not started yet,
restarting after a reload, killed mid-request), the worker stores the alert itself
(bot/alerts/receive.py AlertWriter). Storing is idempotent by the alert's dedupe key, so an alert
that the writer committed just before it died is not stored twice.

gunicorn.conf.py starts the writer beside the workers (`python -m bot intake-writer`) when the
database is SQLite; PostgreSQL takes many writers at once and needs none.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import selectors
import socket
import struct
import threading
from collections.abc import Callable, Sequence
from typing import cast

from bot.model import IncomingAlert

# A frame: the body's length (4 bytes, network order), then the alert as a JSON array of its
# fields in IncomingAlert's order. The answer: one byte.
_LENGTH = struct.Struct("!I")
_FIELDS = tuple(field.name for field in dataclasses.fields(IncomingAlert))
NEW, REPEAT, FAILED = b"1", b"0", b"E"
# Far above any alert (a callback's body is refused above 64 KB, its stored parameters are
# capped): a longer frame is not one of ours, and its connection is closed.
MAX_FRAME = 1 << 20

Write = Callable[[list[IncomingAlert]], Sequence[bool | Exception]]


class WriterUnavailable(Exception):
    """The single writer could not be reached, stopped answering, or could not store the alert."""


def encode(alert: IncomingAlert) -> bytes:
    body = json.dumps([getattr(alert, name) for name in _FIELDS], separators=(",", ":")).encode()
    return _LENGTH.pack(len(body)) + body


def decode(body: bytes) -> IncomingAlert:
    """The alert in a frame's body; ValueError or TypeError when it is not one."""
    fields = json.loads(body)
    if not isinstance(fields, list):
        raise ValueError("not an alert")
    return IncomingAlert(*fields)


class WriterClient:
    """A worker's side: a connection per request thread, opened on its first alert."""

    def __init__(self, path: str, *, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout  # for the connect, the send and the answer each
        self._local = threading.local()

    def store_alert(self, alert: IncomingAlert) -> bool:
        """Send it and wait until the writer has committed it: whether it was new.

        WriterUnavailable when the writer cannot be reached, closes the connection or times out
        (the alert may or may not be stored), or could not store it (it is not)."""
        conn: socket.socket | None = getattr(self._local, "conn", None)
        try:
            if conn is None:
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._local.conn = conn
                conn.settimeout(self.timeout)
                conn.connect(self.path)
            conn.sendall(encode(alert))
            answer = conn.recv(1)
        except OSError as exc:
            self.close()
            raise WriterUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if answer in (NEW, REPEAT):
            return answer == NEW
        self.close()
        raise WriterUnavailable(
            "the writer could not store the alert" if answer else "the writer closed the connection"
        )

    def close(self) -> None:
        """Close this thread's connection (the next alert opens another)."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()


def serve(path: str, write: Write, stop: threading.Event, *, ready: threading.Event | None = None) -> None:
    """Listen on `path` and store what the workers send with `write`, a batch at a time, until `stop`.

    Whatever has arrived when the writer looks is one batch, one transaction: while it commits,
    the next batch gathers. Each sender is answered after the commit.
    """
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # left by a writer that was killed
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    selector = selectors.DefaultSelector()
    try:
        listener.bind(path)
        os.chmod(path, 0o600)
        listener.listen(socket.SOMAXCONN)
        listener.setblocking(False)
        selector.register(listener, selectors.EVENT_READ)
        if ready is not None:
            ready.set()
        while not stop.is_set():
            arrived: list[tuple[socket.socket, IncomingAlert]] = []
            for key, _ in selector.select(timeout=0.5):
                if key.fileobj is listener:
                    _accept(listener, selector)
                    continue
                sock = cast(socket.socket, key.fileobj)
                if not _read(sock, key.data, arrived):
                    selector.unregister(sock)
                    sock.close()
            if arrived:
                _answer(arrived, write([alert for _, alert in arrived]))
    finally:
        for key in list(selector.get_map().values()):
            cast(socket.socket, key.fileobj).close()
        selector.close()
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _answer(arrived: list[tuple[socket.socket, IncomingAlert]], outcomes: Sequence[bool | Exception]) -> None:
    for (sock, _), outcome in zip(arrived, outcomes, strict=True):
        answer = FAILED if isinstance(outcome, Exception) else NEW if outcome else REPEAT
        # One byte into the buffer of a socket whose reader waits for it: never blocks. A worker
        # gone meanwhile shows as a closed socket on the next select.
        with contextlib.suppress(OSError):
            sock.send(answer)


def _accept(listener: socket.socket, selector: selectors.BaseSelector) -> None:
    while True:
        try:
            sock, _ = listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, data=bytearray())  # the bytes of a frame not yet whole


def _read(sock: socket.socket, buffer: bytearray, arrived: list[tuple[socket.socket, IncomingAlert]]) -> bool:
    """Read what the socket holds and queue each whole frame; False when it closed or sent
    something that is not a frame of ours."""
    try:
        data = sock.recv(65536)
    except BlockingIOError:
        return True
    except OSError:
        return False
    if not data:
        return False
    buffer += data
    while len(buffer) >= _LENGTH.size:
        (size,) = _LENGTH.unpack_from(buffer)
        if size > MAX_FRAME:
            return False
        if len(buffer) < _LENGTH.size + size:
            break
        body = bytes(buffer[_LENGTH.size : _LENGTH.size + size])
        del buffer[: _LENGTH.size + size]
        try:
            arrived.append((sock, decode(body)))
        except (ValueError, TypeError):
            return False
    return True
