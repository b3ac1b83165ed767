"""Gunicorn settings used by the Procfile and, unchanged, by the benchmarks in bench/."""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '3000')}"
# Threads, not processes, carry the concurrency: requests mostly wait on Slack, Twilio or the
# database, and Twilio callbacks that are in flight together share one commit (bot.alerts.AlertWriter),
# so more threads per worker mean fewer commits under load (measured in bench/: 16 beats 8 and 4).
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "16"))

keepalive = 5
timeout = 30
graceful_timeout = 20
accesslog = None
errorlog = "-"
