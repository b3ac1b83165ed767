"""A fake of Slack's Socket Mode end, on loopback, that slack_sdk's real SocketModeClient uses.

The protocol (https://api.slack.com/apis/socket-mode):
1. the app calls `apps.connections.open` with its app-level token (`xapp-…`); FakeSlack answers
   with this server's `ws://` URL (`FakeSlack.socket_url`);
2. the app opens a WebSocket there (RFC 6455 handshake) and Slack says `{"type": "hello"}`;
3. Slack sends envelopes `{"envelope_id", "type": "slash_commands" | "interactive" | "events_api",
   "payload", "accepts_response_payload"}`; the app acknowledges each by sending back
   `{"envelope_id", "payload"?}` (the payload is what an HTTP response body would have been).
Pings are answered with pongs, as Slack does. Frames from the client are masked, ours are not.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from tests.fakes.slack import FakeSlack

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


@dataclass
class Ack:
    envelope_id: str
    payload: dict[str, Any] | None
    after: float  # seconds from sending the envelope to receiving its ack


class FakeSocketMode:
    def __init__(self, slack: FakeSlack) -> None:
        self.slack = slack
        self.acks: dict[str, Ack] = {}
        self.hellos = 0
        self._sent: dict[str, float] = {}
        self._lock = threading.Lock()
        self._connections: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._stopped = threading.Event()

    def __enter__(self) -> FakeSocketMode:
        self._listener = socket.create_server(("127.0.0.1", 0))
        port = self._listener.getsockname()[1]
        self.slack.socket_url = f"ws://127.0.0.1:{port}/link/?ticket={uuid.uuid4()}&app_id=A0001"
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        with self._lock:
            for conn in self._connections:
                _close_quietly(conn)
        if self._listener is not None:
            _close_quietly(self._listener)

    # --- what tests do -------------------------------------------------------------------

    def wait_connected(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.hellos:
                    return
            time.sleep(0.02)
        raise AssertionError("the Socket Mode client never connected")

    def send(self, kind: str, payload: dict[str, Any], *, retry_attempt: int = 0) -> str:
        """Deliver one envelope to the newest connection; its envelope_id."""
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else "",
        }
        with self._lock:
            conn = self._connections[-1]
            self._sent[envelope_id] = time.monotonic()
            _send_frame(conn, TEXT, json.dumps(envelope).encode())
        return envelope_id

    def wait_ack(self, envelope_id: str, timeout: float = 5.0) -> Ack:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if envelope_id in self.acks:
                    return self.acks[envelope_id]
            time.sleep(0.005)
        raise AssertionError(f"envelope {envelope_id} was not acknowledged")

    # --- the server --------------------------------------------------------------------------

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if not self._handshake(conn):
                return
            with self._lock:
                self._connections.append(conn)
                hello = {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0001"}}
                _send_frame(conn, TEXT, json.dumps(hello).encode())
                self.hellos += 1
            while not self._stopped.is_set():
                opcode, data = _read_frame(conn)
                if opcode == TEXT:
                    self._on_text(data)
                elif opcode == PING:
                    with self._lock:
                        _send_frame(conn, PONG, data)
                elif opcode == CLOSE:
                    with self._lock:
                        _send_frame(conn, CLOSE, data[:2])
                    return
        except (OSError, ConnectionError, ValueError):
            return
        finally:
            _close_quietly(conn)

    def _handshake(self, conn: socket.socket) -> bool:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = conn.recv(1024)
            if not chunk:
                return False
            request += chunk
        headers = {}
        for line in request.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        key = headers.get("sec-websocket-key", "")
        if headers.get("upgrade", "").lower() != "websocket" or not key:
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return False
        accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
        conn.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        return True

    def _on_text(self, data: bytes) -> None:
        message = json.loads(data.decode("utf-8"))
        envelope_id = message.get("envelope_id")
        if not envelope_id:
            return
        with self._lock:
            sent = self._sent.get(envelope_id, time.monotonic())
            self.acks[envelope_id] = Ack(envelope_id, message.get("payload"), time.monotonic() - sent)


def _recv_exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _read_frame(conn: socket.socket) -> tuple[int, bytes]:
    """One whole message (continuation frames joined); client frames must be masked."""
    opcode = 0
    payload = b""
    while True:
        first, second = _recv_exactly(conn, 2)
        opcode = opcode or first & 0x0F
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack(">H", _recv_exactly(conn, 2))
        elif length == 127:
            (length,) = struct.unpack(">Q", _recv_exactly(conn, 8))
        if not second & 0x80:
            raise ValueError("a client frame was not masked")
        mask = _recv_exactly(conn, 4)
        data = _recv_exactly(conn, length)
        payload += bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        if first & 0x80:
            return opcode, payload


def _send_frame(conn: socket.socket, opcode: int, data: bytes) -> None:
    header = bytes([0x80 | opcode])
    if len(data) < 126:
        header += bytes([len(data)])
    elif len(data) < 1 << 16:
        header += bytes([126]) + struct.pack(">H", len(data))
    else:
        header += bytes([127]) + struct.pack(">Q", len(data))
    conn.sendall(header + data)


def _close_quietly(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.close()
