"""A PET simulated on a real CT by its reference labels (TotalSegmentator's classes), with lesions put in it.

The uptake is placed by the labels, so what is measured is the toolkit on real organ shapes, sizes and
positions (as a PET simulated on real CT has them), not the labels' accuracy. Arrays are numpy z, y, x on
the PET grid; points are LPS mm.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from localize.anatomy.ct_heuristics import axis_mm
from localize.sample_data.imaging import UPTAKE

# PSMA-like SUVs [REC: DCFPyL liver ~5, spleen ~6, kidney ~20, urine ~40, small bowel ~4, blood pool ~1.8,
# muscle ~0.8, bone ~1, other soft tissue ~0.5 (docs/detection.md#physiological-uptake-psma)]
PSMA_SUV = {"liver": 5.0, "spleen": 6.0, "kidney_left": 20.0, "kidney_right": 20.0, "urinary_bladder": 40.0,
            "small_bowel": 4.0, "duodenum": 5.0, "colon": 1.5, "stomach": 1.5, "pancreas": 2.0, "aorta": 1.8,
            "inferior_vena_cava": 1.8, "autochthon_left": 0.8, "autochthon_right": 0.8, "prostate": 2.5}
BONES = ("vertebrae", "rib", "sacrum", "hip", "femur")
# TotalSegmentator class (by name prefix) -> the phantom's uptake class (``localize.sample_data.imaging.UPTAKE``)
UPTAKE_CLASS = {"liver": "liver", "spleen": "spleen", "kidney_left": "kidney", "kidney_right": "kidney",
                "urinary_bladder": "urine", "small_bowel": "small_bowel", "colon": "colon", "duodenum": "duodenum",
                "stomach": "stomach", "pancreas": "pancreas", "prostate": "prostate", "gallbladder": "bile",
                "aorta": "blood", "inferior_vena_cava": "blood", "portal_vein": "blood", "iliac_artery": "blood",
                "iliac_vena": "blood", "heart": "blood", "autochthon": "muscle", "iliopsoas": "muscle",
                "gluteus": "muscle", "lung": "lung", "brain": "brain"}
FWHM_MM = 6.0
NOISE = 0.15  # relative amplitude of the correlated noise
FAT_HU = -30.0  # unlabelled tissue below this is fat, above it muscle and other soft tissue


def label_names(path: Path) -> dict[str, int]:
    """Class name -> label value from a ``{value: name}`` JSON file."""
    return {name: int(value) for value, name in json.loads(path.read_text()).items()}


def pet_grid(ct: sitk.Image, spacing_mm: tuple[float, float, float]) -> sitk.Image:
    """An axis-aligned (identity direction) PET grid of ``spacing_mm`` (x, y, z) over the CT's extent, as a
    scanner reconstructs."""
    size = np.array(ct.GetSize()) - 1
    corners = np.array([ct.TransformContinuousIndexToPhysicalPoint([float(c) for c in size * np.array(bits)])
                        for bits in np.ndindex(2, 2, 2)])
    lo, hi = corners.min(0), corners.max(0)
    grid = sitk.Image([int(n) for n in np.floor((hi - lo) / spacing_mm) + 1], sitk.sitkFloat32)
    grid.SetSpacing(spacing_mm)
    grid.SetOrigin([float(v) for v in lo])
    return grid


def label_point(reference: np.ndarray, value: int, grid: sitk.Image, z_mm: float | None = None) -> np.ndarray:
    """LPS mm centre of a label, or of its section in the slice nearest ``z_mm``."""
    z, y, x = axis_mm(grid)
    points = np.argwhere(reference == value)
    if z_mm is not None:
        points = points[points[:, 0] == np.argmin(np.abs(z - z_mm))]
    return np.array([x[points[:, 2]].mean(), y[points[:, 1]].mean(), z[points[:, 0]].mean()])


def vertebral_body_centre(reference: np.ndarray, value: int, grid: sitk.Image) -> np.ndarray:
    """LPS mm centre of a labelled vertebra's body: its voxels within 15 mm of its own centre in x and in
    the front 25 mm of those (the labels hold the arch and processes too)."""
    z, y, x = axis_mm(grid)
    points = np.argwhere(reference == value)
    xs = x[points[:, 2]]
    points = points[np.abs(xs - xs.mean()) <= 15.0]
    ys = y[points[:, 1]]
    points = points[ys <= ys.min() + 25.0]
    return np.array([x[points[:, 2]].mean(), y[points[:, 1]].mean(), z[points[:, 0]].mean()])


def recurrence_sites(reference: np.ndarray, names: dict[str, int], grid: sitk.Image) -> dict[str, np.ndarray]:
    """Truth site -> LPS mm centre of a lesion where recurrences are looked for: beside the left external
    iliac artery (14 mm left of it, 165 mm up the table), beside the aorta at L2 (20 mm left of and 8 mm behind
    its centre at 340 mm, in the fat there: no organ's label within 8 mm), in the prostate, in the body of L3.
    Fitted to tests/data/totalsegmentator-abdomen's table positions."""
    return {"external_iliac": label_point(reference, names["iliac_artery_left"], grid, 165.0) + [14.0, 0, 0],
            "retroperitoneal": label_point(reference, names["aorta"], grid, 340.0) + [20.0, 8.0, 0],
            "prostate": label_point(reference, names["prostate"], grid),
            "bone": vertebral_body_centre(reference, names["vertebrae_L3"], grid)}


def tracer_uptake(names: dict[str, int], tracer: str) -> tuple[dict[str, float], dict[str, float]]:
    """(SUV per label name, SUV of "bone", "fat" and "muscle" for what no such label holds) of ``tracer``'s
    biodistribution (the phantom's ``UPTAKE`` table: dcfpyl, psma11, psma1007, fluciclovine)."""
    table = UPTAKE[tracer]
    by_label = {name: table[cls] for name in names for prefix, cls in UPTAKE_CLASS.items()
                if name.startswith(prefix)}
    return by_label, {"bone": table["marrow"], "fat": table["fat"], "muscle": table["muscle"]}


def simulated_pet(ct: sitk.Image, reference: np.ndarray, names: dict[str, int], grid: sitk.Image,
                  uptake: dict[str, float] = PSMA_SUV, seed: int = 0,
                  lesions: tuple[tuple[np.ndarray, float, float], ...] = (),
                  rest: dict[str, float] | None = None) -> sitk.Image:
    """SUV image on ``grid``: ``uptake`` by the labels ``reference`` (z, y, x on ``grid``), the rest by ``rest``
    ("bone" for bone labels, "fat" below ``FAT_HU`` and "muscle" above; default 1.0, 0.5, 0.5), air 0, plus
    ``lesions`` (centre LPS mm, diameter mm, SUV added); blurred to ``FWHM_MM``, with ``NOISE`` correlated noise."""
    rest = rest or {"bone": 1.0, "fat": 0.5, "muscle": 0.5}
    hu = sitk.GetArrayFromImage(sitk.Resample(ct, grid, sitk.Transform(), sitk.sitkLinear, -1000.0))
    suv = np.where(hu > -500, np.where(hu < FAT_HU, rest["fat"], rest["muscle"]), 0.0)
    suv[np.isin(reference, [v for n, v in names.items() if n.startswith(BONES)])] = rest["bone"]
    for name, value in uptake.items():
        if name in names:
            suv[reference == names[name]] = value
    z_mm, y_mm, x_mm = axis_mm(grid)
    for centre, diameter, added in lesions:
        inside = ((z_mm[:, None, None] - centre[2]) ** 2 + (y_mm[None, :, None] - centre[1]) ** 2
                  + (x_mm[None, None, :] - centre[0]) ** 2) <= (diameter / 2) ** 2
        suv[inside] += added
    spacing = np.array(grid.GetSpacing()[::-1])
    suv = ndimage.gaussian_filter(suv, FWHM_MM / 2.3548 / spacing)
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(suv.shape), 1.0) * 2.5
    pet = sitk.GetImageFromArray(np.maximum(suv * (1 + NOISE * noise), 0).astype(np.float32))
    pet.CopyInformation(grid)
    return pet


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))
