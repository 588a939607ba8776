"""Kill a batch with SIGKILL at a random moment and resume it, N times in a row (default 20).

Builds a small archive of two phantom PET/CT studies, runs one uninterrupted
batch as the baseline, then for each round: starts a batch into a fresh
output folder, kills it after a random delay within the baseline's duration,
checks the catalog (SQLite integrity, every 'done' row a whole folder),
resumes it and compares the findings with the baseline's. Prints one line per
round and a summary; exits non-zero if any round differs.

    python benchmarks/kill_and_resume.py [--rounds 20] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import build_small_archive  # noqa: E402
from test_crash_safety import batch_command, check_consistent, kill_and_resume, results  # noqa: E402


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
            print(f"round {n:2d}: killed after {delay_s:5.2f} s, resumed in {time.perf_counter() - t0 - delay_s:5.1f} s,"
                  f" {'same results' if same else 'DIFFERENT'}")
            shutil.rmtree(out, ignore_errors=True)
        print(f"{passed}/{args.rounds} rounds resumed to the baseline's results")
        return 0 if passed == args.rounds else 1


if __name__ == "__main__":
    sys.exit(main())
