"""Body outlines and their geometry, the anatomy that initialises and checks registration.

Masks are ``sitk.sitkUInt8`` images (1 = body) on the grid they were computed on.
Numpy arrays taken from images here are ``z, y, x``; point arrays are LPS mm ``(N, 3)``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

Modality = Literal["CT", "PT", "MR"]

# Body outline thresholds (engineering choices, checked on the phantom studies).
# CT: air is -1000 HU, lung about -800 HU and fat about -100 HU, so -300 HU
# separates the body (lungs filled afterwards) from air.  PET: air carries no
# activity and soft tissue carries some tracer everywhere, so SUV 0.15 after
# smoothing keeps the body and rejects reconstruction noise in air.  MR intensities
# have no unit: a fraction of the bright end of the histogram (robust to the bias
# field) separates tissue from the air background.
CT_BODY_HU = -300.0
PET_BODY_SUV = 0.15
MR_BODY_FRACTION = 0.12
_SMOOTH_SIGMA_MM = 2.0


def downsample(image: sitk.Image, spacing_mm: float) -> sitk.Image:
    """``image`` as float32, block-averaged (integer factor per axis) to about ``spacing_mm``.

    Same direction and extent.
    """
    factors = [max(1, int(round(spacing_mm / s))) for s in image.GetSpacing()]
    factors = [min(f, n) for f, n in zip(factors, image.GetSize())]
    shrunk = sitk.BinShrink(image, factors) if max(factors) > 1 else image
    return sitk.Cast(shrunk, sitk.sitkFloat32)


def body_mask(image: sitk.Image, modality: Modality) -> sitk.Image:
    """The body outline of a CT (HU), PET (SUV) or MR image: largest component, holes filled per slice."""
    smoothed = sitk.SmoothingRecursiveGaussian(sitk.Cast(image, sitk.sitkFloat32), _SMOOTH_SIGMA_MM)
    values = sitk.GetArrayViewFromImage(smoothed)  # z, y, x
    if modality == "CT":
        threshold = CT_BODY_HU
    elif modality == "PT":
        threshold = PET_BODY_SUV
    elif modality == "MR":
        threshold = MR_BODY_FRACTION * float(np.percentile(values, 99.0))
    else:
        raise ValueError(f"unknown modality {modality!r}")
    inside = values > threshold
    inside = ndimage.binary_opening(inside, iterations=1)
    labels, n = ndimage.label(inside)
    if n == 0:
        body = np.zeros_like(inside)
    else:
        sizes = np.bincount(labels.ravel())[1:]
        body = labels == (1 + int(np.argmax(sizes)))
        body = np.stack([ndimage.binary_fill_holes(s) for s in body])  # per slice of this image
    mask = sitk.GetImageFromArray(body.astype(np.uint8))
    mask.CopyInformation(image)
    return mask


def mask_points_lps(mask: sitk.Image) -> np.ndarray:
    """LPS mm centres ``(N, 3)`` of the voxels set in ``mask``."""
    kji = np.argwhere(sitk.GetArrayViewFromImage(mask) > 0)  # z, y, x order
    return index_to_lps(mask, kji[:, ::-1].astype(float))


def index_to_lps(image: sitk.Image, ijk: np.ndarray) -> np.ndarray:
    """Continuous voxel indices ``(N, 3)`` in ``i, j, k`` order to LPS mm on ``image``'s grid."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    scaled = np.asarray(ijk, float) * np.array(image.GetSpacing())
    return np.array(image.GetOrigin()) + scaled @ direction.T


def lps_to_index(image: sitk.Image, points_lps: np.ndarray) -> np.ndarray:
    """LPS mm points ``(N, 3)`` to continuous ``i, j, k`` indices on ``image``'s grid."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    return ((np.asarray(points_lps, float) - np.array(image.GetOrigin())) @ direction) / np.array(image.GetSpacing())


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean arrays of one shape (0 when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return 2.0 * float(np.logical_and(a, b).sum()) / total if total else 0.0


def principal_axes(points_lps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centroid (LPS mm), variances (mm^2, largest first) and unit principal axes (columns) of a point cloud."""
    centroid = points_lps.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov((points_lps - centroid).T))
    order = np.argsort(eigenvalues)[::-1]
    return centroid, eigenvalues[order], eigenvectors[:, order]


# Intensity windows for the metric, so a few very bright voxels (urine in the
# bladder at SUV > 50 on PSMA PET, T2-bright urine) do not squeeze the tissue
# contrast into one histogram bin: PET is clipped at 4x the median body SUV
# (background tissue; lesions and bladder saturate), MR at its 99.5th percentile,
# CT to [-1000, 1500] HU (air to cortical bone).
def metric_window(image: sitk.Image, modality: Modality) -> sitk.Image:
    """``image`` as float32 with its intensities clipped to the range that carries anatomy."""
    values = sitk.GetArrayViewFromImage(image)
    if modality == "CT":
        low, high = -1000.0, 1500.0
    elif modality == "PT":
        body = values[values > PET_BODY_SUV]
        low, high = 0.0, 4.0 * float(np.median(body)) if body.size else float(values.max())
    else:
        low, high = 0.0, float(np.percentile(values, 99.5))
    return sitk.Clamp(sitk.Cast(image, sitk.sitkFloat32), sitk.sitkFloat32, low, max(high, low + 1e-3))
