"""The web command's gunicorn worker: gunicorn's threaded worker (gthread) that, when it stops,
first takes every connection queued on its listening socket, then closes that socket.

gunicorn.conf.py gives each worker a listening socket of its own (`reuse_port`), so that the kernel
spreads connections evenly over the workers; on one shared socket, the worker that woke first took
most of a burst's connections (bench/README.md). But the kernel keeps queueing connections on a
worker's socket until the socket is closed, and gunicorn's worker closes it only once its last
request is answered: what was queued meanwhile was reset when it exited. A Twilio callback reset
that way would be lost. Stopping workers (a reload, the end of a deploy) now leave nothing queued.

It hooks gthread's `set_accept_enabled` (gunicorn 27, pinned in requirements.txt);
tests/test_gunicorn_sockets.py fails if a reload resets a connection.
"""

from __future__ import annotations

import select

from gunicorn.workers import gthread


class ThreadWorker(gthread.ThreadWorker):  # type: ignore[misc]  # gunicorn ships no type hints
    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled)
        if not enabled and not self.alive and self.cfg.reuse_port:
            self.leave_port()

    def leave_port(self) -> None:
        """Accept what the kernel queued on this worker's own sockets (answered before it exits,
        like every request in hand), then close them, so that no more is queued there."""
        for listener in self.sockets:
            try:
                # Within gunicorn's own cap on a worker's connections, should new ones keep coming.
                while self.nr_conns < self.worker_connections and select.select([listener], [], [], 0)[0]:
                    self.accept(listener)
            except OSError:
                self.log.exception("could not take the connections queued on %s", listener)
            listener.close()
