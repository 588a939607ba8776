"""A batch killed with SIGKILL at random moments resumes to the same results; the catalog stays consistent."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest

from benchmarks.kill_and_resume import batch_command, check_consistent, kill_and_resume, results

pytestmark = pytest.mark.slow


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
