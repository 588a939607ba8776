"""Benchmark: localize.load.volume.load_series vs SimpleITK ImageSeriesReader, time and peak memory.

Writes a 512x512x300 CT and a 200x200x250 PET series with pydicom into a temp
folder, then times both readers on the same files in the same process
(alternating, best of 3) and measures each reader's peak resident memory in a
fresh subprocess, as a multiple of the float32 volume size.

Targets: time <= 1.3x ImageSeriesReader; peak memory <= 2x the float32 volume.
Run: python3 benchmarks/bench_load.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, PositronEmissionTomographyImageStorage, generate_uid

from localize.load.volume import load_series

CASES = {"CT 512x512x300": ("CT", 512, 300, 0.8), "PET 200x200x250": ("PT", 200, 250, 4.0)}


def write_case(folder: Path, modality: str, size: int, count: int, step_mm: float) -> list[Path]:
    """A clean axial series with a different RescaleSlope per slice (as PET has)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    sop_class = CTImageStorage if modality == "CT" else PositronEmissionTomographyImageStorage
    base = rng.integers(0, 3000, (size, size), dtype=np.int16)
    paths = []
    for k in range(count):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = modality, "1.2.3.4", "1.2.3"
        ds.ImagePositionPatient = [-250.0, -250.0, k * step_mm]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [500 / size, 500 / size]
        ds.RescaleSlope = 1 if modality == "CT" else f"{0.5 + k / count:.6f}"
        ds.RescaleIntercept = -1024 if modality == "CT" else 0
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12 if modality == "CT" else 16, 11 if modality == "CT" else 15, 1
        ds.PixelData = np.roll(base, k, axis=0).tobytes()
        path = folder / f"{rng.integers(1 << 40):x}.dcm"  # names carry no order
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def simpleitk_read(paths: list[Path]) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(paths[0].parent)))
    reader.SetOutputPixelType(sitk.sitkFloat32)
    return reader.Execute()


def ours_read(paths: list[Path]) -> sitk.Image:
    return load_series(paths).image


_PEAK_SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, {here!r})
from bench_load import simpleitk_read, ours_read

def status(key):
    return next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith(key))

paths = sorted(Path({folder!r}).glob('*.dcm'))
open('/proc/self/clear_refs', 'w').write('5')  # reset the peak to the current RSS (Linux)
before = status('VmRSS:')
image = {func}(paths)
print(status('VmHWM:') - before)
"""


def peak_bytes(func: str, folder: Path) -> int:
    """Peak resident memory added by one read, in a fresh process (bytes)."""
    script = _PEAK_SCRIPT.format(here=str(Path(__file__).parent), folder=str(folder), func=func)
    return int(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, (modality, size, count, step) in CASES.items():
            paths = write_case(Path(tmp) / modality, modality, size, count, step)
            volume_bytes = size * size * count * 4
            best = {"ours": float("inf"), "simpleitk": float("inf")}
            for _ in range(3):  # alternate, best of 3
                for label, func in (("ours", ours_read), ("simpleitk", simpleitk_read)):
                    start = time.perf_counter()
                    func(paths)
                    best[label] = min(best[label], time.perf_counter() - start)
            a, b = ours_read(paths), simpleitk_read(paths)
            assert np.allclose(a.GetOrigin(), b.GetOrigin()) and np.allclose(a.GetSpacing(), b.GetSpacing())
            assert np.allclose(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b), rtol=1e-5)
            peaks = {label: peak_bytes(f"{label}_read" if label == "ours" else "simpleitk_read", paths[0].parent)
                     for label in best}
            print(f"{name}: load_series {best['ours']:.2f} s, ImageSeriesReader {best['simpleitk']:.2f} s,"
                  f" ratio {best['ours'] / best['simpleitk']:.2f} (target <= 1.3)")
            print(f"  peak memory / float32 volume ({volume_bytes / 2**20:.0f} MiB): load_series"
                  f" {peaks['ours'] / volume_bytes:.2f}, ImageSeriesReader {peaks['simpleitk'] / volume_bytes:.2f}"
                  " (target <= 2)")


if __name__ == "__main__":
    main()
