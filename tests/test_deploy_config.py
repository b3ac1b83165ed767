"""Configuration outside the app's code: `.env` honoured by gunicorn.conf.py and by logging as by
the app, `.env.example` in step with the README's table of variables, `.gitignore` covering
what SQLite and the bot leave beside the database."""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.conftest import ACCOUNT_SID, AUTH_TOKEN
from tests.slack_requests import SIGNING_SECRET

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONF = ROOT / "gunicorn.conf.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bare_env(**extra: str) -> dict[str, str]:
    """A process environment with none of the app's variables: only what runs Python."""
    return {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **extra}


@contextmanager
def gunicorn_in(tmp_path: Path, app_spec: str, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """`gunicorn -c gunicorn.conf.py app_spec` started in `tmp_path` (whose modules it imports
    first) with `env` and what runs Python, its output in tmp_path/gunicorn.log; stopped after."""
    runtime_dir = tmp_path / "run"  # gunicorn's control socket: this server's own
    runtime_dir.mkdir(mode=0o700, exist_ok=True)
    full_env = {**bare_env(**env), "XDG_RUNTIME_DIR": str(runtime_dir), "PYTHONPATH": f"{tmp_path}:{ROOT}"}
    with (tmp_path / "gunicorn.log").open("ab") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), app_spec],
            cwd=tmp_path,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield server
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)


def log_of(tmp_path: Path) -> str:
    return (tmp_path / "gunicorn.log").read_text(errors="replace")[-3000:]


def test_gunicorn_binds_the_port_set_only_in_dotenv(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / ".env").write_text(
        "\n".join(
            [
                f"PORT={port}",
                "WEB_CONCURRENCY=1",
                "GUNICORN_THREADS=2",
                "SLACK_BOT_TOKEN=xoxb-from-dotenv",
                f"SLACK_SIGNING_SECRET={SIGNING_SECRET}",
                f"TWILIO_ACCOUNT_SID={ACCOUNT_SID}",
                f"TWILIO_AUTH_TOKEN={AUTH_TOKEN}",
                f"DATABASE_URL=sqlite:///{tmp_path}/usage-bot.db",
                "DELIVERY_IN_WEB=false",
                "SLACK_API_URL=http://127.0.0.1:9/api/",  # nothing listens: nothing may be called
                "TWILIO_API_URL=http://127.0.0.1:9",
            ]
        )
        + "\n"
    )
    with gunicorn_in(tmp_path, "app:app") as server:
        deadline = time.monotonic() + 60
        answer = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                # The port is bound before the worker has loaded the app: a first request may wait.
                answer = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=20)
                break
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.1)
        output = (tmp_path / "gunicorn.log").read_text(errors="replace")
        assert answer is not None, f"gunicorn did not answer on port {port} from .env:\n{output[-2000:]}"
        assert answer.status_code == 200 and answer.json()["status"] == "ok"
        assert f"Listening at: http://0.0.0.0:{port}" in output


def _wait_for_text(port: int, wanted: str, timeout: float = 60) -> str:
    deadline, last = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        try:
            last = requests.get(f"http://127.0.0.1:{port}/", timeout=20).text
            if last == wanted:
                break
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.1)
    return last


def test_the_master_imports_the_app_module_and_a_hup_brings_new_code(tmp_path: Path) -> None:
    """gunicorn.conf.py imports the app's module in the master before forking (a faster start);
    a SIGHUP must still give the new workers the code as it is on disk now."""
    module = tmp_path / "hupapp.py"
    imports = tmp_path / "imported-by.txt"

    def write_app(answer: str) -> None:
        module.write_text(
            "import os\n"
            f"with open({str(imports)!r}, 'a') as f:\n"
            "    f.write(f'{os.getpid()}\\n')\n"
            "def app(environ, start_response):\n"
            "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
            f"    return [{answer.encode()!r}]\n"
        )

    write_app("v1")
    port = free_port()
    with gunicorn_in(tmp_path, "hupapp:app", PORT=str(port), WEB_CONCURRENCY="1", GUNICORN_THREADS="2") as server:
        assert _wait_for_text(port, "v1") == "v1", log_of(tmp_path)
        assert imports.read_text().split() == [str(server.pid)]  # imported once, by the master
        write_app("version 2")  # another length: Python's bytecode cache checks size and mtime
        server.send_signal(signal.SIGHUP)
        answer = _wait_for_text(port, "version 2")
        assert answer == "version 2", log_of(tmp_path)
        assert imports.read_text().split() == [str(server.pid)] * 2  # the master imported it again


def _config_values(cwd: Path, env: dict[str, str]) -> list[str]:
    show = (
        "import runpy; c = runpy.run_path(" + repr(str(GUNICORN_CONF)) + "); "
        "print(c['bind'], c['workers'], c['threads'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", show], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.split()


def test_gunicorn_conf_reads_dotenv_but_the_real_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PORT=1111\nWEB_CONCURRENCY=5\nGUNICORN_THREADS=3\n")
    assert _config_values(tmp_path, bare_env()) == ["0.0.0.0:1111", "5", "3"]
    assert _config_values(tmp_path, bare_env(PORT="2222", GUNICORN_THREADS="4")) == ["0.0.0.0:2222", "5", "4"]
    (tmp_path / ".env").unlink()
    assert _config_values(tmp_path, bare_env()) == ["0.0.0.0:3000", "2", "16"]  # the defaults


def test_log_level_may_be_set_in_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LOG_LEVEL=warning\n")
    show = "import logging; from bot.config import configure_logging; configure_logging(); print(logging.root.level)"
    result = subprocess.run(
        [sys.executable, "-c", show], cwd=tmp_path, env=bare_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(logging.WARNING)


def readme_variables() -> set[str]:
    """The variables named in the first column of README's table under "2. Configure"."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### 2. Configure", 1)[1].split("\n### ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    names = {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}
    assert names, "no variable table found in README"
    return names


def example_variables() -> set[str]:
    """Every variable `.env.example` sets or shows commented out (`NAME=` or `# NAME=`)."""
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))


def test_env_example_lists_every_variable_the_readme_lists_and_no_other() -> None:
    assert example_variables() == readme_variables()


def test_the_readme_variable_table_is_one_table() -> None:
    section = (ROOT / "README.md").read_text().split("### 2. Configure", 1)[1].split("\n### ", 1)[0]
    lines = section.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("| variable"))
    last = max(i for i, line in enumerate(lines) if line.startswith("| `"))
    assert all(line.startswith("|") for line in lines[first : last + 1]), "a blank line splits the table"


@pytest.mark.parametrize(
    "name",
    ["usage-bot.db", "usage-bot.db-wal", "usage-bot.db-shm", "usage-bot.db.writer-lock", "data/x.sqlite3-wal", ".env"],
)
def test_gitignore_covers_the_database_and_what_sqlite_and_the_bot_put_beside_it(name: str) -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".gitignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # Each of these patterns has no slash, so git matches it against the file's name alone.
    assert any(fnmatch.fnmatch(Path(name).name, pattern) for pattern in patterns), name
