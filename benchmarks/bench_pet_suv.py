"""Cost of SUV at load: ``load_pet`` against ``load_series`` on the same PET series.

Writes a synthetic 200 x 200 x N PET series (BQML, DecayCorrection NONE so every
slice has its own factor) to a temporary folder and times both loaders in this
process. Usage: ``python benchmarks/bench_pet_suv.py [--slices 300] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from localize.load.pet import load_pet
from localize.load.volume import load_series


def write_series(folder: Path, n_slices: int, size: int = 200) -> list[Path]:
    """A whole-body-sized single-frame PET series with per-slice slopes and times."""
    series_uid, study_uid, for_uid = generate_uid(), generate_uid(), generate_uid()
    scan = datetime(2024, 1, 2, 10, 0, 0)
    rng = np.random.default_rng(0)
    paths = []
    for k in range(n_slices):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.128"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.Modality, ds.Manufacturer = "PT", "SIEMENS"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, for_uid
        ds.PatientWeight, ds.PatientSize, ds.PatientSex = 80, 1.75, "M"
        ds.Units, ds.DecayCorrection, ds.CorrectedImage = "BQML", "NONE", ["ATTN"]
        ds.SeriesDate = ds.AcquisitionDate = "20240102"
        ds.SeriesTime = "100000"
        ds.AcquisitionTime = (scan + timedelta(minutes=2 * (k // 100))).strftime("%H%M%S")
        ds.ActualFrameDuration, ds.FrameReferenceTime = 120000, 60000
        ds.ImagePositionPatient = [-400.0, -400.0, 3.0 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [4.0, 4.0], 3.0
        ds.RescaleSlope, ds.RescaleIntercept = 0.5 + 0.01 * k, 0
        info = Dataset()
        info.RadiopharmaceuticalStartDateTime = "20240102090000"
        info.RadionuclideTotalDose, info.RadionuclideHalfLife = 370e6, 6586.2
        ds.RadiopharmaceuticalInformationSequence = Sequence([info])
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = rng.integers(0, 30000, (size, size), dtype=np.uint16).tobytes()
        path = folder / f"{k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


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


if __name__ == "__main__":
    main()
