"""Storage: SQLAlchemy 2 Core on SQLite (one machine) or PostgreSQL (several workers or dynos).

Every timestamp is a float of Unix seconds, which compares the same way on both databases.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar

from sqlalchemy import Connection, bindparam, create_engine, event, insert, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from bot.store.migrate import Migration, SchemaError, upgrade
from bot.store.schema import state

log = logging.getLogger(__name__)

T = TypeVar("T")


# The PostgreSQL advisory lock held while the schema changes (the id create_schema() used before
# Alembic, so a process still running that code also waits for a migration).
MIGRATION_LOCK = 727001
_WRITES = "usage_bot_writes"
# Read before every Slack post (the 429 pause): built once, as building a statement costs more than
# running it.
_GET_STATE = select(state.c.value).where(state.c.key == bindparam("b_key"))
_GET_STATES = select(state.c.key, state.c.value).where(state.c.key.in_(bindparam("b_keys", expanding=True)))


class Store:
    """The database, and the few operations the rest of the domain needs from it directly."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.known_channels: set[str] = set()  # channels known to have a `channels` row
        # SQLite has one writer at a time. Writers queue on a lock (threads) and a lock file
        # (processes) instead of in SQLite's busy handler, which sleeps in steps of up to 100 ms.
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        self._write_lock: AbstractContextManager[object] = (
            SQLiteWriterLock(database) if database and database != ":memory:" else nullcontext()
        )

    @classmethod
    def connect(cls, url: str) -> Store:
        return cls(make_engine(url))

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[Connection]:
        """One write transaction; commits when the block ends, rolls back if it raises.

        `durable=False`: on PostgreSQL the commit does not wait for its WAL flush (asynchronous
        commit, https://www.postgresql.org/docs/current/wal-async-commit.html); a database crash may
        undo it, never corrupt anything, and the next durable commit flushes it. Only for changes
        whose loss is harmless (the relay's pacing and bookkeeping). SQLite (WAL, synchronous=NORMAL)
        does not wait for a flush at commit anyway.
        """
        # The writer lock is taken after the pool checkout: it is held no longer than the transaction.
        with self.engine.connect() as conn, self._write_lock:
            if self.is_sqlite:
                conn.info[_WRITES] = True  # read (and cleared) by the "begin" hook in _tune_sqlite

            with conn.begin():
                if not durable and not self.is_sqlite:
                    conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads that need no snapshot shared across statements, run many times a
        second (the relay's). On PostgreSQL its statements run in autocommit, each by itself: one
        round trip each, without the BEGIN and ROLLBACK of a transaction; each sees what was
        committed when it started. On SQLite, a read transaction as usual (in-process, as cheap)."""
        with self.engine.connect() as conn:
            if self.is_sqlite:
                yield conn
                return
            driver = conn.connection.dbapi_connection
            driver.autocommit = True  # type: ignore[union-attr]
            try:
                yield conn
            finally:
                if not conn.invalidated and not driver.closed:  # type: ignore[union-attr]
                    driver.autocommit = False  # type: ignore[union-attr]  # pooled: back as it was

    def write(self, work: Callable[[Connection], T], *, durable: bool = True) -> T:
        """Run `work` in a write transaction (on a fresh connection if the pooled one was dead)."""

        def attempt() -> T:
            with self.transaction(durable=durable) as conn:
                return work(conn)

        return _once_more_if_dead(attempt)

    def write_on_driver(self, work: Callable[[Any], T]) -> T:
        """Run `work` with a cursor of a pooled driver (DB-API) connection, as one write.

        For the intake's hot path (bot/alerts/intake.py `store_alerts`), where SQLAlchemy's own
        work per statement costs more than the statement. SQLite: one write transaction (the writer
        lock, BEGIN IMMEDIATE, COMMIT). PostgreSQL: autocommit, so `work` must issue a single
        statement, which is atomic by itself: one round trip, where a transaction takes three.
        Driver errors come out as SQLAlchemy's DBAPIError, as from `write`; a connection found
        dead is dropped and the work tried once more on a new one.
        """
        dialect = self.engine.dialect

        def attempt() -> T:
            pooled, driver = None, None
            try:
                pooled = self.engine.raw_connection()
                driver = pooled.driver_connection
                if self.is_sqlite:
                    with self._write_lock:
                        return _in_sqlite_transaction(driver, work)
                driver.autocommit = True  # type: ignore[union-attr]
                try:
                    return work(driver.cursor())  # type: ignore[union-attr]
                finally:
                    driver.autocommit = False  # type: ignore[union-attr]
            except dialect.loaded_dbapi.Error as exc:
                dead = pooled is not None and dialect.is_disconnect(exc, driver, None)
                if dead:
                    pooled.invalidate(exc)  # type: ignore[union-attr]
                raise DBAPIError.instance(
                    None, None, exc, dialect.loaded_dbapi.Error, connection_invalidated=dead, dialect=dialect
                ) from exc
            finally:
                if pooled is not None:
                    pooled.close()  # back to the pool

        return _once_more_if_dead(attempt)

    def migrate(self) -> Migration:
        """Create or upgrade the schema to the newest Alembic revision; a few ms when it is already
        there. Every process runs it at start; safe from several at once (bot/store/migrate.py)."""
        return upgrade(self)

    @contextmanager
    def schema_transaction(self) -> Iterator[Connection]:
        """One transaction for changing the schema, which no other process changes meanwhile.

        PostgreSQL: an advisory lock held until the transaction ends, so two dynos releasing or
        starting at once take turns; DDL is transactional there, so a failed migration leaves
        nothing half done. SQLite: the writer lock and BEGIN IMMEDIATE, with foreign keys off so
        that batch mode can rebuild a table others refer to, and checked before the commit
        ("Dealing with Referencing Foreign Keys" in https://alembic.sqlalchemy.org/en/latest/batch.html).
        """
        if not self.is_sqlite:
            with self.engine.connect() as conn, conn.begin():
                conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK})
                yield conn
            return
        with self._write_lock, self.engine.connect() as conn:
            driver = conn.connection.dbapi_connection
            driver.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]  # before BEGIN: a no-op inside
            try:
                conn.info[_WRITES] = True
                with conn.begin():
                    yield conn
                    if broken := conn.exec_driver_sql("PRAGMA foreign_key_check").all():
                        raise SchemaError(f"the schema change left rows whose foreign key points nowhere: {broken[:5]}")
            finally:
                driver.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]  # pooled: back as it was

    def ping(self) -> bool:
        """True when the database answers a trivial query."""

        def select_one() -> None:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))

        try:
            _once_more_if_dead(select_one)
            return True
        except SQLAlchemyError as exc:
            log.warning("database ping failed: %s", type(exc).__name__)
            return False

    def get_state(self, key: str) -> str | None:
        with self.read() as conn:
            return conn.execute(_GET_STATE, {"b_key": key}).scalar_one_or_none()

    def get_states(self, *keys: str) -> dict[str, str]:
        """Several state rows in one read: {key: value} for those that exist."""
        with self.read() as conn:
            return {key: value for key, value in conn.execute(_GET_STATES, {"b_keys": list(keys)})}

    def dispose(self) -> None:
        self.engine.dispose()


class SQLiteWriterLock:
    """Serialises SQLite writers: a thread lock within the process, `flock` across processes.

    A blocked `flock` wakes as soon as the holder releases it. The lock file is opened per
    process (after gunicorn forks), since forked processes would otherwise share one lock.
    """

    def __init__(self, database: str) -> None:
        self.path = database + ".writer-lock"
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self) -> SQLiteWriterLock:
        self._thread_lock.acquire()
        try:
            if self._pid != os.getpid():
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                self._pid = os.getpid()
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # type: ignore[arg-type]
        except BaseException:
            self._thread_lock.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)  # type: ignore[arg-type]
        finally:
            self._thread_lock.release()


def _in_sqlite_transaction(driver: Any, work: Callable[[Any], T]) -> T:
    cursor = driver.cursor()
    cursor.execute("BEGIN IMMEDIATE")
    try:
        result = work(cursor)
        cursor.execute("COMMIT")
        return result
    except BaseException:
        if driver.in_transaction:
            driver.rollback()
        raise


def _once_more_if_dead(attempt: Callable[[], T]) -> T:
    """Run `attempt`, and once more if its pooled connection turned out to be dead (the database
    restarted or failed over): the pool does not ping on every checkout, which would cost a
    round trip per request."""
    try:
        return attempt()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        log.warning("database connection was lost; retrying on a new one")
    return attempt()


def set_state(conn: Connection, key: str, value: str, *, now: float) -> None:
    """Upsert one state row inside the caller's transaction."""
    updated = conn.execute(state.update().where(state.c.key == key).values(value=value, updated_at=now))
    if updated.rowcount == 0:
        conn.execute(insert(state).values(key=key, value=value, updated_at=now))


# Enough pooled connections for a process's request threads and relay threads together: a
# connection beyond the pool is opened and closed again for each use.
POOL_SIZE = 16
# SQLite copies the WAL back into the database (a checkpoint, which syncs both files) once a
# commit leaves it past this many pages, inside that commit, while the writer lock is held.
# SQLite's default, 1,000 pages (4 MB), came round several times a second under a burst of
# callbacks (~10 pages per commit); with 10,000 (a WAL file of ~40 MB) intake stored more callbacks
# per second (bench/README.md, A/B of 2026-12-03). https://www.sqlite.org/wal.html#ckpt
WAL_CHECKPOINT_PAGES = 10_000


def make_engine(url: str) -> Engine:
    """An engine tuned for how the app uses each database."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=POOL_SIZE, max_overflow=16
        )
        _tune_sqlite(engine)
        return engine
    # No pool_pre_ping: a ping per checkout is a round trip per request; Store.write and
    # Store.ping retry once instead when a pooled connection turns out to be dead.
    return create_engine(url, pool_size=POOL_SIZE, max_overflow=16, pool_recycle=300)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transactions into our own hands (see on_begin), and let readers run beside a writer.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL survives a killed process (only power loss can cost the last commits);
        # SQLite is the one-machine option, PostgreSQL is for durability across machines.
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        # A write transaction (Store.transaction) takes the write lock up front, so concurrent
        # writers wait (busy_timeout) instead of failing with "database is locked" when a read
        # transaction upgrades; reads begin plainly and run beside a writer (WAL).
        writes = conn.info.pop(_WRITES, False)
        # Straight to the driver: this runs for every transaction, and SQLAlchemy's statement
        # machinery would cost more than the BEGIN itself.
        conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE" if writes else "BEGIN")  # type: ignore[union-attr]
