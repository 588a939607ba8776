"""Vertebral bodies along the spine from the CT alone: bony segments between the disc gaps.

The CT is resampled (linear) onto a fine axis-aligned grid around the midline
(``STEP_MM``), so the result does not depend on the PET voxel size: a lumbar
disc is 8-12 mm high, a thoracic one 4-6 mm [R: Gray's Anatomy, vertebral
column], too thin to survive 4 mm PET voxels. In each slice the vertebral body
is the most anterior bone of the midline strip behind the body's AP centre
(sternum and pubis lie in front of it), ``BODY_DEPTH_MM`` deep; its bone area
along z is the spine profile, whose dips below ``GAP_FRACTION`` of the local
maximum are the disc gaps. Points and levels are LPS mm; the grid's numpy
arrays are z, y, x.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

BONE_HU = 150.0  # cancellous vertebral bone is ~150-300 HU, an intervertebral disc ~80-100 HU [REC]
STEP_MM = 1.5  # spine grid spacing, every axis
STRIP_HALF_MM = 15.0  # half-width of the midline strip: inside a vertebral body (lumbar ~45 mm wide) [REC]
BODY_DEPTH_MM = 25.0  # from the anterior cortex backwards: inside the body, before the canal [REC]
GAP_FRACTION = 0.25  # a slice with less than this x the local maximum bone area is a disc gap [REC]
MIN_SEGMENT_MM = 9.0  # shorter bony runs are endplate fragments or noise, not a vertebral body [REC]
LOCAL_MM = 60.0  # window of the local maximum, about two vertebrae
DIP_SMOOTH_MM = 2.0  # Gaussian sigma of the profile along z before its dips are read [REC]
DIP_FRACTION = 0.75  # a dip below this x the bone area on both sides is an oblique disc [REC]
DIP_REACH_MM = 30.0  # the bone area beside a dip is read this far up and down, within a vertebra's height
MIN_VERTEBRA_MM = 18.0  # adult vertebral bodies (lower thoracic to lumbar) are 20-30 mm tall [R: Gray's Anatomy]
SMOOTH_MM = 2.0  # in-plane Gaussian sigma before the bone threshold (CT noise, not anatomy) [REC]


@dataclass(frozen=True)
class Spine:
    """The vertebral column on the spine grid: bone area of the vertebral body per slice (mm², bottom
    first), the slices' LPS z (mm), and its bony segments between disc gaps ((z bottom, z top) mm,
    lowest first)."""

    profile_mm2: np.ndarray
    z_mm: np.ndarray
    segments: list[tuple[float, float]]

    def split_tall(self, segments: list[tuple[float, float]], max_mm: float,
                   ratio: float) -> list[tuple[float, float]]:
        """``segments`` (bottom up) with each one too tall for one vertebral body (over ``max_mm``, or over
        ``ratio`` x the height of the segment below it: two bodies whose disc the profile did not show as a
        gap) split at the deepest dip of the smoothed profile leaving both parts at least ``MIN_VERTEBRA_MM``
        tall, again until every part fits or has no such dip."""
        out: list[tuple[float, float]] = []
        smooth = ndimage.gaussian_filter1d(self.profile_mm2, DIP_SMOOTH_MM / STEP_MM)
        pending = list(segments)
        while pending:
            z0, z1 = pending.pop(0)
            limit = min(max_mm, ratio * (out[-1][1] - out[-1][0])) if out else max_mm
            inner = (self.z_mm >= z0 + MIN_VERTEBRA_MM) & (self.z_mm <= z1 - MIN_VERTEBRA_MM)
            if z1 - z0 <= limit or not inner.any():
                out.append((z0, z1))
                continue
            k = int(np.flatnonzero(inner)[np.argmin(smooth[inner])])
            pending[:0] = [(z0, float(self.z_mm[k - 1])), (float(self.z_mm[k + 1]), z1)]
        return out


def find_spine(ct: sitk.Image, midline_x_mm: float, body_centre_y_mm: float) -> Spine:
    """The ``Spine`` of ``ct``: ``midline_x_mm`` is the patient's midline, ``body_centre_y_mm`` the AP
    centre of the body (LPS y): the vertebral bodies are searched behind ``body_centre_y_mm - 20`` mm."""
    profile, z_mm = spine_profile(ct, midline_x_mm, body_centre_y_mm)
    if profile.max() <= 0:
        return Spine(profile, z_mm, [])
    local = ndimage.maximum_filter1d(profile, size=int(round(LOCAL_MM / STEP_MM)) | 1)
    bony = profile > GAP_FRACTION * np.maximum(local, 1e-6)
    bony &= ~_oblique_discs(profile)
    labels, _ = ndimage.label(bony)
    segments = []
    for sl in ndimage.find_objects(labels):
        lo, hi = sl[0].start, sl[0].stop
        if (hi - lo) * STEP_MM >= MIN_SEGMENT_MM:
            segments.append((float(z_mm[lo]), float(z_mm[hi - 1])))
    return Spine(profile, z_mm, segments)


def _oblique_discs(profile: np.ndarray) -> np.ndarray:
    """Bool per spine-grid slice: a disc cut obliquely (lordosis tilts the lumbar discs out of the
    axial plane, so a slice through one still holds the endplates beside it): a local minimum of the
    smoothed bone-area profile below ``DIP_FRACTION`` x the maxima within ``DIP_REACH_MM`` on both
    sides, the deepest first, at least ``MIN_VERTEBRA_MM`` apart."""
    smooth = ndimage.gaussian_filter1d(profile, DIP_SMOOTH_MM / STEP_MM)
    reach = int(round(DIP_REACH_MM / STEP_MM))
    n = len(smooth)
    depth = np.full(n, np.inf)
    for k in range(1, n - 1):
        if smooth[k] <= smooth[k - 1] and smooth[k] <= smooth[k + 1] and smooth[k] > 0:
            sides = min(smooth[max(k - reach, 0):k].max(), smooth[k + 1:k + 1 + reach].max())
            if smooth[k] < DIP_FRACTION * sides:
                depth[k] = smooth[k] / sides
    gaps = np.zeros(n, bool)
    apart = int(round(MIN_VERTEBRA_MM / STEP_MM))
    for k in np.argsort(depth):
        if not np.isfinite(depth[k]):
            break
        if not gaps[max(k - apart, 0):k + apart + 1].any():
            gaps[k] = True
    return gaps


def spine_profile(ct: sitk.Image, midline_x_mm: float, body_centre_y_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(bone area mm² of the vertebral body per slice, slice z mm), bottom first, on the spine grid."""
    lo, hi = _bounds_lps(ct)
    y0 = body_centre_y_mm - 20.0
    origin = (midline_x_mm - STRIP_HALF_MM, y0, lo[2])
    size = [int(np.ceil((2 * STRIP_HALF_MM) / STEP_MM)) + 1, int(np.ceil((hi[1] - y0) / STEP_MM)) + 1,
            int(np.ceil((hi[2] - lo[2]) / STEP_MM)) + 1]
    ref = sitk.Image(size, sitk.sitkUInt8)
    ref.SetOrigin(origin)
    ref.SetSpacing((STEP_MM,) * 3)
    hu = sitk.GetArrayFromImage(sitk.Resample(ct, ref, sitk.Transform(), sitk.sitkLinear, -1000.0, sitk.sitkFloat32))
    # low-dose CT noise (30-45 HU per voxel) scatters disc voxels above and cancellous bone below BONE_HU:
    # averaged over a few millimetres in the axial plane, a body stays bone and a disc stays a gap
    hu = ndimage.gaussian_filter(hu, (0.0, SMOOTH_MM / STEP_MM, SMOOTH_MM / STEP_MM))
    bone = hu > BONE_HU
    rows = bone.any(2)  # z, y
    first = np.where(rows.any(1), rows.argmax(1), -1)
    depth = int(round(BODY_DEPTH_MM / STEP_MM))
    area = np.zeros(bone.shape[0])
    for k in np.flatnonzero(first >= 0):
        area[k] = bone[k, first[k] : first[k] + depth].sum() * STEP_MM**2
    z_mm = origin[2] + STEP_MM * np.arange(size[2])
    return area, z_mm


def _bounds_lps(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """LPS bounding box (min, max corners, mm) of the voxel centres of ``image``."""
    size = np.array(image.GetSize()) - 1
    corners = [image.TransformContinuousIndexToPhysicalPoint([float(c) for c in size * np.array(bits)])
               for bits in np.ndindex(2, 2, 2)]
    pts = np.array(corners)
    return pts.min(0), pts.max(0)
