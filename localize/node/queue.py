"""The node's SQLite queue: instances received, studies and their state, runs, sends.

One file, ``STORAGE/queue.sqlite``, in WAL mode (as the batch catalog,
``localize.batch.catalog``); every change is one transaction, so a node killed at any
moment (``kill -9``) leaves a consistent queue, and ``localize node status``
can read it while the node runs. An instance is acknowledged to its sender only
after its row is committed, so an acknowledged instance is never lost.

A study's state:

- ``receiving``: instances are arriving; ``quiet_since`` is when the quiet-period timer started
  (the last instance of the study's patient, or the node's restart);
- ``queued``: complete, waiting for the runner;
- ``running``: its pipeline run is under way (re-queued if the node stopped meanwhile);
- ``done`` / ``failed``: the last run's outcome (``reason``, ``error``); ``skipped``: nothing to run
  (e.g. an MR study without PET). A new instance puts any of these back to ``receiving``.

A send is one result instance to one destination: ``pending`` until the
destination acknowledged it (``sent``, with the time), or ``superseded`` when a
later run of the study replaced the results before they went out.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localize.sqlite_state import SqliteState

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    sop_uid TEXT PRIMARY KEY,
    study_uid TEXT NOT NULL,
    series_uid TEXT,
    sop_class_uid TEXT,
    path TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    calling_ae TEXT,
    received REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_by_study ON instances(study_uid);
CREATE TABLE IF NOT EXISTS studies (
    study_uid TEXT PRIMARY KEY,
    patient_key TEXT NOT NULL,
    folder TEXT NOT NULL,
    state TEXT NOT NULL,
    n_instances INTEGER NOT NULL DEFAULT 0,
    first_received REAL,
    last_received REAL,
    quiet_since REAL,
    reason TEXT,
    error TEXT,
    results TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    study_uid TEXT NOT NULL REFERENCES studies(study_uid),
    n_instances INTEGER,
    status TEXT NOT NULL,
    reason TEXT,
    error TEXT,
    started REAL,
    finished REAL,
    duration_s REAL,
    n_lesions INTEGER,
    out_dir TEXT
);
CREATE TABLE IF NOT EXISTS sends (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    study_uid TEXT NOT NULL,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    sop_uid TEXT NOT NULL,
    ae_title TEXT NOT NULL,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    sent REAL
);
CREATE TABLE IF NOT EXISTS rejections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    calling_ae TEXT,
    sop_uid TEXT,
    status INTEGER,
    reason TEXT NOT NULL
);
"""

STATES = ("receiving", "queued", "running", "done", "failed", "skipped")


@dataclass(frozen=True)
class Send:
    """One pending result instance for one destination."""

    id: int
    path: str
    sop_uid: str
    ae_title: str
    host: str
    port: int
    attempts: int


