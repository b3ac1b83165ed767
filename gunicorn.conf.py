"""Gunicorn settings used by the Procfile and, unchanged, by the benchmarks in bench/.

`.env` counts here as it does for the app (bot/config.py): it is loaded first, without
overriding variables set in the real environment, so a PORT, WEB_CONCURRENCY or
GUNICORN_THREADS set only in `.env` is the one gunicorn uses.
"""

import errno
import importlib
import os
import shutil
import socket
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from dotenv import find_dotenv, load_dotenv

# The .env of the directory gunicorn starts in (the Procfile's: the app's) or of a parent, then the
# one beside this file, which is the one the app finds; where both set a variable, the first wins.
load_dotenv(find_dotenv(usecwd=True))
load_dotenv(Path(__file__).resolve().with_name(".env"))

bind = f"0.0.0.0:{os.environ.get('PORT', '3000')}"
# Threads, not processes, carry the concurrency: requests mostly wait on Slack, Twilio or the
# database, and Twilio callbacks that are in flight together share one commit (bot.alerts.AlertWriter),
# so more threads per worker mean fewer commits under load (bench/README.md: 16 beat 8 and 4 on one
# shared socket; with a socket per worker and wrk's 16 connections, 8 and 16 did the same).
worker_class = "handlers.gunicorn_worker.ThreadWorker"  # gthread, which empties its socket before it stops
# Each worker listens on a socket of its own (SO_REUSEPORT: gunicorn then binds in each worker) and
# the kernel spreads connections over them evenly. On one shared socket the worker that woke first
# took most of a burst's connections (13 of 16 under wrk) and ran out of CPU while the other idled.
reuse_port = True
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "16"))

keepalive = 5
timeout = 30
graceful_timeout = 20
accesslog = None
errorlog = "-"


# Where on_starting notes the modules it brought into the master, and when_ready the processes it
# runs beside the workers: on the arbiter, because a SIGHUP runs this file again (new globals)
# before on_reload.
IMPORTED = "usage_bot_imported_modules"
RELAY = "usage_bot_relay_process"
WRITER = "usage_bot_intake_writer"


def on_starting(server: Any) -> None:
    """Choose the listening sockets (`_choose_sockets`); import the app's module once in the
    master, before it forks the workers.

    Each worker then starts with Flask, Bolt, SQLAlchemy and the bot's modules already loaded
    (shared copy-on-write) and only builds the app, instead of every worker importing them at the
    same time on the same cores (bench/README.md, cold start). Only the module: app.py builds the
    app lazily, in each worker, because its relay thread and database connections must not cross
    a fork (so this is not `preload_app`). With `--reload` the workers must import changed files
    themselves, so nothing is imported here.
    """
    _choose_sockets(server, starting=True)
    _import_app_module(server)


def _import_app_module(server: Any) -> None:
    app_uri = getattr(getattr(server, "app", None), "app_uri", None)
    if app_uri and not server.cfg.reload:
        before = set(sys.modules)
        importlib.import_module(app_uri.split(":", 1)[0])
        setattr(server, IMPORTED, set(sys.modules) - before)


def when_ready(server: Any) -> None:
    """Start the processes that run beside the workers, before the master forks them:

    - on SQLite, the single writer that stores every worker's callbacks
      (bot/alerts/single_writer.py says why);
    - with DELIVERY_IN_WEB (the default), the alert relay, so that the workers run no relay
      thread (handlers/relay_process.py says why).

    Only for an app module that names them (app.py's INTAKE_WRITER_COMMAND and
    RELAY_PROCESS_COMMAND), imported by on_starting; otherwise (`--reload`) each worker stores its
    callbacks and runs its relay thread itself."""
    from bot.config import INTAKE_WRITER_SOCKET, delivers_in_web, is_sqlite_file
    from handlers.relay_process import RelayProcess

    here = Path(__file__).resolve().parent
    started: list[Any] = []
    command = _app_attribute(server, "INTAKE_WRITER_COMMAND")
    if command and is_sqlite_file(os.environ):
        socket_dir = tempfile.mkdtemp(prefix="usage-bot-")  # mode 0700: the workers' user only
        path = os.path.join(socket_dir, "intake.sock")
        # Started a second after the workers (which meanwhile store callbacks themselves), so that
        # its imports do not take turns on the cores with theirs while they start.
        writer = RelayProcess([*command, path], cwd=here, log=server.log, name="intake writer", start_after=1.0)
        setattr(server, WRITER, (writer, socket_dir))
        os.environ[INTAKE_WRITER_SOCKET] = path  # for the workers, forked after this
        started.append(writer)

    command = _app_attribute(server, "RELAY_PROCESS_COMMAND")
    if command and delivers_in_web(os.environ):  # else a separate `python -m bot worker` delivers
        relay = RelayProcess(command, cwd=here, log=server.log)
        setattr(server, RELAY, relay)
        os.environ["DELIVERY_IN_WEB"] = "false"  # for the workers, forked after this
        started.append(relay)

    # Only now, with the environment set: their threads start processes.
    for process in started:
        process.start()


def _app_attribute(server: Any, name: str) -> Any:
    app_uri = getattr(getattr(server, "app", None), "app_uri", None) or ""
    return getattr(sys.modules.get(app_uri.split(":", 1)[0]), name, None)


def on_reload(server: Any) -> None:
    """On SIGHUP the new workers must run the code as it is now: forget the app's own modules that
    the master imported (installed libraries and the standard library stay) and import them again;
    the relay process is started again too."""
    for name in getattr(server, IMPORTED, set()):
        path = getattr(sys.modules.get(name), "__file__", None)
        if path and not _installed(path):
            sys.modules.pop(name, None)
    _choose_sockets(server, starting=False)
    _import_app_module(server)
    if relay := getattr(server, RELAY, None):
        relay.restart()
    if writer := getattr(server, WRITER, None):
        writer[0].restart()  # until it listens again, the workers store callbacks themselves


def _choose_sockets(server: Any, *, starting: bool) -> None:
    """A listening socket per worker (`reuse_port`) on TCP addresses that gunicorn binds itself;
    otherwise (a Unix socket; sockets handed over by systemd or by a USR2 upgrade) one socket
    shared by the workers, as gunicorn does by default. Run again on SIGHUP, which reads this
    file again.

    A second server started with `reuse_port` on a port that one already serves (a copy left
    running in another terminal) would share it silently, each answering some of the requests: at
    start, refuse a port in use instead, as gunicorn does without `reuse_port`."""
    handed_over = server.master_pid or getattr(server, "systemd", False) or "LISTEN_FDS" in os.environ
    if handed_over or not all(isinstance(address, tuple) for address in server.cfg.address):
        server.cfg.set("reuse_port", False)
    elif starting and server.cfg.reuse_port:
        for host, port in server.cfg.address:
            if _in_use(host, port):
                server.log.error("port %s is in use already (is usage-bot running already?)", port)
                sys.exit(1)
            # gunicorn names only the sockets its master opens: none here.
            server.log.info("Listening at: http://%s:%s (a socket per worker)", host, port)


def _in_use(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def on_exit(server: Any) -> None:
    if relay := getattr(server, RELAY, None):
        relay.stop()
    if writer := getattr(server, WRITER, None):
        process, socket_dir = writer
        process.stop()
        shutil.rmtree(socket_dir, ignore_errors=True)


def _installed(path: str) -> bool:
    resolved = Path(path).resolve()
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    return "site-packages" in resolved.parts or "dist-packages" in resolved.parts or resolved.is_relative_to(stdlib)
