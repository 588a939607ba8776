"""Vertebral bodies along the spine from the CT alone: bony segments between the disc gaps.

The CT is resampled (linear) onto a fine axis-aligned grid around the midline
(``STEP_MM``), so the result does not depend on the PET voxel size: a lumbar
disc is 8-12 mm high, a thoracic one 4-6 mm [R: Gray's Anatomy, vertebral
column], too thin to survive 4 mm PET voxels. In each slice the vertebral body
is the most anterior sizeable bone of the midline strip that holds cortex
(``body_per_slice``: the contrast-filled heart and aorta hold none), searched from
``BODY_AHEAD_MM`` in front of the body's AP centre backwards, with the holes of
its cortical ring filled (an osteoporotic core reads under ``BONE_HU``);
``BODY_DEPTH_MM`` of it from its front is counted. That bone area along z is
the spine profile, whose dips below ``GAP_FRACTION`` of the local maximum are
the disc gaps. Points and levels are LPS mm; the grid's numpy arrays are z, y, x.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from localize.anatomy.slices import IN_SLICE, fill_small_holes

BONE_HU = 150.0  # cancellous vertebral bone is ~150-300 HU, an intervertebral disc ~80-100 HU [REC]
# cortical bone reads over 1000 HU, several hundred HU at a few mm of blur; contrast-filled blood in the portal-venous
# phase 150-250 HU [REC]
CORTEX_HU = 300.0
BODY_SHARE = 1.0 / 3.0  # a vertebral body's section in the midline strip against its arch's [REC]
STEP_MM = 1.5  # spine grid spacing, every axis
STRIP_HALF_MM = 15.0  # half-width of the midline strip: inside a vertebral body (lumbar ~45 mm wide) [REC]
BODY_AHEAD_MM = 60.0  # a vertebral body's front can lie this far ahead of the body's AP centre (lordosis, thin build)
RING_HALF_MM = 40.0  # half-width searched for the cortical ring around the body: the whole body, lumbar ~45-50 mm wide
RING_HOLE_MM2 = 2500.0  # the cancellous core of a body (lumbar ~14 cm², cortex aside); the pelvic cavity is over 80 cm²
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

    def reach_down(self, z_mm: float, max_gap_mm: float) -> float:
        """The lowest z (mm) reached from ``z_mm`` downwards through slices with vertebral-body bone in the
        profile, across runs without any of at most ``max_gap_mm``."""
        k = int(np.searchsorted(self.z_mm, z_mm))
        bony = np.flatnonzero(self.profile_mm2[: k + 1] > 0)
        if bony.size == 0:
            return z_mm
        lowest = k
        for j in bony[::-1]:
            if (lowest - j) * STEP_MM > max_gap_mm:
                break
            lowest = j
        return float(min(self.z_mm[lowest], z_mm))

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
    centre of the body (LPS y): the vertebral bodies are searched behind ``body_centre_y_mm - BODY_AHEAD_MM``."""
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
    y0 = body_centre_y_mm - BODY_AHEAD_MM
    origin = (midline_x_mm - RING_HALF_MM, y0, lo[2])
    size = [int(np.ceil((2 * RING_HALF_MM) / STEP_MM)) + 1, int(np.ceil((hi[1] - y0) / STEP_MM)) + 1,
            int(np.ceil((hi[2] - lo[2]) / STEP_MM)) + 1]
    ref = sitk.Image(size, sitk.sitkUInt8)
    ref.SetOrigin(origin)
    ref.SetSpacing((STEP_MM,) * 3)
    hu = sitk.GetArrayFromImage(sitk.Resample(ct, ref, sitk.Transform(), sitk.sitkLinear, -1000.0, sitk.sitkFloat32))
    # low-dose CT noise (30-45 HU per voxel) scatters disc voxels above and cancellous bone below BONE_HU:
    # averaged over a few millimetres in the axial plane, a body stays bone and a disc stays a gap
    smooth = ndimage.gaussian_filter(hu, (0.0, SMOOTH_MM / STEP_MM, SMOOTH_MM / STEP_MM))
    # osteoporotic cancellous bone reads 50-120 HU, below BONE_HU, inside its cortical ring: the ring's
    # inside is bone too (a disc has no ring: its annulus is soft tissue)
    bone = fill_small_holes(smooth > BONE_HU, RING_HOLE_MM2 / STEP_MM**2)
    strip = np.abs(origin[0] + STEP_MM * np.arange(size[0]) - midline_x_mm) <= STRIP_HALF_MM
    bone = body_per_slice(bone & strip[None, None, :], hu, origin[1] + STEP_MM * np.arange(size[1]))
    rows = np.asarray(bone.any(2))  # z, y
    first = np.where(rows.any(1), rows.argmax(1), -1)
    depth = int(round(BODY_DEPTH_MM / STEP_MM))
    area = np.zeros(bone.shape[0])
    for k in np.flatnonzero(first >= 0):
        area[k] = bone[k, first[k] : first[k] + depth].sum() * STEP_MM**2
    z_mm = origin[2] + STEP_MM * np.arange(size[2])
    return area, z_mm


def body_per_slice(mask: np.ndarray, hu: np.ndarray, y_mm: np.ndarray) -> np.ndarray:
    """The vertebral body's part of ``mask`` (z, y, x) in each axial slice: of the connected parts that hold
    cortical bone (``CORTEX_HU`` on ``hu``, same grid) and reach ``BODY_SHARE`` of the largest such part's
    area, the most anterior (``y_mm``: LPS y of the rows). The contrast-filled heart and aorta in front of
    it hold no cortex; a calcified plaque is small; the arch and spinous process lie behind it."""
    labels, n = ndimage.label(mask, structure=IN_SLICE)
    if n == 0:
        return mask
    index = np.arange(1, n + 1)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    cortical = np.bincount(labels[hu > CORTEX_HU], minlength=n + 1)[1:] > 0
    centre_y = np.asarray(ndimage.mean(np.broadcast_to(y_mm[None, :, None], mask.shape), labels, index))
    slice_of = np.array([box[0].start for box in ndimage.find_objects(labels)])
    keep = np.zeros(n + 1, bool)
    for k in np.unique(slice_of[cortical]):
        here = np.flatnonzero((slice_of == k) & cortical)
        big = here[sizes[here] >= BODY_SHARE * sizes[here].max()]
        keep[big[np.argmin(centre_y[big])] + 1] = True
    return keep[labels]


def _bounds_lps(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """LPS bounding box (min, max corners, mm) of the voxel centres of ``image``."""
    size = np.array(image.GetSize()) - 1
    corners = [image.TransformContinuousIndexToPhysicalPoint([float(c) for c in size * np.array(bits)])
               for bits in np.ndindex(2, 2, 2)]
    pts = np.array(corners)
    return pts.min(0), pts.max(0)
