"""Benchmark: ``localize convert`` (convert_folder) vs ``dcm2niix -z y`` on the same CT and PET.

Uses the CT (512x512x300) and PET-sized (200x200x250) series of bench_load.py,
each in its own folder, and times both converters (alternating, best of 3),
each writing gzip-compressed NIfTI plus a JSON sidecar. The PET-sized series is
written with Modality OT (it has no SUV tags), so it times the series path.
Needs the Debian package dcm2niix. Run: python3 benchmarks/bench_convert.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).parent)]  # repo first
from bench_load import CASES, write_case  # noqa: E402

from localize.convert import convert_folder  # noqa: E402


def run_dcm2niix(folder: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dcm2niix", "-z", "y", "-b", "y", "-o", str(out), str(folder)], check=True,
                   capture_output=True)


def main() -> None:
    if shutil.which("dcm2niix") is None:
        sys.exit("dcm2niix is not installed (Debian: apt-get install dcm2niix)")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (modality, size, count, step) in CASES.items():
            folder = Path(tmp) / "in" / modality
            write_case(folder, "CT" if modality == "CT" else "OT", size, count, step)
            best = {"localize": float("inf"), "dcm2niix": float("inf")}
            for run in range(3):
                for label in best:
                    out = Path(tmp) / f"out-{label}-{modality}-{run}"
                    start = time.perf_counter()
                    if label == "localize":
                        results = convert_folder(folder, out)
                        assert len(results) == 1 and results[0].error is None, results
                    else:
                        run_dcm2niix(folder, out)
                    best[label] = min(best[label], time.perf_counter() - start)
            print(f"{name}: localize convert {best['localize']:.2f} s, dcm2niix {best['dcm2niix']:.2f} s,"
                  f" ratio {best['localize'] / best['dcm2niix']:.2f}")


if __name__ == "__main__":
    main()
