"""Migrations: bring any database to the newest schema with Alembic (the revisions in migrations/).

Every process runs `upgrade` (as Store.migrate) before it uses the database: `python -m bot
migrate` (the Procfile's release step), the web app, `worker` and `digests`. A deploy without a
release phase still upgrades on start, and processes starting together take turns on the
migration lock (Store.schema_transaction). A database arrives here in one of four states:

- empty: every revision runs;
- made before Alembic, by the old create_schema() (its tables, state.schema_version "2", no
  alembic_version table): stamped at BASELINE, the revision that builds exactly those tables,
  then upgraded from there;
- at a revision this code knows: upgraded from there (nothing to do at the head);
- at a revision this code does not know (a newer release migrated it, then was rolled back):
  left as it is, with a warning, rather than turning a rollback into an outage.
"""

from __future__ import annotations

import logging
import re
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, ProgrammingError

from bot.config import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The first revision: the tables create_schema() built before Alembic, which marked its databases
# with state.schema_version = "2".
BASELINE = "0001"
LEGACY_SCHEMA_VERSION = "2"
LEGACY = "legacy"  # Migration.before for such a database

# Alembic's `context` and `op` are module-level proxies: one migration at a time per process.
_alembic_lock = threading.Lock()


class Database(Protocol):
    """What a migration needs of the store (bot.store.database.Store, which calls `upgrade`)."""

    engine: Engine

    def schema_transaction(self) -> AbstractContextManager[Connection]: ...


class SchemaError(ConfigError):
    """The database cannot be brought to this code's schema; the message is one line."""


@dataclass(frozen=True)
class Migration:
    """What upgrade() found and what it left: revision ids, comma-separated if several."""

    before: str  # "" for an empty database, LEGACY for one made before Alembic
    after: str
    newer: bool = False  # the database is at a revision this code does not know

    def __str__(self) -> str:
        if self.newer:
            return f"database schema is at revision {self.after}, which this release does not know; left as it is"
        if self.before == self.after:
            return f"database schema is up to date (revision {self.after})"
        if not self.before:
            return f"database schema created (revision {self.after})"
        if self.before == LEGACY:
            upgraded = f" and upgraded to {self.after}" if self.after != BASELINE else ""
            return f"database schema from before migrations adopted as revision {BASELINE}{upgraded}"
        return f"database schema upgraded from revision {self.before} to {self.after}"


def upgrade(store: Database) -> Migration:
    """Bring the database to the head revision. When it is there already this costs one query:
    Alembic is not even imported (its import alone takes far longer; cold starts matter)."""
    heads = script_heads()
    if heads is not None and _current_revisions(store) == heads:
        return Migration(before=_ids(heads), after=_ids(heads))
    with _alembic_lock, store.schema_transaction() as conn:
        migration = _upgrade(conn)
    if migration.newer:
        log.warning("%s", migration)
    elif migration.before != migration.after:
        log.info("%s", migration)
    return migration


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, built in code so that no alembic.ini is needed: our migrations
    folder, and the connection env.py is to use (in its transaction) if one is given."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))  # ConfigParser interpolates %
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _upgrade(conn: Connection) -> Migration:
    """Everything that needs Alembic, inside the caller's transaction and migration lock."""
    from alembic import command
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = alembic_config(conn)
    found = MigrationContext.configure(conn).get_current_heads()
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    if any(revision not in known for revision in found):
        return Migration(before=_ids(found), after=_ids(found), newer=True)
    before = _ids(found)
    if not found and _made_before_alembic(conn):
        command.stamp(config, BASELINE)
        before = LEGACY
    command.upgrade(config, "head")
    return Migration(before=before, after=_ids(MigrationContext.configure(conn).get_current_heads()))


def _made_before_alembic(conn: Connection) -> bool:
    """True for a database the old create_schema() made: it has our tables but no revision."""
    if not inspect(conn).has_table("state"):
        return False
    version = conn.execute(text("SELECT value FROM state WHERE key = 'schema_version'")).scalar_one_or_none()
    if version != LEGACY_SCHEMA_VERSION:
        raise SchemaError(
            f"the database has usage-bot tables without a migration revision and state.schema_version "
            f"{version!r} (expected {LEGACY_SCHEMA_VERSION!r}): not a schema this release can upgrade"
        )
    return True


def _current_revisions(store: Database) -> frozenset[str] | None:
    """The revision(s) in alembic_version, or None without that table (then Alembic looks closer)."""
    try:
        with store.engine.connect() as conn:
            return frozenset(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    except (OperationalError, ProgrammingError):
        return None


_ASSIGNMENT = re.compile(r"^(revision|down_revision)\b[^=\n]*=([^#\n]*)", re.MULTILINE)
_QUOTED = re.compile(r"""["']([^"']+)["']""")


def script_heads() -> frozenset[str] | None:
    """The head revision(s), read from the revision files as text instead of through Alembic.

    None if a file does not read plainly, and then Alembic decides. A `down_revision` misread
    can only make a revision look like an extra head, so the quick check fails and Alembic runs:
    it costs time, never a skipped migration. tests/test_migrations.py checks it agrees with Alembic.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        found = {name: _QUOTED.findall(value) for name, value in _ASSIGNMENT.findall(path.read_text())}
        if "down_revision" not in found or len(found.get("revision", [])) != 1:
            return None
        revisions.update(found["revision"])
        parents.update(found["down_revision"])
    return frozenset(revisions - parents) or None


def _ids(revisions: frozenset[str] | tuple[str, ...]) -> str:
    return ",".join(sorted(revisions))