class NodeQueue(SqliteState):
    """The queue at ``path`` (created if missing). Safe to share between the node's threads."""

    def __init__(self, path: str | Path):
        super().__init__(path, _SCHEMA)

    # -- receiving -------------------------------------------------------------------------

    def instance(self, sop_uid: str) -> tuple[str, str] | None:
        """(path, sha256) of a stored instance, or None."""
        rows = self._query("SELECT path, sha256 FROM instances WHERE sop_uid=?", (sop_uid,))
        return rows[0] if rows else None

    def used_bytes(self) -> int:
        """Bytes of every received instance on disk (what the storage quota counts)."""
        return self._query("SELECT COALESCE(SUM(bytes), 0) FROM instances")[0][0]

    def record_instance(self, *, sop_uid: str, study_uid: str, series_uid: str, sop_class_uid: str,
                        patient_key: str, folder: str, path: str, size: int, sha256: str, calling_ae: str,
                        now: float | None = None) -> None:
        """A new instance, and its study back to (or still) ``receiving`` with its quiet timer restarted.

        A study being run stays ``running``; the runner sees that it grew (``finish_run``).
        """
        now = time.time() if now is None else now
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO instances VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (sop_uid, study_uid, series_uid, sop_class_uid, path, size, sha256, calling_ae, now))
            db.execute(
                "INSERT INTO studies (study_uid, patient_key, folder, state, n_instances, first_received,"
                " last_received, quiet_since) VALUES (?, ?, ?, 'receiving', 1, ?, ?, ?)"
                " ON CONFLICT(study_uid) DO UPDATE SET n_instances=n_instances+1, last_received=excluded.last_received,"
                " quiet_since=excluded.quiet_since,"
                " state=CASE WHEN state='running' THEN 'running' ELSE 'receiving' END",
                (study_uid, patient_key, folder, now, now, now))

    def record_rejection(self, reason: str, *, calling_ae: str | None = None, sop_uid: str | None = None,
                         status: int | None = None) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO rejections (time, calling_ae, sop_uid, status, reason) VALUES (?, ?, ?, ?, ?)",
                       (time.time(), calling_ae, sop_uid, status, reason))

    # -- running ---------------------------------------------------------------------------

    def recover(self, now: float | None = None) -> None:
        """After a (re)start: studies left ``running`` are re-queued; ``receiving`` ones restart their timer."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            db.execute("UPDATE runs SET status='interrupted', finished=? WHERE status='running'", (now,))
            db.execute("UPDATE studies SET state='queued' WHERE state='running'")
            db.execute("UPDATE studies SET quiet_since=? WHERE state='receiving'", (now,))

    def queue_quiet_studies(self, quiet_period_s: float, now: float | None = None) -> list[str]:
        """Mark ``queued`` every receiving study whose patient sent nothing for ``quiet_period_s``; their UIDs.

        The whole patient must be quiet: another of the patient's studies still arriving may hold the MR
        the PET study is paired with (``localize.load.plan.plan_studies``).
        """
        now = time.time() if now is None else now
        with self._transaction() as db:
            rows = db.execute(
                "SELECT study_uid FROM studies s WHERE state='receiving' AND"
                " (SELECT MAX(quiet_since) FROM studies p WHERE p.patient_key=s.patient_key"
                "  AND p.state IN ('receiving', 'queued', 'running')) <= ?",
                (now - quiet_period_s,)).fetchall()
            uids = [uid for (uid,) in rows]
            db.executemany("UPDATE studies SET state='queued' WHERE study_uid=?", [(u,) for u in uids])
        return uids

    def claim_next(self) -> tuple[str, str, int] | None:
        """The oldest queued study as (study_uid, folder, run id), now ``running``; None when none waits."""
        with self._transaction() as db:
            row = db.execute("SELECT study_uid, folder, n_instances FROM studies WHERE state='queued'"
                             " ORDER BY last_received LIMIT 1").fetchone()
            if row is None:
                return None
            uid, folder, n = row
            db.execute("UPDATE studies SET state='running' WHERE study_uid=?", (uid,))
            cursor = db.execute("INSERT INTO runs (study_uid, n_instances, status, started)"
                                " VALUES (?, ?, 'running', ?)", (uid, n, time.time()))
            assert cursor.lastrowid is not None  # sqlite3 sets it after an INSERT
            return uid, folder, cursor.lastrowid

    def finish_run(self, run_id: int, *, status: str, duration_s: float = 0.0, reason: str | None = None,
                   error: str | None = None, n_lesions: int | None = None, out_dir: str | None = None,
                   sends: Iterable[dict[str, Any]] = ()) -> str:
        """Record a run's end, its study's new state and the sends of its results; the state.

        ``status``: done, failed or skipped. Pending sends of the study's earlier runs are
        superseded by this run's. A study that received instances during the run goes back
        to ``receiving``, to be run again once quiet.
        """
        with self._transaction() as db:
            uid, started = db.execute("SELECT study_uid, started FROM runs WHERE id=?", (run_id,)).fetchone()
            db.execute("UPDATE runs SET status=?, reason=?, error=?, finished=?, duration_s=?, n_lesions=?,"
                       " out_dir=? WHERE id=?",
                       (status, reason, error, time.time(), duration_s, n_lesions, out_dir, run_id))
            grew = db.execute("SELECT COUNT(*) FROM instances WHERE study_uid=? AND received>=?",
                              (uid, started)).fetchone()[0]
            state = "receiving" if grew else status
            db.execute("UPDATE studies SET state=?, reason=?, error=?, results=COALESCE(?, results) WHERE study_uid=?",
                       (state, reason, error, out_dir, uid))
            if status == "done":
                db.execute("UPDATE sends SET status='superseded' WHERE study_uid=? AND status='pending'", (uid,))
                db.executemany(
                    "INSERT INTO sends (run_id, study_uid, kind, path, sop_uid, ae_title, host, port)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(run_id, uid, s["kind"], s["path"], s["sop_uid"], s["ae_title"], s["host"], s["port"])
                     for s in sends])
            return state

    # -- sending ---------------------------------------------------------------------------

    def due_sends(self, now: float | None = None) -> list[Send]:
        """Pending sends whose next attempt is due, oldest first."""
        now = time.time() if now is None else now
        rows = self._query("SELECT id, path, sop_uid, ae_title, host, port, attempts FROM sends"
                           " WHERE status='pending' AND next_try<=? ORDER BY id", (now,))
        return [Send(*row) for row in rows]

    def mark_sent(self, send_id: int) -> None:
        with self._transaction() as db:
            db.execute("UPDATE sends SET status='sent', sent=?, attempts=attempts+1, last_error=NULL"
                       " WHERE id=? AND status='pending'", (time.time(), send_id))

    def mark_send_failed(self, send_id: int, error: str, next_try: float) -> None:
        with self._transaction() as db:
            db.execute("UPDATE sends SET attempts=attempts+1, last_error=?, next_try=? WHERE id=? AND status='pending'",
                       (error, next_try, send_id))

    # -- reading ---------------------------------------------------------------------------

    def rows(self, table: str, where: str = "", args: tuple = ()) -> list[dict[str, Any]]:
        """Rows of one of the queue's tables as dicts (for ``localize node status`` and tests)."""
        if table not in ("instances", "studies", "runs", "sends", "rejections"):
            raise ValueError(f"no table {table!r}")
        with self._lock:
            cursor = self.db.execute(f"SELECT * FROM {table} {where}", args)
            names = [c[0] for c in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]
