"""Benchmark: ``localize convert`` (convert_folder) vs ``dcm2niix -z y`` on the same CT and PET.

Uses the CT (512x512x300) and PET-sized (200x200x250) series of bench_load.py,
each in its own folder, and times both converters (alternating, best of 3),
each writing gzip-compressed NIfTI plus a JSON sidecar. The PET-sized series is
written with Modality OT (it has no SUV tags), so it times the series path.
Where ../shared/testdata is present, the real whole-body PET of tcia-sts-001
(GE, 267 slices at 3.19-3.29 mm) is converted too, SUV included, and the two
NIfTI grids are compared (shape and affine, as nibabel reorients them).
Needs the Debian package dcm2niix. Run: python -m benchmarks convert
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from benchmarks.bench_load import CASES, write_case
from benchmarks.common import report
from localize.export.convert import convert_folder

REAL_PET = (Path(__file__).resolve().parents[2] / "shared" / "testdata" / "studies" / "tcia-sts-001" / "FDG_PET"
            / "image")


def run_dcm2niix(folder: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dcm2niix", "-z", "y", "-b", "y", "-o", str(out), str(folder)], check=True,
                   capture_output=True)


def compare(name: str, folder: Path, tmp: Path) -> None:
    """Best of 3 (alternating) of both converters on ``folder``; prints the times and the grids."""
    best = {"localize": float("inf"), "dcm2niix": float("inf")}
    written: dict[str, Path] = {}
    for run in range(3):
        for label in best:
            out = tmp / f"out-{label}-{name}-{run}"
            start = time.perf_counter()
            if label == "localize":
                results = convert_folder(folder, out)
                assert len(results) == 1 and results[0].error is None, results
            else:
                run_dcm2niix(folder, out)
            best[label] = min(best[label], time.perf_counter() - start)
            written[label] = next(out.glob("*.nii.gz"))
    ours, theirs = (nib.as_closest_canonical(nib.load(written[k])) for k in ("localize", "dcm2niix"))
    same = ours.shape == theirs.shape and np.allclose(ours.affine, theirs.affine, atol=0.1)
    print(f"{name}: localize convert {best['localize']:.2f} s, dcm2niix {best['dcm2niix']:.2f} s,"
          f" ratio {best['localize'] / best['dcm2niix']:.2f}; shapes {ours.shape} / {theirs.shape},"
          f" grids {'identical (0.1 mm)' if same else 'DIFFERENT'}")
    report(f"localize convert {name}", best["localize"], "s", baseline=best["dcm2niix"])


def main() -> None:
    if shutil.which("dcm2niix") is None:
        sys.exit("dcm2niix is not installed (Debian: apt-get install dcm2niix)")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (modality, size, count, step) in CASES.items():
            folder = Path(tmp) / "in" / modality
            write_case(folder, "CT" if modality == "CT" else "OT", size, count, step)
            compare(name, folder, Path(tmp))
        if REAL_PET.is_dir():
            compare("real PET tcia-sts-001 (SUV)", REAL_PET, Path(tmp))


if __name__ == "__main__":
    main()
