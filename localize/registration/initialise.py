"""Initial alignment of two images in unrelated frames of reference, from anatomy only.

Two frames of reference carry no spatial relation: an MR may sit a metre away
in its own coordinates.  Patient-based LPS axes still point the same way in
both (left, posterior, head), so the search is over the body's position along
the head-foot axis (a pelvic slab inside a whole-body CT), with the in-plane
position from body centroids and an optional rotation from principal moments;
each candidate is scored by normalised mutual information over the moving body.

Matrices are 4x4 homogeneous, LPS mm, mapping moving-frame points to fixed-frame points.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from localize.registration.masks import lps_to_index, mask_points_lps, principal_axes

_BINS = 32
_COARSE_STEP_MM = 10.0
_FINE_STEP_MM = 2.0
_MAX_MOMENT_ROTATION_DEG = 20.0


def rotation_angle_deg(matrix: np.ndarray) -> float:
    """Rotation angle (degrees) of the orthogonal part of a 3x3 (or 4x4) linear map."""
    u, _, vt = np.linalg.svd(np.asarray(matrix, float)[:3, :3])
    rotation = u @ vt
    return float(np.degrees(np.arccos(np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0))))


def rigid_matrix(rotation: np.ndarray, moving_centre: np.ndarray, fixed_centre: np.ndarray) -> np.ndarray:
    """4x4 moving->fixed matrix rotating about ``moving_centre`` and carrying it to ``fixed_centre``."""
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = fixed_centre - rotation @ moving_centre
    return matrix


class _NmiScorer:
    """Normalised mutual information between moving body voxels and the fixed image at mapped points."""

    def __init__(self, fixed: sitk.Image, moving: sitk.Image, moving_body: sitk.Image):
        self.fixed = fixed
        self.fixed_zyx = sitk.GetArrayFromImage(fixed)
        self.air = float(self.fixed_zyx.min())
        self.points = mask_points_lps(moving_body)
        moving_values = sitk.GetArrayViewFromImage(moving)[sitk.GetArrayViewFromImage(moving_body) > 0]
        self.moving_bins = _bin(moving_values, *np.percentile(moving_values, [0.5, 99.5]))
        self.fixed_range = np.percentile(self.fixed_zyx, [0.5, 99.5])

    def __call__(self, moving_to_fixed: np.ndarray) -> float:
        mapped = self.points @ moving_to_fixed[:3, :3].T + moving_to_fixed[:3, 3]
        ijk = lps_to_index(self.fixed, mapped)
        values = ndimage.map_coordinates(self.fixed_zyx, ijk[:, ::-1].T, order=1, cval=self.air)
        return _nmi(self.moving_bins, _bin(values, *self.fixed_range))


def _bin(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Histogram bin of each value over ``[low, high]`` (values outside go to the end bins)."""
    scaled = (np.asarray(values, float) - low) / max(float(high - low), 1e-6)
    return np.clip((scaled * _BINS).astype(int), 0, _BINS - 1)


def _nmi(a_bins: np.ndarray, b_bins: np.ndarray) -> float:
    joint = np.bincount(a_bins * _BINS + b_bins, minlength=_BINS * _BINS).astype(float)
    joint /= joint.sum()
    pa = joint.reshape(_BINS, _BINS).sum(axis=1)
    pb = joint.reshape(_BINS, _BINS).sum(axis=0)

    def entropy(p: np.ndarray) -> float:
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    return (entropy(pa) + entropy(pb)) / max(entropy(joint), 1e-12)


def _moment_rotation(fixed_points: np.ndarray, moving_points: np.ndarray) -> np.ndarray | None:
    """Rotation taking the moving body's principal axes onto the fixed body's, or None if ambiguous."""
    _, var_f, axes_f = principal_axes(fixed_points)
    _, var_m, axes_m = principal_axes(moving_points)
    for variances in (var_f, var_m):  # near-equal moments leave the axes undetermined
        if np.any(variances[:-1] < 1.15 * variances[1:]):
            return None
    signs = np.sign(np.sum(axes_f * axes_m, axis=0))
    rotation = (axes_f * signs) @ axes_m.T
    if np.linalg.det(rotation) < 0:
        return None
    if rotation_angle_deg(rotation) > _MAX_MOMENT_ROTATION_DEG:
        return None
    return rotation


def initial_alignment(
    fixed: sitk.Image, fixed_body: sitk.Image, moving: sitk.Image, moving_body: sitk.Image
) -> np.ndarray:
    """4x4 moving->fixed LPS matrix placing the moving body on the fixed anatomy.

    All inputs are coarse images (a few mm) with their body masks; the search covers
    every head-foot position where the moving body centre lies inside the fixed body.
    """
    fixed_points = mask_points_lps(fixed_body)
    moving_points = mask_points_lps(moving_body)
    order = np.argsort(fixed_points[:, 2])
    fixed_points = fixed_points[order]
    fixed_z = fixed_points[:, 2]
    cumulative = np.vstack([np.zeros(3), np.cumsum(fixed_points, axis=0)])
    moving_centre = moving_points.mean(axis=0)
    z_low, z_high = np.percentile(moving_points[:, 2], [1.0, 99.0])
    scorer = _NmiScorer(fixed, moving, moving_body)

    def candidate(dz: float) -> tuple[np.ndarray, np.ndarray] | None:
        lo, hi = np.searchsorted(fixed_z, [z_low + dz, z_high + dz])
        if hi - lo < 0.2 * len(moving_points):
            return None
        slab_centre = (cumulative[hi] - cumulative[lo]) / (hi - lo)
        fixed_centre = np.array([slab_centre[0], slab_centre[1], moving_centre[2] + dz])
        return fixed_centre, fixed_points[lo:hi]

    def best(shifts: np.ndarray) -> tuple[float, float]:
        scored = []
        for dz in shifts:
            found = candidate(dz)
            if found is not None:
                scored.append((scorer(rigid_matrix(np.eye(3), moving_centre, found[0])), dz))
        return max(scored) if scored else (-np.inf, 0.0)

    centre_shift = moving_centre[2]
    coarse = np.arange(fixed_z[0] - centre_shift, fixed_z[-1] - centre_shift + _COARSE_STEP_MM, _COARSE_STEP_MM)
    _, dz = best(coarse)
    _, dz = best(np.arange(dz - _COARSE_STEP_MM, dz + _COARSE_STEP_MM + 1e-6, _FINE_STEP_MM))
    found = candidate(dz)
    if found is None:
        return rigid_matrix(np.eye(3), moving_centre, np.average(fixed_points, axis=0))
    fixed_centre, slab = found
    matrices = [rigid_matrix(np.eye(3), moving_centre, fixed_centre)]
    rotation = _moment_rotation(slab, moving_points)
    if rotation is not None:
        matrices.append(rigid_matrix(rotation, moving_centre, fixed_centre))
    return max(matrices, key=scorer)
