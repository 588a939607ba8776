"""SQLite state files (a batch's catalog, a node's queue): WAL journal, one transaction per change.

A process killed at any moment leaves the file consistent: every change is one
``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on an error), serialised by a lock
so the threads of one process may share the connection.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self


class SqliteState:
    """A SQLite file at ``path`` (created if missing) with ``schema`` applied."""

    def __init__(self, path: str | Path, schema: str):
        self.path = Path(path)
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            self.db.execute(f"PRAGMA {pragma}")
        self.db.executescript(schema)
        self._lock = threading.RLock()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self.db.execute(sql, args).fetchall()
