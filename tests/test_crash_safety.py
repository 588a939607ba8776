"""A batch killed with SIGKILL at random moments resumes to the same results; the catalog stays consistent."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

KEY = "cohort-key-not-stored"


def batch_command(archive: Path, out: Path, pipeline: Path) -> list[str]:
    return [sys.executable, "-m", "localize", "batch", str(archive), "--out", str(out), "--quiet",
            "--workers", "2", "--pipeline", str(pipeline), "--deidentify", KEY]


def results(out: Path) -> dict[str, list]:
    """Study folder -> its lesions (ids, regions, SUVmax, targets), from each finished study's findings.json."""
    found = {}
    for findings in sorted((out / "studies").glob("*/findings.json")):
        doc = json.loads(findings.read_text())
        found[findings.parent.name] = [(l["id"], l["region"], round(l["suv_max"], 4),
                                        [round(v, 3) for v in l["target_lps_mm"]]) for l in doc["lesions"]]
    return found


def check_consistent(out: Path) -> None:
    """The catalog passes SQLite's integrity check; every 'done' row points at a whole output folder."""
    db = sqlite3.connect(out / "catalog.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for status, out_dir in db.execute("SELECT status, out_dir FROM runs"):
        assert status in ("pending", "running", "done", "failed", "skipped")
        if status == "done":
            folder = Path(out_dir)
            assert (folder / "findings.json").is_file() and (folder / "lesions.csv").is_file()
            json.loads((folder / "findings.json").read_text())  # whole, parseable
            assert not any(p.name.endswith(".part") for p in folder.iterdir())
    db.close()
    for folder in (out / "studies").glob("*"):  # a folder with a final name is always complete
        if not folder.name.startswith(".tmp-"):
            assert (folder / "findings.json").is_file(), folder


def kill_and_resume(archive: Path, out: Path, pipeline: Path, delay_s: float) -> None:
    """Start a batch, SIGKILL it after ``delay_s``, check the catalog, then resume it to the end."""
    child = subprocess.Popen(batch_command(archive, out, pipeline), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    time.sleep(delay_s)
    child.send_signal(signal.SIGKILL)
    child.wait()
    if (out / "catalog.sqlite").exists():
        check_consistent(out)
    time.sleep(0.3)  # its workers die with it (PR_SET_PDEATHSIG)
    resumed = subprocess.run(batch_command(archive, out, pipeline), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    check_consistent(out)


@pytest.fixture(scope="module")
def reference(small_archive, tmp_path_factory):
    archive, pipeline = small_archive
    out = tmp_path_factory.mktemp("reference")
    started = time.perf_counter()
    done = subprocess.run(batch_command(archive, out, pipeline), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return out, time.perf_counter() - started


def test_uninterrupted_batch_finds_the_lesions(reference):
    out, _ = reference
    found = results(out)
    assert len(found) == 2 and all(len(lesions) >= 1 for lesions in found.values()), found
    check_consistent(out)


def test_killed_batches_resume_to_the_same_results(small_archive, reference, tmp_path):
    archive, pipeline = small_archive
    ref_out, duration_s = reference
    rng = random.Random(9)
    for attempt in range(2):
        out = tmp_path / f"run{attempt}"
        kill_and_resume(archive, out, pipeline, rng.uniform(0.5, duration_s))
        assert results(out) == results(ref_out)
        cohort = (out / "cohort.csv").read_text().splitlines()
        assert sorted(cohort) == sorted((ref_out / "cohort.csv").read_text().splitlines())


def test_a_second_batch_is_refused_and_a_killed_ones_lock_does_not_block(small_archive, tmp_path):
    archive, pipeline = small_archive
    out = tmp_path / "out"
    first = subprocess.Popen(batch_command(archive, out, pipeline), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    lock = out / ".batch.lock"
    deadline = time.monotonic() + 30
    while not (lock.exists() and lock.read_text().strip() == str(first.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    second = subprocess.run(batch_command(archive, out, pipeline), capture_output=True, text=True, timeout=120)
    assert second.returncode == 2
    assert "another batch is already running on this output folder" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert lock.exists()  # the stale lock file stays, but the kernel released the lock with the process
    started = time.perf_counter()
    third = subprocess.run(batch_command(archive, out, pipeline), capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr[-2000:]
    assert time.perf_counter() - started < 120
    check_consistent(out)
