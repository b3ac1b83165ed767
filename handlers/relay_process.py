"""The alert relay as a process of its own under the web command, kept running.

With `DELIVERY_IN_WEB` (the default) the web command delivers alerts as well as taking requests.
gunicorn.conf.py starts `python -m bot worker --exit-with-parent` beside the web workers, instead
of a relay thread in each worker: in a worker, the relay's Python takes turns with the request
threads for the one interpreter lock, and intake fell by about a third while it delivered
(bench/README.md, callbacks). A process of its own has its own lock.

The same supervisor keeps SQLite's single writer running (`python -m bot intake-writer`,
bot/alerts/single_writer.py), which gunicorn.conf.py starts beside the workers the same way.

The gunicorn master watches it: if it exits while the server runs, it is started again after a
short wait (growing, while it keeps failing). It ends with the server, and by itself if the master
dies (`--exit-with-parent`).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

# A relay that ran this long before exiting was working: restart it after the shortest wait.
_HEALTHY_RUN = 60.0

# Held while the relay is being started, and by every fork of this process (the gunicorn master
# forking a worker): a worker forked while subprocess.Popen waits for the exec would inherit the
# write end of Popen's internal pipe, and Popen would then wait for that worker to exit.
_SPAWNING = threading.Lock()
os.register_at_fork(before=_SPAWNING.acquire, after_in_parent=_SPAWNING.release, after_in_child=_SPAWNING.release)


class RelayProcess:
    """Runs `command` and starts it again whenever it exits, until `stop`."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        cwd: Path,
        log: logging.Logger | None = None,
        first_delay: float = 1.0,
        max_delay: float = 30.0,
        check_every: float = 0.2,
        name: str = "alert relay",
        start_after: float = 0.0,
    ) -> None:
        self.command = list(command)
        self.name = name  # for the log
        self.start_after = start_after  # seconds before the first start
        self.cwd = cwd
        self.log = log or logging.getLogger(__name__)
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.check_every = check_every  # how often it looks whether the relay is still running
        self.starts = 0  # processes started, for tests
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        with self._lock:
            return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._supervise, name=f"{self.name} process", daemon=True)
        self._thread.start()

    def restart(self) -> None:
        """End the running relay (e.g. after a code reload); it is started again at once. Does not
        wait: the master calls this while it reloads."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.terminate()

    def stop(self, timeout: float = 10.0) -> None:
        """End the relay (SIGTERM: it finishes the post in hand, then SIGKILL) and stop watching."""
        self._stopping.set()
        self._terminate(timeout)
        if self._thread is not None:
            self._thread.join(timeout)

    def _supervise(self) -> None:
        delay = self.first_delay
        if self._stopping.wait(self.start_after):
            return
        while not self._stopping.is_set():
            with self._lock:
                if self._stopping.is_set():
                    return
                try:
                    with _SPAWNING:
                        # The environment as a copy made here: the child of a fork reads the global
                        # one until it execs, and the master may be setting a variable meanwhile
                        # (gunicorn.conf.py), which once failed the exec with EFAULT.
                        self._proc = subprocess.Popen(
                            self.command, cwd=self.cwd, stdin=subprocess.DEVNULL, env=dict(os.environ)
                        )
                except OSError as exc:  # could not start it: wait and try again, as after an exit
                    self._proc = None
                    self.log.error("could not start the %s process (%s); trying again in %.0f s", self.name, exc, delay)
                    if self._stopping.wait(delay):
                        return
                    delay = min(self.max_delay, delay * 2)
                    continue
                self.starts += 1
                proc = self._proc
            started = time.monotonic()
            # Polled, not a blocking wait: the gunicorn master reaps every child that exits
            # (waitpid(-1) on SIGCHLD), so the exit may be collected there rather than here; poll
            # then reports it as 0 (Python's subprocess, on ECHILD).
            code = proc.poll()
            while code is None and not self._stopping.wait(self.check_every):
                code = proc.poll()
            if self._stopping.is_set():
                return
            if code in (0, -signal.SIGTERM):  # ended by restart() (SIGTERM): start it again now
                delay = self.first_delay
                continue
            if time.monotonic() - started >= _HEALTHY_RUN:
                delay = self.first_delay
            self.log.error("the %s process exited with %s; starting it again in %.0f s", self.name, code, delay)
            if self._stopping.wait(delay):
                return
            delay = min(self.max_delay, delay * 2)

    def _terminate(self, timeout: float) -> None:
        with self._lock:
            proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
