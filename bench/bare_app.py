"""The baseline: a bare Flask app served by the same gunicorn config as usage-bot.

`POST /slack/events` answers 200 `{"text": "ok"}` and `POST /twilio/usage-triggers` an empty 200,
without reading, verifying, parsing or storing anything.

`GET /healthz` exists only so bench/common.py can wait for it exactly as it waits for usage-bot
(which has the same two routes).

    gunicorn -c gunicorn.conf.py bench.bare_app:app
"""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.post("/slack/events")
def slack_events() -> dict[str, str]:
    return {"text": "ok"}


@app.post("/twilio/usage-triggers")
def usage_trigger_fired() -> tuple[str, int]:
    return "", 200


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
