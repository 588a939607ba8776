"""The SQLite catalog of a batch: what the archive holds and how each run went.

One file, ``OUT/catalog.sqlite``, in WAL mode; every change is one transaction,
so a batch killed at any moment leaves a consistent catalog. Only the batch's
main process writes it.

Tables: ``patients``, ``studies``, ``series`` (what the index found) and
``runs`` (one row per PET study: the series used, status, error, timings).
A run's status is ``pending``, ``running``, ``done``, ``failed`` or ``skipped``; ``done`` is
set only after the study's output folder has been renamed into place.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localize.sqlite_state import SqliteState

_SCHEMA = """
CREATE TABLE IF NOT EXISTS patients (
    patient_key TEXT PRIMARY KEY,
    patient_id TEXT
);
CREATE TABLE IF NOT EXISTS studies (
    study_uid TEXT PRIMARY KEY,
    patient_key TEXT NOT NULL REFERENCES patients(patient_key),
    study_date TEXT,
    modalities TEXT
);
CREATE TABLE IF NOT EXISTS series (
    series_uid TEXT PRIMARY KEY,
    study_uid TEXT NOT NULL REFERENCES studies(study_uid),
    modality TEXT,
    description TEXT,
    frame_of_reference_uid TEXT,
    n_files INTEGER,
    tracer TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    study_uid TEXT PRIMARY KEY REFERENCES studies(study_uid),
    patient_key TEXT,
    pet_series_uid TEXT,
    ct_series_uid TEXT,
    mr_series_uid TEXT,
    mr_days_apart REAL,
    manifest TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    reason TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    started REAL,
    finished REAL,
    duration_s REAL,
    n_lesions INTEGER,
    out_dir TEXT
);
CREATE TABLE IF NOT EXISTS unreadable (
    path TEXT PRIMARY KEY,
    reason TEXT
);
CREATE TABLE IF NOT EXISTS settings (
    name TEXT PRIMARY KEY,
    value TEXT
);
"""


@dataclass
class RunRow:
    study_uid: str
    manifest: dict[str, Any]
    status: str


class Catalog(SqliteState):
    """A batch catalog at ``path`` (created if missing)."""

    def __init__(self, path: str | Path):
        super().__init__(path, _SCHEMA)

    def setting(self, name: str) -> str | None:
        """A batch-wide setting recorded at the first run (e.g. the pseudonym key check)."""
        row = self.db.execute("SELECT value FROM settings WHERE name=?", (name,)).fetchone()
        return None if row is None else row[0]

    def set_setting(self, name: str, value: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (name, value))

    def record_index(self, patients: Iterable[dict], series: Iterable[dict],
                     unreadable: Iterable[tuple[str, str]]) -> None:
        """Upsert what the index found (patients with their studies, every series)."""
        with self._transaction() as db:
            for p in patients:
                db.execute("INSERT OR REPLACE INTO patients VALUES (?, ?)", (p["patient_key"], p["patient_id"]))
                for s in p["studies"]:
                    db.execute(
                        "INSERT OR REPLACE INTO studies VALUES (?, ?, ?, ?)",
                        (s["study_uid"], p["patient_key"], s["study_date"], ",".join(s["modalities"])),
                    )
            for s in series:
                db.execute(
                    "INSERT OR REPLACE INTO series VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (s["series_uid"], s["study_uid"], s["modality"], s["description"],
                     s["frame_of_reference_uid"], s["n_files"], s["tracer"]),
                )
            db.executemany("INSERT OR REPLACE INTO unreadable VALUES (?, ?)", list(unreadable))

    def plan_run(self, study_uid: str, patient_key: str, manifest: dict[str, Any], *, force: bool) -> None:
        """Add (or, with ``force`` or unless done, refresh) the run of a PET study."""
        row = self.db.execute("SELECT status FROM runs WHERE study_uid=?", (study_uid,)).fetchone()
        if row is not None and row[0] == "done" and not force:
            return
        values = (patient_key, manifest.get("pet"), manifest.get("ct"), manifest.get("mr"),
                  manifest.get("mr_days_apart"), json.dumps(manifest), study_uid)
        with self._transaction() as db:
            if row is None:
                db.execute(
                    "INSERT INTO runs (patient_key, pet_series_uid, ct_series_uid, mr_series_uid, mr_days_apart,"
                    " manifest, study_uid) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    values,
                )
            else:
                db.execute(
                    "UPDATE runs SET patient_key=?, pet_series_uid=?, ct_series_uid=?, mr_series_uid=?,"
                    " mr_days_apart=?, manifest=?, status='pending', reason=NULL, error=NULL WHERE study_uid=?",
                    values,
                )

    def record_skipped(self, study_uid: str, patient_key: str, reason: str | None, detail: str) -> None:
        """A study with nothing to run (e.g. no PET): status ``skipped``, with why."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO runs (study_uid, patient_key, manifest, status, reason, error)"
                " VALUES (?, ?, '{}', 'skipped', ?, ?)",
                (study_uid, patient_key, reason, detail),
            )

    def pending(self) -> list[RunRow]:
        """Runs still to do: pending, or left running by an interrupted batch."""
        rows = self.db.execute(
            "SELECT study_uid, manifest, status FROM runs WHERE status IN ('pending', 'running')"
            " AND manifest != '{}' ORDER BY study_uid"
        ).fetchall()
        return [RunRow(uid, json.loads(m), status) for uid, m, status in rows]

    def mark_running(self, study_uid: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET status='running', started=?, attempts=attempts+1 WHERE study_uid=?",
                (time.time(), study_uid),
            )

    def mark_finished(self, study_uid: str, *, ok: bool, duration_s: float, reason: str | None = None,
                      error: str | None = None, n_lesions: int | None = None, out_dir: str | None = None) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET status=?, finished=?, duration_s=?, reason=?, error=?, n_lesions=?, out_dir=?"
                " WHERE study_uid=?",
                ("done" if ok else "failed", time.time(), duration_s, reason, error, n_lesions, out_dir, study_uid),
            )

    def summary(self) -> dict[str, Any]:
        """Counts by status and failures by reason."""
        by_status = dict(self.db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())
        by_reason = dict(
            self.db.execute("SELECT reason, COUNT(*) FROM runs WHERE status='failed' GROUP BY reason").fetchall()
        )
        skipped = dict(
            self.db.execute("SELECT reason, COUNT(*) FROM runs WHERE status='skipped' GROUP BY reason").fetchall()
        )
        n_unreadable = self.db.execute("SELECT COUNT(*) FROM unreadable").fetchone()[0]
        return {"runs": by_status, "failures_by_reason": by_reason, "skipped_by_reason": skipped,
                "unreadable_files": n_unreadable}

    def runs(self) -> list[dict[str, Any]]:
        cursor = self.db.execute("SELECT * FROM runs ORDER BY study_uid")
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]
