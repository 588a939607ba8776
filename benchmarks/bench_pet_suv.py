"""Cost of SUV at load: ``load_pet`` against ``load_series`` on the same PET series.

Writes a synthetic 200 x 200 x N PET series (BQML, DecayCorrection NONE so every
slice has its own factor) to a temporary folder and times both loaders in this
process. Usage: ``python -m benchmarks pet_suv -- [--slices 300] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from benchmarks.common import report
from localize.load.pet import load_pet
from localize.load.volume import load_series
from localize.sample_data.dicom_writer import pet_series


def write_series(folder: Path, n_slices: int, size: int = 200) -> list[Path]:
    """A whole-body-sized single-frame PET series with per-slice slopes and times."""
    scan = datetime(2024, 1, 2, 10, 0, 0)
    rng = np.random.default_rng(0)
    info = Dataset()
    info.RadiopharmaceuticalStartDateTime = "20240102090000"
    info.RadionuclideTotalDose, info.RadionuclideHalfLife = 370e6, 6586.2

    def per_slice(k, ds):
        ds.AcquisitionTime = (scan + timedelta(minutes=2 * (k // 100))).strftime("%H%M%S")
        ds.RescaleSlope = 0.5 + 0.01 * k
        ds.RadiopharmaceuticalInformationSequence = Sequence([Dataset(info)])
        del ds.InstanceNumber

    pixels = np.stack([rng.integers(0, 30000, (size, size), dtype=np.uint16) for _ in range(n_slices)])
    return pet_series(folder, pixels, spacing=(4.0, 4.0, 3.0), origin=(-400.0, -400.0, 0.0),
                      orientation=[1, 0, 0, 0, 1, 0], per_slice=per_slice,
                      Manufacturer="SIEMENS", PatientWeight=80, PatientSize=1.75, PatientSex="M",
                      Units="BQML", DecayCorrection="NONE", CorrectedImage=["ATTN"],
                      SeriesDate="20240102", AcquisitionDate="20240102", SeriesTime="100000",
                      ActualFrameDuration=120000, FrameReferenceTime=60000, RescaleIntercept=0)


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_series(Path(tmp), args.slices)
        base_s = best_of(args.repeat, lambda: load_series(paths))
        pet_s = best_of(args.repeat, lambda: load_pet(paths))
    print(f"{args.slices} slices 200x200: load_series {base_s:.3f} s, load_pet {pet_s:.3f} s, "
          f"ratio {pet_s / base_s:.2f}")
    report(f"load_pet {args.slices} slices", pet_s, "s", baseline=base_s)


if __name__ == "__main__":
    main()
