"""The App Home use case: Twilio's figures (from the `HomeCache`) and the bot's own records
(triggers' owners, budgets, digests, alerts waiting, held or failed), read for one view.

The database parts are read fresh for every view (they are cheap); Twilio's parts come from the
cache. A part that fails becomes a short note in the view, never a blank Home.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from bot.alerts import mute, triggers
from bot.alerts.outbox import count_unsent, failed_alerts
from bot.clock import Clock
from bot.home.model import HomeView, LocalRecords
from bot.home.render import render_home
from bot.home.snapshot import HomeCache
from bot.reports import budgets, subscriptions
from bot.store import Store
from bot.watch import store as watch_store

log = logging.getLogger(__name__)

FAILED_SHOWN = 5
DATABASE_NOTE = "The bot's own records could not be read just now; press Refresh in a moment."


class HomeDashboard:
    """Builds the Home view of a user: one call per `app_home_opened` or Refresh."""

    def __init__(
        self,
        store: Store,
        cache: HomeCache,
        clock: Clock,
        *,
        timezone: str = "UTC",
    ) -> None:
        self.store = store
        self.cache = cache
        self.clock = clock
        self.timezone = timezone

    def view(self, user_id: str) -> dict[str, Any]:
        """The Home view (a `home` view object) for `user_id`."""
        snapshot = self.cache.get()
        return render_home(
            HomeView(user_id=user_id, snapshot=snapshot, local=self.local(), timezone=self.timezone, now=self.clock())
        )

    def local(self) -> LocalRecords:
        now = self.clock()
        try:
            return LocalRecords(
                owners=triggers.owners(self.store),
                budgets=budgets.list_budgets(self.store),
                digests=subscriptions.list_subscriptions(self.store),
                watched=watched_lines(self.store),
                unsent=count_unsent(self.store),
                failed=failed_alerts(self.store, limit=FAILED_SHOWN),
                snoozes=mute.active_snoozes(self.store, now),
            )
        except SQLAlchemyError as exc:
            log.warning("Home: database unavailable (%s)", type(exc).__name__)
            return LocalRecords(error=DATABASE_NOTE)


def watched_lines(store: Store) -> list[tuple[str, str]]:
    """(channel ID, line) for each spend-spike watch (`/usage watch`), for the Home view."""
    return [
        (w.channel_id, f"{f'`{w.category}`' if w.category else 'every category with spend'} · {w.sensitivity}")
        for w in watch_store.list_watches(store)
    ]
