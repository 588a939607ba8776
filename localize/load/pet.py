"""A PET series as a body-weight SUV image: the series loader plus the SUV calibration.

SUV is computed once, here, at load (docs/suv.md): each slice of the float32
volume (already rescaled per slice) is multiplied by its own SUVbw factor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from localize.errors import SuvError
from localize.load.suv import SuvCalibration, suv_calibration
from localize.load.volume import Volume, load_series


@dataclass
class PetImage:
    """SUVbw image (float32, LPS mm, numpy view z, y, x), its source volume and SUV provenance."""

    image: sitk.Image
    volume: Volume
    calibration: SuvCalibration


def load_pet(files: Sequence[Path], *, strict: bool = False) -> PetImage:
    """Load the files of one PET series (any order) as an SUVbw image.

    Raises ``SuvError`` when SUV cannot be computed, and the loader's
    ``DicomReadError`` / ``SeriesError`` when the files are not one readable series.
    """
    volume = load_series(files, strict=strict)
    first = volume.paths[0]
    modality = str(volume.headers[0].get("Modality", "") or "")
    if modality != "PT":
        raise SuvError(f"Modality is {modality or 'missing'}, not PT", first)
    if volume.frame_numbers is not None:
        raise SuvError("multi-frame (Enhanced) PET: SUV is computed for single-frame PET only", first)
    calibration = suv_calibration(volume.headers, volume.paths)
    factors = np.array([calibration.factors[uid] for uid in volume.sop_instance_uids], dtype=np.float64)
    depth = volume.image.GetSize()[2]
    if depth != len(factors):
        factors = _factors_on_grid(volume, factors, calibration)
    suv = sitk.GetArrayViewFromImage(volume.image) * factors.astype(np.float32)[:, None, None]  # z, y, x
    image = sitk.GetImageFromArray(suv, isVector=False)
    image.CopyInformation(volume.image)
    return PetImage(image=image, volume=volume, calibration=calibration)


def _factors_on_grid(volume: Volume, factors: np.ndarray, calibration: SuvCalibration) -> np.ndarray:
    """Per-slice factors on a resampled grid: linear along the slice normal (z order)."""
    if np.all(factors == factors[0]):
        return np.full(volume.image.GetSize()[2], factors[0])
    normal = np.array(volume.image.GetDirection()).reshape(3, 3)[:, 2]
    source_mm = (volume.positions_lps_mm - volume.positions_lps_mm[0]) @ normal
    grid_mm = np.arange(volume.image.GetSize()[2]) * volume.image.GetSpacing()[2]
    calibration.warnings.append("slice grid was resampled: SUV factors interpolated along the slice normal")
    return np.interp(grid_mm, source_mm, factors)
