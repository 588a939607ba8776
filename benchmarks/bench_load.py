"""Benchmark: localize.load.volume.load_series vs SimpleITK ImageSeriesReader, time and peak memory.

Writes a 512x512x300 CT and a 200x200x250 PET series with pydicom into a temp
folder, then times both readers on the same files in the same process
(alternating, best of 3) and measures each reader's peak resident memory in a
fresh subprocess, as a multiple of the float32 volume size.

Targets: time <= 1.3x ImageSeriesReader; peak memory <= 2x the float32 volume.
Run: python -m benchmarks load
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from benchmarks.common import report
from localize.load.volume import load_series
from localize.sample_data.dicom_writer import CT_STORAGE, PET_STORAGE, image_series

CASES = {"CT 512x512x300": ("CT", 512, 300, 0.8), "PET 200x200x250": ("PT", 200, 250, 4.0)}


def write_case(folder: Path, modality: str, size: int, count: int, step_mm: float) -> list[Path]:
    """A clean axial series with a different RescaleSlope per slice (as PET has)."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 3000, (size, size), dtype=np.int16)
    pixels = np.stack([np.roll(base, k, axis=0) for k in range(count)])
    names = [f"{rng.integers(1 << 40):x}.dcm" for _ in range(count)]  # names carry no order

    def per_slice(k, ds):
        ds.RescaleSlope = 1 if modality == "CT" else f"{0.5 + k / count:.6f}"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3", "1.2.3.4"
        for keyword in ("FrameOfReferenceUID", "InstanceNumber", "SliceThickness"):
            delattr(ds, keyword)

    return image_series(folder, pixels, modality=modality, spacing=(500 / size, 500 / size, step_mm),
                        origin=(-250.0, -250.0, 0.0), orientation=[1, 0, 0, 0, 1, 0], names=names,
                        per_slice=per_slice, SOPClassUID=CT_STORAGE if modality == "CT" else PET_STORAGE,
                        RescaleIntercept=-1024 if modality == "CT" else 0,
                        BitsStored=12 if modality == "CT" else 16, HighBit=11 if modality == "CT" else 15)


def simpleitk_read(paths: list[Path]) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(paths[0].parent)))
    reader.SetOutputPixelType(sitk.sitkFloat32)
    return reader.Execute()


def ours_read(paths: list[Path]) -> sitk.Image:
    return load_series(paths).image


_PEAK_SCRIPT = """
from pathlib import Path
from benchmarks.bench_load import simpleitk_read, ours_read

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
    script = _PEAK_SCRIPT.format(folder=str(folder), func=func)
    return int(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parents[1]).stdout)


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
            report(f"load_series {name} time", best["ours"], "s", target=1.3 * best["simpleitk"],
                   baseline=best["simpleitk"])
            report(f"load_series {name} peak memory", peaks["ours"] / volume_bytes, "x float32 volume", target=2.0,
                   baseline=peaks["simpleitk"] / volume_bytes)


if __name__ == "__main__":
    main()
