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

An osteoporotic body defeats that profile: its cancellous core (110 HU or less at L1
is over 90 % specific for osteoporosis [R: Pickhardt et al., Ann Intern Med
2013;158:588]) reads as low as a disc, and its thin cortical ring does not close at
a few mm of blur, so the core becomes a gap and the sclerotic endplates round each
disc the bone. The discs are then read as what they are, narrow dark bands between
endplates (``disc_valleys``): along z, in three AP bands of the body (a disc tilts
with the lordosis), the 90th percentile of HU in the midline strip dips under
``1 - DISC_DEPTH`` of its grey closing over ``DISC_MAX_MM`` (an endplate either side
within a disc's height); a core is taller, so the closing rarely bridges it. Of the
dips, the chain kept has the most depth and the most even pitch
(``Spine.between_discs``): a core's dip lies half a pitch off.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
DISC_MAX_MM = 15.0  # a lumbar disc is 8-12 mm high [R: Gray's Anatomy], blurred by a few mm of slice
DISC_MIN_HU = 0.0  # a disc is fibrocartilage, ~80-100 HU [REC]; fat reads -100
DISC_DEPTH = 0.4  # a disc's HU dips under (1 - DISC_DEPTH) x the endplates' either side [REC]
DISC_BANDS_MM = ((0.0, 8.0), (8.0, 16.0), (16.0, 25.0))  # AP bands from the body's front, within BODY_DEPTH_MM
DISC_BANDS_MIN = 2  # a disc dips in at least this many bands (a core's thin ring leaves one band dark at most) [REC]
DISC_TILT_MM = 1.5  # a band's dip counts within this along z of the others' (the disc's tilt across a band)
ENDPLATE_SHARE = 0.7  # slices whose body area reaches this x the local maximum show the whole body (endplates)
FRONT_REACH_MM = 40.0  # the body's front is the frontmost of those within half this along z (about a vertebra)
# the lumbosacral disc tilts 30-40 degrees, its front and back ~10 mm apart along z: the sacrum's top read on
# the bone profile lies within this of its centre, the L4/L5 disc a body's height (20 mm or more) above
LUMBOSACRAL_MM = 12.0
PITCH_EVENNESS = 1.5  # weight of |log| of the ratio of neighbouring pitches against a dip's depth [REC]


@dataclass(frozen=True)
class Spine:
    """The vertebral column on the spine grid: bone area of the vertebral body per slice (mm², bottom
    first), the slices' LPS z (mm), its bony segments between disc gaps ((z bottom, z top) mm,
    lowest first) and the dark bands that may be discs ((z bottom, z top mm, depth), lowest first;
    ``disc_valleys``)."""

    profile_mm2: np.ndarray
    z_mm: np.ndarray
    segments: list[tuple[float, float]]
    discs: list[tuple[float, float, float]] = field(default_factory=list)

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

    def between_discs(self, sacrum_top_mm: float) -> list[tuple[float, float] | None]:
        """The vertebral bodies between the discs upwards from the sacrum ((z bottom, z top) mm, bottom up; L5 None
        when no lumbosacral disc is seen). The chain of dark bands starts at the lumbosacral disc, the band within
        ``LUMBOSACRAL_MM`` of ``sacrum_top_mm`` nearest it, else at the first band above that (L4/L5); of the
        bands above, it takes those at least ``MIN_VERTEBRA_MM`` apart with the greatest depth less
        ``PITCH_EVENNESS`` x the |log| of each ratio of neighbouring pitches."""
        centre = [(lo + hi) / 2 for lo, hi, _ in self.discs]
        near = [j for j, c in enumerate(centre) if abs(c - sacrum_top_mm) <= LUMBOSACRAL_MM]
        above = [j for j, c in enumerate(centre) if c > sacrum_top_mm + LUMBOSACRAL_MM]
        if near:
            start = min(near, key=lambda j: abs(centre[j] - sacrum_top_mm))
        elif above:
            start = above[0]
        else:
            return []
        # best[(i, j)]: (score, chain) of the best chain from ``start`` ending with bands i then j
        best: dict[tuple[int, int], tuple[float, list[int]]] = {}
        for j in range(start + 1, len(centre)):
            if centre[j] - centre[start] >= MIN_VERTEBRA_MM:
                best[(start, j)] = (self.discs[start][2] + self.discs[j][2], [start, j])
            for (h, i), (score, chain) in list(best.items()):
                if i < j and centre[j] - centre[i] >= MIN_VERTEBRA_MM:
                    ratio = (centre[j] - centre[i]) / (centre[i] - centre[h])
                    extended = score + self.discs[j][2] - PITCH_EVENNESS * abs(float(np.log(ratio)))
                    if extended > best.get((i, j), (-np.inf, []))[0]:
                        best[(i, j)] = (extended, chain + [j])
        chain = max(best.values(), key=lambda pair: pair[0])[1] if best else [start]
        bodies: list[tuple[float, float] | None] = [] if near else [None]
        return bodies + [(self.discs[i][1], self.discs[j][0]) for i, j in zip(chain, chain[1:])]


def find_spine(ct: sitk.Image, midline_x_mm: float, body_centre_y_mm: float) -> Spine:
    """The ``Spine`` of ``ct``: ``midline_x_mm`` is the patient's midline, ``body_centre_y_mm`` the AP
    centre of the body (LPS y): the vertebral bodies are searched behind ``body_centre_y_mm - BODY_AHEAD_MM``."""
    hu, body, strip, z_mm = _column(ct, midline_x_mm, body_centre_y_mm)
    profile, first = _body_area(body)
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
    return Spine(profile, z_mm, segments, disc_valleys(hu, strip, profile, first, z_mm))


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


def _column(ct: sitk.Image, midline_x_mm: float, body_centre_y_mm: float
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(HU, vertebral-body bone per slice, midline strip per x column, slice z mm) on the spine grid
    (z, y, x; y from ``BODY_AHEAD_MM`` in front of ``body_centre_y_mm`` backwards)."""
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
    body = body_per_slice(bone & strip[None, None, :], hu, origin[1] + STEP_MM * np.arange(size[1]))
    return hu, body, strip, origin[2] + STEP_MM * np.arange(size[2])


def _body_area(body: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bone area mm² of ``body`` in the ``BODY_DEPTH_MM`` behind its front, the front's row or -1) per slice."""
    rows = np.asarray(body.any(2))  # z, y
    first = np.where(rows.any(1), rows.argmax(1), -1)
    depth = int(round(BODY_DEPTH_MM / STEP_MM))
    area = np.zeros(body.shape[0])
    for k in np.flatnonzero(first >= 0):
        area[k] = body[k, first[k] : first[k] + depth].sum() * STEP_MM**2
    return area, first


def disc_valleys(hu: np.ndarray, strip: np.ndarray, area: np.ndarray, first: np.ndarray,
                 z_mm: np.ndarray) -> list[tuple[float, float, float]]:
    """The dark bands between endplates that may be discs ((z bottom, z top) LPS mm, mean depth), bottom up.
    ``hu``: the spine grid (z, y, x), ``strip`` its midline columns, ``area`` and ``first`` the body's bone
    area and front row per slice (``_body_area``). The body's front is read where a slice shows it whole."""
    reach = int(round(FRONT_REACH_MM / STEP_MM)) | 1
    whole = np.where((area > 0) & (area >= ENDPLATE_SHARE * ndimage.maximum_filter1d(area, reach)), first, np.inf)
    front = ndimage.minimum_filter1d(whole, reach, mode="nearest")
    known = np.flatnonzero(np.isfinite(front))
    if known.size == 0:
        return []
    front = np.interp(np.arange(len(z_mm)), known, front[known])
    p90 = np.zeros((len(DISC_BANDS_MM), len(z_mm)))
    inside = np.arange(known.min(), known.max() + 1)
    for k in inside:
        for b, (near, far) in enumerate(DISC_BANDS_MM):
            rows = hu[k, int(round(front[k] + near / STEP_MM)) : int(round(front[k] + far / STEP_MM))][:, strip]
            p90[b, k] = np.percentile(rows, 90) if rows.size else 0.0
    closed = ndimage.grey_closing(p90, size=(1, int(round(DISC_MAX_MM / STEP_MM)) | 1))
    depth = np.zeros_like(p90)
    # bone on both sides within a disc's height, and soft tissue between (fat or air: the band left the body)
    disc_like = (closed[:, inside] >= BONE_HU) & (p90[:, inside] >= DISC_MIN_HU)
    depth[:, inside] = np.where(disc_like, (closed - p90)[:, inside] / np.maximum(closed[:, inside], 1.0), 0.0)
    tilt = 2 * int(round(DISC_TILT_MM / STEP_MM)) + 1
    disc = (ndimage.maximum_filter1d(depth, tilt, axis=1) >= DISC_DEPTH).sum(0) >= DISC_BANDS_MIN
    labels, n = ndimage.label(disc)
    strength = ndimage.mean(depth.mean(0), labels, np.arange(1, n + 1))
    return [(float(z_mm[sl[0].start]), float(z_mm[sl[0].stop - 1]), float(mean))
            for sl, mean in zip(ndimage.find_objects(labels), strength)]


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
