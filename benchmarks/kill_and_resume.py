"""Kill a batch with SIGKILL at a random moment and resume it, N times in a row (default 20).

Builds a small archive of two phantom PET/CT studies, runs one uninterrupted
batch as the baseline, then for each round: starts a batch into a fresh
output folder, kills it after a random delay within the baseline's duration,
checks the catalog (SQLite integrity, every 'done' row a whole folder),
resumes it and compares the findings with the baseline's. Prints one line per
round and a summary; exits non-zero if any round differs.

    python -m benchmarks kill_and_resume -- [--rounds 20] [--seed 1]

tests/test_crash_safety.py runs the same procedure and checks, with fewer rounds.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import report
from localize.sample_data import LesionSpec, StudySpec, make_study

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


def build_small_archive(root: Path) -> tuple[Path, Path]:
    """Two patients' small PET/CT phantom studies (128 CT matrix, one nodal lesion each) under
    ``root/archive``, and a fast pipeline file; returns (archive, pipeline)."""
    for seed in (31, 32):
        built = root / f"phantom{seed}"
        make_study(built, StudySpec(seed=seed, extent="pelvis", ct_matrix=128, with_mr=False,
                                    lesions=(LesionSpec("obturator", 12, 8.0, "left"),)))
        shutil.copytree(built / "dicom", root / "archive" / f"patient{seed}")
    pipeline = root / "fast.yaml"
    pipeline.write_text("extends: psma-salvage-rt\nexports: [findings, csv, rtstruct]\n")
    return root / "archive", pipeline



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        archive, pipeline = build_small_archive(root)
        started = time.perf_counter()
        baseline = root / "baseline"
        subprocess.run(batch_command(archive, baseline, pipeline), check=True, capture_output=True)
        duration_s = time.perf_counter() - started
        check_consistent(baseline)
        expected = results(baseline)
        print(f"baseline: {len(expected)} studies, {sum(map(len, expected.values()))} lesions, {duration_s:.1f} s")
        passed = 0
        for n in range(1, args.rounds + 1):
            delay_s = rng.uniform(0.2, duration_s)
            out = root / f"round{n}"
            t0 = time.perf_counter()
            try:
                kill_and_resume(archive, out, pipeline, delay_s)
                same = results(out) == expected
            except AssertionError as exc:
                same = False
                print(f"  check failed: {exc}")
            passed += same
            print(f"round {n:2d}: killed after {delay_s:5.2f} s, "
                  f"resumed in {time.perf_counter() - t0 - delay_s:5.1f} s,"
                  f" {'same results' if same else 'DIFFERENT'}")
            shutil.rmtree(out, ignore_errors=True)
        print(f"{passed}/{args.rounds} rounds resumed to the baseline's results")
        report("batches killed and resumed to the baseline's results", passed, "rounds", target=args.rounds,
               higher_is_better=True)
        return 0 if passed == args.rounds else 1


if __name__ == "__main__":
    sys.exit(main())
