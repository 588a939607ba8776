"""Write phantom images as DICOM series the way scanners do (pydicom).

Geometry in: origin (LPS mm, centre of the first voxel), direction (3x3, columns = the
array's x, y, z axes in LPS) and spacing (x, y, z mm); arrays are z, y, x.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
PET_STORAGE = "1.2.840.10008.5.1.4.1.1.128"
MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"

MANUFACTURER = {"siemens": ("SIEMENS", "Biograph Vision 600"), "ge": ("GE MEDICAL SYSTEMS", "Discovery MI"),
                "philips": ("Philips Medical Systems", "Vereos PET/CT")}


def uid(*parts) -> str:
    """A UID derived from ``parts`` only (deterministic)."""
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def dt(t: datetime) -> tuple[str, str]:
    """(DA, TM) strings of a datetime."""
    return t.strftime("%Y%m%d"), t.strftime("%H%M%S.%f")[:13]


@dataclass(frozen=True)
class Geometry:
    """Where an array z, y, x sits: origin (LPS mm), direction (3x3 columns x, y, z) and spacing (x, y, z mm)."""

    origin: np.ndarray
    direction: np.ndarray
    spacing: tuple[float, float, float]

    def feet_first(self, nx: int) -> Geometry:
        """The same voxels written with columns running to the patient's right (FFS scanners)."""
        d = self.direction.copy()
        origin = self.origin + d[:, 0] * self.spacing[0] * (nx - 1)
        d[:, 0] = -d[:, 0]
        return Geometry(origin, d, self.spacing)


def base_dataset(patient: dict, study: dict, series: dict) -> Dataset:
    """Attributes shared by every instance of one series."""
    ds = Dataset()
    for block in (patient, study, series):
        for key, value in block.items():
            setattr(ds, key, value)
    return ds


def _file_meta(sop_class: str, sop_instance: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def save(ds: Dataset, path: Path) -> None:
    """Write one instance as a DICOM file (preamble, meta, explicit VR little endian)."""
    ds.file_meta = _file_meta(ds.SOPClassUID, ds.SOPInstanceUID)
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)


def write_series(folder: Path, base: Dataset, pixels: np.ndarray, geom: Geometry, names: list[str],
                 per_slice=None, skip: set[int] = frozenset()) -> list[Path]:
    """Write ``pixels`` (z, y, x; uint16 or int16) as single-frame instances named ``names[k]``.

    ``per_slice(k, ds)`` may add slice-specific attributes; slice indices in ``skip`` are left out.
    """
    nz, ny, nx = pixels.shape
    d = geom.direction
    iop = [float(round(v, 6)) for v in (*d[:, 0], *d[:, 1])]
    signed = pixels.dtype == np.int16
    paths = []
    for k in range(nz):
        if k in skip:
            continue
        ds = Dataset()
        for elem in base:
            ds.add(elem)
        ds.SOPInstanceUID = uid(base.SeriesInstanceUID, k)
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [float(round(v, 4)) for v in geom.origin + d[:, 2] * geom.spacing[2] * k]
        ds.ImageOrientationPatient = iop
        ds.PixelSpacing = [float(geom.spacing[1]), float(geom.spacing[0])]
        ds.SliceThickness = float(geom.spacing[2])
        ds.Rows, ds.Columns = ny, nx
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1 if signed else 0
        if per_slice is not None:
            per_slice(k, ds)
        ds.PixelData = np.ascontiguousarray(pixels[k]).astype("<i2" if signed else "<u2").tobytes()
        path = folder / names[k]
        save(ds, path)
        paths.append(path)
    return paths


def pet_slice_scaling(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int16 stored values and per-slice RescaleSlope for non-negative float z, y, x data."""
    peak = values.reshape(values.shape[0], -1).max(axis=1)
    slopes = np.where(peak > 0, peak / 32767.0, 1.0)
    stored = np.rint(values / slopes[:, None, None]).astype(np.int16)
    return stored, slopes


def time_plus(t: datetime, s: float) -> datetime:
    return t + timedelta(seconds=float(s))
