"""Image slices sampling a linear "physical field" (value = FIELD . P_lps), so any correct geometry,
and linear interpolation, reproduces the values exactly."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, MRImageStorage

from localize.sample_data.dicom_writer import AXIAL, one_slice

FIELD = np.array([3.0, 5.0, 7.0])  # value = FIELD . P_lps (per mm), a linear physical field


def image_dataset(
    pixels: np.ndarray,
    position: Sequence[float],
    *,
    orientation: Sequence[float] = AXIAL,
    spacing_rc: Sequence[float] = (0.8, 0.7),
    slope: float = 1.0,
    intercept: float = -1024.0,
    modality: str = "CT",
    series_uid: str = "1.2.3.4",
    **attributes,
) -> Dataset:
    """One single-frame image of patient P1 with stored values ``pixels`` (rows x columns, int16 or
    uint16); geometry and rescale written as decimal strings, as scanners do."""
    defaults = dict(
        SOPClassUID=CTImageStorage if modality == "CT" else MRImageStorage,
        PatientID="P1", PatientName="Test^Patient", StudyInstanceUID="1.2.3", SeriesInstanceUID=series_uid,
        FrameOfReferenceUID="1.2.3.9", SeriesNumber=1, SeriesDescription="test series",
        ImagePositionPatient=[f"{v:.6f}" for v in position],
        ImageOrientationPatient=[f"{v:.8f}" for v in orientation],
        PixelSpacing=[f"{v:.4f}" for v in spacing_rc], SliceThickness="2.0",
        RescaleSlope=f"{slope:.6g}", RescaleIntercept=f"{intercept:.6g}",
    )
    return one_slice(pixels, position, modality=modality, orientation=orientation, spacing_rc=spacing_rc,
                     **{**defaults, **attributes})


def field_slice(position, orientation, spacing_rc, shape, slope=0.1, intercept=0.0) -> np.ndarray:
    """Stored int16 values of one slice sampling the linear field FIELD . P at each pixel centre."""
    row, col = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    r, c = np.mgrid[0 : shape[0], 0 : shape[1]]
    points = np.asarray(position) + c[..., None] * spacing_rc[1] * row + r[..., None] * spacing_rc[0] * col
    return np.round((points @ FIELD - intercept) / slope).astype(np.int16)


def field_series(positions, orientation=AXIAL, spacing_rc=(0.8, 0.7), shape=(12, 10), **attrs) -> list[Dataset]:
    """One ``image_dataset`` per position, each sampling FIELD (slope 0.1), InstanceNumber 1, 2, ..."""
    return [
        image_dataset(field_slice(p, orientation, spacing_rc, shape), p, orientation=orientation,
                      spacing_rc=spacing_rc, slope=0.1, intercept=0.0, InstanceNumber=k + 1, **attrs)
        for k, p in enumerate(positions)
    ]
