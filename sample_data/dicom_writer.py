"""Write phantom images as DICOM series the way scanners do (pydicom).

Geometry in: origin (LPS mm, centre of the first voxel), direction (3x3, columns = the
array's x, y, z axes in LPS) and spacing (x, y, z mm); arrays are z, y, x.

The same module is the one place the tests and benchmarks build DICOM files:

- ``one_slice(pixels, position, modality=..., orientation=..., spacing_rc=..., **attributes)``:
  one single-frame image instance (file meta included), not yet written;
- ``set_pixels(ds, pixels)``: the image pixel module from a rows x columns (or frames x rows
  x columns) int16 / uint16 array;
- ``save(ds, path)`` / ``save_series(folder, datasets, names)``: write instances as DICOM files
  (preamble and file meta; a transfer syntax already chosen in ``ds.file_meta`` is kept);
- ``image_series(folder, pixels_zyx, modality=..., spacing=..., origin=..., orientation=...,
  per_slice=..., **attributes)`` and its shorthands ``ct_series``, ``pet_series``, ``mr_series``:
  a whole single-frame series in one call.

Attributes passed as keywords are set last, so they override any default.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import DSfloat

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
PET_STORAGE = "1.2.840.10008.5.1.4.1.1.128"
MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
STORAGE = {"CT": CT_STORAGE, "PT": PET_STORAGE, "MR": MR_STORAGE}
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # ImageOrientationPatient of an axial slice

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


def _file_meta(sop_class: str, sop_instance: str, transfer_syntax: str = ExplicitVRLittleEndian) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = transfer_syntax
    return meta


def save(ds: Dataset, path: Path) -> Path:
    """Write one instance as a DICOM file (preamble and file meta); returns ``path``.

    The file meta is rebuilt from the dataset's SOP class and instance UIDs; its transfer
    syntax is the one already in ``ds.file_meta`` if any, else explicit VR little endian.
    """
    meta = getattr(ds, "file_meta", None)
    syntax = getattr(meta, "TransferSyntaxUID", None) or ExplicitVRLittleEndian
    ds.file_meta = _file_meta(ds.SOPClassUID, ds.SOPInstanceUID, syntax)
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def save_series(folder: Path, datasets: Sequence[Dataset], names: Sequence[str] | None = None) -> list[Path]:
    """``save`` each dataset into ``folder`` as ``names[k]`` (default ``im0000.dcm``, ``im0001.dcm`` ...)."""
    return [save(ds, folder / (names[k] if names else f"im{k:04d}.dcm")) for k, ds in enumerate(datasets)]


def set_pixels(ds: Dataset, pixels: np.ndarray) -> Dataset:
    """Set the image pixel module of ``ds`` from stored values: rows x columns, or frames x rows x
    columns (NumberOfFrames is then left to the caller); int16 is written signed, anything else
    as uint16."""
    signed = pixels.dtype == np.int16
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = np.ascontiguousarray(pixels).astype("<i2" if signed else "<u2").tobytes()
    return ds


def one_slice(pixels: np.ndarray | None = None, position: Sequence[float] = (0.0, 0.0, 0.0), *,
              modality: str = "CT", orientation: Sequence[float] = AXIAL,
              spacing_rc: Sequence[float] = (1.0, 1.0), **attributes) -> Dataset:
    """One single-frame image instance, with file meta, ready for ``save``.

    ``pixels`` are the stored values (rows x columns, int16 or uint16; default 4 x 4 zeros),
    ``position`` the ImagePositionPatient (LPS mm), ``orientation`` the ImageOrientationPatient,
    ``spacing_rc`` the PixelSpacing (row, column mm). The SOP class follows ``modality``
    (CT, PT, MR) and the SOPInstanceUID is new. Study, series and frame-of-reference UIDs,
    patient and timing attributes are the caller's, through ``attributes``, which are set last.
    """
    ds = Dataset()
    ds.SOPClassUID = STORAGE.get(modality, CT_STORAGE)
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = modality
    ds.ImagePositionPatient = decimal_strings(position)
    ds.ImageOrientationPatient = decimal_strings(orientation)
    ds.PixelSpacing = decimal_strings(spacing_rc)
    set_pixels(ds, np.zeros((4, 4), np.uint16) if pixels is None else pixels)
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.file_meta = _file_meta(ds.SOPClassUID, ds.SOPInstanceUID)
    return ds


def image_series(folder: Path, pixels_zyx: np.ndarray, *, modality: str = "CT",
                 spacing: Sequence[float] = (1.0, 1.0, 1.0), origin: Sequence[float] = (0.0, 0.0, 0.0),
                 orientation: Sequence[float] = AXIAL, names: Sequence[str] | None = None,
                 per_slice: Callable[[int, Dataset], None] | None = None, **attributes) -> list[Path]:
    """Write ``pixels_zyx`` (int16 or uint16) as one single-frame series; returns the paths in k order.

    Slice k sits at ``origin + k * spacing[2] * (row x column direction)``; ``spacing`` is
    (x, y, z) mm, so PixelSpacing is (spacing[1], spacing[0]) and SliceThickness spacing[2].
    Study, series and frame-of-reference UIDs are new unless given in ``attributes``, which
    every slice gets; ``per_slice(k, ds)`` may then change slice k. Files are ``names[k]``
    (default ``0000.dcm``, ``0001.dcm`` ...).
    """
    row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    normal = np.cross(row, col)
    uids = {key: generate_uid() for key in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID")}
    paths = []
    for k in range(pixels_zyx.shape[0]):
        ds = one_slice(pixels_zyx[k], np.asarray(origin, float) + k * float(spacing[2]) * normal, modality=modality,
                       orientation=orientation, spacing_rc=(spacing[1], spacing[0]),
                       **{**uids, "InstanceNumber": k + 1, "SliceThickness": decimal_strings([spacing[2]])[0],
                          **attributes})
        if per_slice is not None:
            per_slice(k, ds)
        paths.append(save(ds, folder / (names[k] if names else f"{k:04d}.dcm")))
    return paths


def ct_series(folder: Path, pixels_zyx: np.ndarray, **options) -> list[Path]:
    """``image_series`` of a CT (RescaleIntercept -1024 unless given)."""
    return image_series(folder, pixels_zyx, **{"RescaleSlope": 1, "RescaleIntercept": -1024, **options,
                                               "modality": "CT"})


def pet_series(folder: Path, pixels_zyx: np.ndarray, **options) -> list[Path]:
    """``image_series`` of a PET; SUV headers (Units, RadiopharmaceuticalInformationSequence ...) are the caller's."""
    return image_series(folder, pixels_zyx, **{"RescaleSlope": 1, "RescaleIntercept": 0, **options, "modality": "PT"})


