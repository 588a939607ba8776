"""PET headers of the SUV tests: the worked example of docs/suv.md#definitions (370 MBq 18F, 60 min, 80 kg),
one header per slice, and helpers to change them and write them as DICOM files."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from localize.sample_data.dicom_writer import save, set_pixels

# The base case is the worked example of docs/suv.md#definitions: 370 MBq 18F, 60 min, 80 kg.
W_KG, H_M, D0_BQ = 80.0, 1.75, 370e6
T_F18, T_GA68, T_ZR89 = 6586.2, 4062.6, 282276.0  # s; 89Zr 78.41 h
INJECTION = datetime(2024, 1, 2, 9, 0, 0)
SCAN = datetime(2024, 1, 2, 10, 0, 0)
FRAME_S = 120.0
N_SLICES = 4
TARGET_SUV = [0.2, 1.0, 4.0, 1.0]  # the IBSI reference objects' SUVmin / median / max
F0 = W_KG * 1000.0 / (D0_BQ * 2.0 ** (-3600.0 / T_F18))  # ml/Bq... g/Bq; 3.158e-4


def tavg_s(duration_s: float, half_life_s: float) -> float:
    """Average-count time of a frame (docs/suv.md#average-count-time), written out here for the expectations."""
    lam = math.log(2) / half_life_s
    return math.log(lam * duration_s / (1 - math.exp(-lam * duration_s))) / lam


def da(t: datetime) -> str:
    return t.strftime("%Y%m%d")


def tm(t: datetime) -> str:
    return t.strftime("%H%M%S.%f")


def base_series() -> list[Dataset]:
    """A 4-slice Siemens-style BQML START series, one header per slice."""
    series_uid, study_uid, for_uid = generate_uid(), generate_uid(), generate_uid()
    out = []
    for k in range(N_SLICES):
        ds = Dataset()
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.128"
        ds.SOPInstanceUID = generate_uid()
        ds.Modality = "PT"
        ds.Manufacturer = "SIEMENS"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, for_uid
        ds.PatientWeight, ds.PatientSize, ds.PatientSex = W_KG, H_M, "M"
        ds.Units, ds.DecayCorrection = "BQML", "START"
        ds.CorrectedImage = ["NORM", "DTIM", "ATTN", "SCAT", "DECY", "RAN"]
        ds.SeriesDate, ds.SeriesTime = da(SCAN), tm(SCAN)
        ds.AcquisitionDate, ds.AcquisitionTime = da(SCAN), tm(SCAN)
        ds.ActualFrameDuration = int(FRAME_S * 1000)
        ds.FrameReferenceTime = round(tavg_s(FRAME_S, T_F18) * 1000, 3)
        ds.ImagePositionPatient = [0.0, 0.0, 4.0 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [4.0, 4.0]
        ds.SliceThickness = 4.0
        ds.RescaleSlope, ds.RescaleIntercept = 0.5 + k, 0
        info = Dataset()
        info.Radiopharmaceutical = "18F-DCFPyL"
        info.RadiopharmaceuticalStartTime = tm(INJECTION)
        info.RadiopharmaceuticalStartDateTime = INJECTION.strftime("%Y%m%d%H%M%S")
        info.RadionuclideTotalDose = D0_BQ
        info.RadionuclideHalfLife = T_F18
        ds.RadiopharmaceuticalInformationSequence = Sequence([info])
        out.append(ds)
    return out


def write_headers(
    datasets: list[Dataset], folder: Path, pixels: list[np.ndarray] | None = None, names: list[str] | None = None
) -> tuple[list[Dataset], list[Path]]:
    """Write real DICOM files (2x2 pixels of 100 unless given) and read their headers back."""
    paths = []
    for k, ds in enumerate(datasets):
        stored = np.full((2, 2), 100, np.uint16) if pixels is None else pixels[k].astype(np.uint16)
        ds = set_pixels(Dataset(ds), stored)
        paths.append(save(ds, folder / (names[k] if names else f"img{k:03d}.dcm")))
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    return headers, paths


def info_of(ds: Dataset) -> Dataset:
    return ds.RadiopharmaceuticalInformationSequence[0]


def set_all(series: list[Dataset], **values) -> None:
    for ds in series:
        for key, value in values.items():
            if value is None:
                delattr(ds, key) if key in ds else None
            else:
                setattr(ds, key, value)


def set_info(series: list[Dataset], **values) -> None:
    set_all([info_of(ds) for ds in series], **values)
