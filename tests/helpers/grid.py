"""A synthetic axial PET grid (LPS mm, 4 mm voxels) and boxes and lesions placed on it."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from localize.findings import Lesion

SPACING = 4.0
ORIGIN = (-160.0, -160.0, -120.0)
SIZE = (80, 80, 130)  # x, y, z voxels: x, y in [-160, 156], z in [-120, 396] mm


def grid() -> sitk.Image:
    """An empty float32 image on the grid."""
    image = sitk.Image(SIZE, sitk.sitkFloat32)
    image.SetSpacing((SPACING,) * 3)
    image.SetOrigin(ORIGIN)
    return image


def image_of(values: np.ndarray, spacing_mm: float, origin_lps_mm: tuple[float, float, float]) -> sitk.Image:
    """A float32 image of ``values`` (z, y, x) on an axial grid of isotropic ``spacing_mm`` voxels, voxel (0, 0, 0)
    at ``origin_lps_mm`` (LPS x, y, z mm)."""
    image = sitk.GetImageFromArray(np.asarray(values, np.float32))
    image.SetSpacing((spacing_mm,) * 3)
    image.SetOrigin(origin_lps_mm)
    return image


def coords():
    """LPS x, y, z of every voxel centre as z, y, x arrays (axial identity grid)."""
    z, y, x = np.meshgrid(*(np.arange(n) * SPACING + o for n, o in zip(SIZE[::-1], ORIGIN[::-1])), indexing="ij")
    return x, y, z


def box(lo, hi) -> np.ndarray:
    """Mask (z, y, x) of the voxels whose centres lie in the LPS box [lo, hi] (mm, inclusive)."""
    x, y, z = coords()
    return (x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1]) & (z >= lo[2]) & (z <= hi[2])


def lesion(x, y, z, suv_max=8.0, diameter=10.0) -> Lesion:
    """A lesion whose peak, centroid and target are all at LPS (x, y, z) mm."""
    p = (float(x), float(y), float(z))
    return Lesion(label=0, suv_max=suv_max, suv_peak=suv_max * 0.8, suv_mean=suv_max * 0.6, volume_ml=0.5,
                  total_uptake=0.3, max_diameter_mm=diameter, peak_lps_mm=p, centroid_lps_mm=p, target_lps_mm=p)
