"""The SQLite state under a batch's catalog and a node's queue: a change is whole or absent."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from localize.sqlite_state import SqliteState

SCHEMA = "CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY, status TEXT NOT NULL);"


def test_a_failed_change_leaves_nothing_and_a_finished_one_stays(tmp_path):
    path = tmp_path / "state.sqlite"
    with SqliteState(path, SCHEMA) as state:
        with state._transaction() as db:
            db.execute("INSERT INTO runs (status) VALUES ('done')")
        with pytest.raises(RuntimeError), state._transaction() as db:
            db.execute("INSERT INTO runs (status) VALUES ('half')")
            raise RuntimeError("the process fails mid-change")
        assert state._query("SELECT status FROM runs") == [("done",)]
    # a fresh connection (another process) sees the same, in WAL mode
    other = sqlite3.connect(path)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert other.execute("SELECT status FROM runs").fetchall() == [("done",)]
    other.close()


def test_threads_share_one_state_without_losing_a_change(tmp_path):
    with SqliteState(tmp_path / "state.sqlite", SCHEMA) as state:
        def insert(n: int) -> None:
            for _ in range(n):
                with state._transaction() as db:
                    db.execute("INSERT INTO runs (status) VALUES ('queued')")

        threads = [threading.Thread(target=insert, args=(50,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert state._query("SELECT COUNT(*) FROM runs") == [(200,)]
