"""How much database work a piece of code does, counted rather than timed.

SQLite: the virtual machine instructions its statements execute (`set_progress_handler`, called
every `STEP` instructions). PostgreSQL: the rows its statements' scans read, including those a
filter then dropped, as EXPLAIN ANALYZE reports them; each statement is first run under EXPLAIN
ANALYZE inside a savepoint that is rolled back (a SELECT outside a transaction: as it is), then
for real.
Docs: https://docs.python.org/3/library/sqlite3.html#sqlite3.Connection.set_progress_handler,
https://www.postgresql.org/docs/current/using-explain.html#USING-EXPLAIN-ANALYZE
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event

from bot.store import Store

STEP = 10
_SCANS = ("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan")


@dataclass
class Work:
    statements: list[str] = field(default_factory=list)
    units: int = 0  # SQLite: VM instructions / STEP; PostgreSQL: rows read by scans
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, n: int) -> None:
        with self.lock:
            self.units += n


def rows_read(plan: dict[str, Any]) -> int:
    """Rows the scans of an EXPLAIN ANALYZE plan read (kept or filtered out), over all loops."""
    own = 0
    if plan.get("Node Type") in _SCANS:
        loops = plan.get("Actual Loops", 1)
        own = (plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)) * loops
    return own + sum(rows_read(child) for child in plan.get("Plans", []))


@contextmanager
def counting(store: Store) -> Iterator[Work]:
    """Count the work of every statement `store` runs inside the block (any thread)."""
    work = Work()
    engine = store.engine
    sqlite = engine.dialect.name == "sqlite"

    touched: list[Any] = []

    def count_steps() -> int:
        work.add(1)
        return 0  # carry on

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        with work.lock:
            work.statements.append(statement)
        if sqlite:
            # Left on until the block ends: a SELECT's rows are computed as they are fetched.
            driver = conn.connection.dbapi_connection
            driver.set_progress_handler(count_steps, STEP)
            with work.lock:
                touched.append(driver)
            return
        if executemany or not statement.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
            return  # EXPLAIN takes only these (not, e.g., SET LOCAL)
        # Store.read runs its statements in autocommit, outside any transaction: only SELECTs, which
        # EXPLAIN ANALYZE may run as they are; anything else runs in a savepoint rolled back after.
        in_transaction = not conn.connection.dbapi_connection.autocommit
        if not in_transaction and not statement.lstrip().upper().startswith("SELECT"):
            raise AssertionError(f"a write outside a transaction: {statement}")
        if in_transaction:
            cursor.execute("SAVEPOINT counting_work")
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
        document = cursor.fetchone()[0]
        if in_transaction:
            cursor.execute("ROLLBACK TO SAVEPOINT counting_work")
        document = json.loads(document) if isinstance(document, str) else document
        work.add(rows_read(document[0]["Plan"]))

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield work
    finally:
        event.remove(engine, "before_cursor_execute", before)
        for driver in touched:
            driver.set_progress_handler(None, STEP)
