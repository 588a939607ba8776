"""Per-lesion PET measurements on the native PET grid.

Arrays are numpy ``z, y, x`` views of a SimpleITK image; points are LPS mm.
SUVpeak follows IBSI (docs/metrics.md#suvpeak): the mean of all voxels whose centres lie
within r = (3 / (4 pi))^(1/3) cm ~ 6.2 mm of a centre voxel (a 1 cm3 sphere),
neighbourhood not restricted to the lesion, voxels outside the image not
counted; the global peak takes the highest such mean over centres inside the
lesion, the local peak the one centred on the hottest voxel.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError
from skimage.measure import marching_cubes

from localize.findings import Lesion

# IBSI 1 cm3 sphere radius: (3 / (4 pi))^(1/3) cm (IBSI "local intensity peak" VJGA; docs/metrics.md#suvpeak).
PEAK_RADIUS_MM = 10.0 * (3.0 / (4.0 * np.pi)) ** (1.0 / 3.0)


def spacing_zyx_mm(image: sitk.Image) -> np.ndarray:
    """Voxel spacing in mm in numpy (z, y, x) order."""
    return np.array(image.GetSpacing()[::-1], dtype=float)


def voxel_volume_ml(image: sitk.Image) -> float:
    """Volume of one voxel in ml (1 ml = 1000 mm3)."""
    return float(np.prod(image.GetSpacing())) / 1000.0


def zyx_to_lps(image: sitk.Image, zyx: np.ndarray) -> np.ndarray:
    """Continuous numpy indices (..., 3) in z, y, x order -> LPS mm points (..., 3)."""
    zyx = np.asarray(zyx, dtype=float)
    ijk = zyx[..., ::-1]  # x, y, z index order of SimpleITK
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    scaled = ijk * np.array(image.GetSpacing(), dtype=float)
    return np.asarray(image.GetOrigin(), dtype=float) + scaled @ direction.T


def lps_to_zyx(image: sitk.Image, lps_mm: np.ndarray) -> np.ndarray:
    """LPS mm points (..., 3) -> continuous numpy indices (..., 3) in z, y, x order."""
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    offset = np.asarray(lps_mm, dtype=float) - np.asarray(image.GetOrigin(), dtype=float)
    ijk = (offset @ direction) / np.array(image.GetSpacing(), dtype=float)
    return ijk[..., ::-1]


def ball(radius_mm: float, spacing_zyx: np.ndarray) -> np.ndarray:
    """Boolean z, y, x footprint of voxels whose centres lie within ``radius_mm`` of the centre voxel."""
    half = np.floor(radius_mm / np.asarray(spacing_zyx)).astype(int)
    grids = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    dist2 = sum((g * s) ** 2 for g, s in zip(grids, spacing_zyx))
    return dist2 <= radius_mm**2 + 1e-9


def ball_mask(centre: np.ndarray, shape: tuple[int, ...], radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    """Bool array of ``shape`` (z, y, x): voxels whose centres lie within ``radius_mm`` of index ``centre``."""
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    dist2 = sum(((g - c) * sp) ** 2 for g, c, sp in zip(grids, centre, spacing))
    return dist2 <= radius_mm**2


def crop_around(seed: np.ndarray, radius_mm: float, spacing: np.ndarray,
                shape: tuple[int, ...]) -> tuple[np.ndarray, tuple[slice, ...]]:
    """(first index z, y, x, slices) of the box around index ``seed`` reaching ``radius_mm`` (and a voxel) within
    ``shape``."""
    half = np.ceil(radius_mm / spacing).astype(int) + 1
    lo = np.maximum(seed - half, 0)
    hi = np.minimum(seed + half + 1, shape)
    return lo, tuple(slice(a, b) for a, b in zip(lo, hi))


def robust_mean_sd(values: np.ndarray) -> tuple[float, float]:
    """(median, 1.4826 x median absolute deviation): the mean and SD of the normal part of ``values``."""
    median = float(np.median(values))
    return median, 1.4826 * float(np.median(np.abs(values - median)))


def peak_means(suv: np.ndarray, spacing_zyx: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """IBSI 1 cm3 sphere means of ``suv`` centred on each voxel index row of ``centres`` (n, 3)."""
    kernel = ball(PEAK_RADIUS_MM, spacing_zyx)
    half = np.array(kernel.shape) // 2
    lo = np.maximum(centres.min(axis=0) - half, 0)
    hi = np.minimum(centres.max(axis=0) + half + 1, suv.shape)
    crop = tuple(slice(a, b) for a, b in zip(lo, hi))
    values = suv[crop].astype(np.float64)
    sums = ndimage.correlate(values, kernel.astype(np.float64), mode="constant", cval=0.0)
    # counts only voxels inside the image: the crop edge is the image edge or lies beyond the kernel reach
    counts = ndimage.correlate(np.ones(values.shape), kernel.astype(np.float64), mode="constant", cval=0.0)
    local = centres - lo
    idx = tuple(local.T)
    return sums[idx] / counts[idx]


def suv_peaks(suv: np.ndarray, mask: np.ndarray, spacing_zyx: np.ndarray) -> tuple[float, float]:
    """(global, local) IBSI SUVpeak of the lesion ``mask`` (z, y, x) in ``suv``."""
    centres = np.argwhere(mask)
    means = peak_means(suv, spacing_zyx, centres)
    values = suv[mask]
    hottest = values == values.max()  # IBSI: ties -> the highest of the tied local peaks
    return float(means.max()), float(means[hottest].max())


def max_diameter_mm(mask: np.ndarray, spacing_zyx: np.ndarray) -> float:
    """Largest distance (mm) between vertices of the marching-cubes surface of ``mask`` (IBSI maximum 3D diameter)."""
    lo = np.argwhere(mask).min(axis=0)
    hi = np.argwhere(mask).max(axis=0) + 1
    crop = np.pad(mask[tuple(slice(a, b) for a, b in zip(lo, hi))], 1).astype(np.float32)
    verts = marching_cubes(crop, 0.5, spacing=tuple(spacing_zyx))[0]
    try:
        verts = verts[ConvexHull(verts).vertices]
    except QhullError:  # flat or tiny: every vertex is on the hull
        pass
    diffs = verts[:, None, :] - verts[None, :, :]
    return float(np.sqrt((diffs**2).sum(-1)).max())


def measure_lesion(pet_suv: sitk.Image, suv: np.ndarray, mask: np.ndarray, label: int,
                   target_weights: np.ndarray | None = None) -> Lesion:
    """Measure one lesion: ``suv`` is the SUVbw array (z, y, x) of ``pet_suv``, ``mask`` its boolean lesion mask.

    The target is the uptake-weighted centre; ``target_weights`` (same shape) replaces the SUV as
    weight, e.g. the SUV with a neighbouring organ's spill-over removed, so urine does not pull it.
    """
    spacing = spacing_zyx_mm(pet_suv)
    coords = np.argwhere(mask)
    values = suv[mask].astype(np.float64)
    n = int(values.size)
    volume_ml = n * voxel_volume_ml(pet_suv)
    suv_mean = float(values.mean())
    peak_global, _ = suv_peaks(suv, mask, spacing)
    hottest = coords[int(np.argmax(values))]
    weights = np.clip(values if target_weights is None else target_weights[mask].astype(np.float64), 0.0, None)
    weighted = (coords * weights[:, None]).sum(0) / weights.sum() if weights.sum() > 0 else coords.mean(0)
    return Lesion(
        label=label,
        suv_max=float(values.max()),
        suv_peak=peak_global,
        suv_mean=suv_mean,
        volume_ml=volume_ml,
        total_uptake=suv_mean * volume_ml,
        max_diameter_mm=max_diameter_mm(mask, spacing),
        peak_lps_mm=_point(zyx_to_lps(pet_suv, hottest)),
        centroid_lps_mm=_point(zyx_to_lps(pet_suv, coords.mean(0))),
        target_lps_mm=_point(zyx_to_lps(pet_suv, weighted)),
        n_voxels=n,
    )


def _point(p: np.ndarray) -> tuple[float, float, float]:
    return (float(p[0]), float(p[1]), float(p[2]))
