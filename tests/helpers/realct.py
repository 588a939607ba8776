"""A PET simulated on a real CT by its reference labels, and what a label map says about the anatomy.

The uptake is placed by the reference labels, so a test measures the anatomy rules given a PET whose
organs have their real shapes (as a PET simulated on real CT has), not the labels' accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from localize.anatomy.ct_heuristics import axis_mm

# PSMA-like SUVs [REC: DCFPyL liver ~5, spleen ~6, kidney ~20, urine ~40, small bowel ~4, blood pool ~1.8,
# muscle ~0.8, bone ~1, other soft tissue ~0.5 (docs/detection.md#physiological-uptake-psma)]
PSMA_SUV = {"liver": 5.0, "spleen": 6.0, "kidney_left": 20.0, "kidney_right": 20.0, "urinary_bladder": 40.0,
            "small_bowel": 4.0, "duodenum": 5.0, "colon": 1.5, "stomach": 1.5, "pancreas": 2.0, "aorta": 1.8,
            "inferior_vena_cava": 1.8, "autochthon_left": 0.8, "autochthon_right": 0.8, "prostate": 2.5}
BONES = ("vertebrae", "rib", "sacrum", "hip", "femur")


def label_names(path: Path) -> dict[str, int]:
    """Class name -> label value from a ``{value: name}`` JSON file."""
    return {name: int(value) for value, name in json.loads(path.read_text()).items()}


def simulated_pet(ct: sitk.Image, reference: np.ndarray, names: dict[str, int], grid: sitk.Image,
                  uptake: dict[str, float] = PSMA_SUV, seed: int = 0,
                  lesions: tuple[tuple[np.ndarray, float, float], ...] = ()) -> sitk.Image:
    """SUV image on ``grid``: ``uptake`` by the labels ``reference`` (z, y, x on ``grid``), bone 1.0, other
    tissue 0.5, air 0, plus ``lesions`` (centre LPS mm, diameter mm, SUV added); blurred to 6 mm FWHM, with
    15 % correlated noise."""
    hu = sitk.GetArrayFromImage(sitk.Resample(ct, grid, sitk.Transform(), sitk.sitkLinear, -1000.0))
    suv = np.where(hu > -500, 0.5, 0.0)
    suv[np.isin(reference, [v for n, v in names.items() if n.startswith(BONES)])] = 1.0
    for name, value in uptake.items():
        if name in names:
            suv[reference == names[name]] = value
    z_mm, y_mm, x_mm = axis_mm(grid)
    for centre, diameter, added in lesions:
        inside = ((z_mm[:, None, None] - centre[2]) ** 2 + (y_mm[None, :, None] - centre[1]) ** 2
                  + (x_mm[None, None, :] - centre[0]) ** 2) <= (diameter / 2) ** 2
        suv[inside] += added
    spacing = np.array(grid.GetSpacing()[::-1])
    suv = ndimage.gaussian_filter(suv, 6.0 / 2.3548 / spacing)
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(suv.shape), 1.0) * 2.5
    pet = sitk.GetImageFromArray(np.maximum(suv * (1 + 0.15 * noise), 0).astype(np.float32))
    pet.CopyInformation(grid)
    return pet


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))