def mr_series(folder: Path, pixels_zyx: np.ndarray, **options) -> list[Path]:
    """``image_series`` of an MR."""
    return image_series(folder, pixels_zyx, **{**options, "modality": "MR"})


def decimal_strings(values: Sequence[float]) -> list[DSfloat]:
    """``values`` as decimal strings (DS: at most 16 characters, PS3.5 6.2), each the nearest that fits (pydicom's
    ``format_number_as_ds``)."""
    return [DSfloat(float(v), auto_format=True) for v in values]


def write_series(folder: Path, base: Dataset, pixels: np.ndarray, geom: Geometry, names: list[str],
                 per_slice=None, skip: set[int] = frozenset()) -> list[Path]:
    """Write ``pixels`` (z, y, x; uint16 or int16) as single-frame instances named ``names[k]``.

    ``per_slice(k, ds)`` may add slice-specific attributes; slice indices in ``skip`` are left out.
    """
    nz = pixels.shape[0]
    d = geom.direction
    iop = decimal_strings([round(v, 6) for v in (*d[:, 0], *d[:, 1])])
    paths = []
    for k in range(nz):
        if k in skip:
            continue
        ds = Dataset()
        for elem in base:
            ds.add(elem)
        ds.SOPInstanceUID = uid(base.SeriesInstanceUID, k)
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = decimal_strings([round(v, 4) for v in geom.origin + d[:, 2] * geom.spacing[2] * k])
        ds.ImageOrientationPatient = iop
        ds.PixelSpacing = decimal_strings([geom.spacing[1], geom.spacing[0]])
        ds.SliceThickness = decimal_strings([geom.spacing[2]])[0]
        if per_slice is not None:
            per_slice(k, ds)
        set_pixels(ds, pixels[k])
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
