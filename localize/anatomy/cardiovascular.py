"""Aorta and heart from a non-contrast CT on the PET grid, after the spine landmarks.

* aorta: a round soft-tissue tube (blood ~40 HU, wall-to-wall 20-30 mm [REC: adult abdominal aorta
  ~2 cm, descending thoracic ~2.5 cm]) lying just anterior (and left) of the lumbar vertebral bodies
  and left of the thoracic ones, behind the heart; the inferior vena cava, as round and as dense, lies
  right of the midline [R: Gray's Anatomy, abdominal aorta and inferior vena cava]. Tracked slice by
  slice upwards and downwards from two starts: the L3 level (the fluciclovine blood-pool level,
  docs/detection.md#reference-regions), in front of the vertebral body, and the T8 level (the PERCIST
  blood-pool level), beside it on the left; in each
  slice the deepest point of soft tissue (in-plane distance to the nearest non-soft voxel) near the
  previous centre. Where it merges with the heart, the crura or another organ of the same density
  the centre is carried on, and those slices are left out of the mask (its wall is not seen there):
  the second start finds the thoracic aorta again above the hiatus.
* heart: the large soft-tissue mass between the lungs above the diaphragm: the opening of soft
  tissue by a ``HEART_CORE_MM`` ball (the chest wall and vessels are thinner) in its largest
  component between the lungs.

Arrays are numpy ``z, y, x`` on the PET grid (rows anterior -> posterior, columns right -> left);
``y_mm``/``x_mm`` are LPS mm of the rows and columns.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from localize.anatomy.ct_context import CTContext
from localize.anatomy.grids import bounding_box

AORTA_RADIUS_MM = (6.0, 17.0)  # in-plane depth of the lumen centre: 12-34 mm wide [REC]
AORTA_STEP_MM = 6.0  # the centre line moves at most this much between neighbouring slices [REC]
MERGE_MARGIN_PX = 0.75  # a lumen this much deeper than at the start has merged with a neighbour (voxels) [REC]
# Where the aorta's centre lies relative to the vertebral body's front (y) and the midline (x, + = left),
# mm: in front of a lumbar body, left beside a thoracic one [REC: cross-sectional anatomy].
AORTA_WINDOWS_MM = {"abdominal": ((-45.0, 5.0), (-15.0, 35.0)), "thoracic": ((-15.0, 25.0), (5.0, 55.0))}
HEART_CORE_MM = 15.0  # the heart is ~12 cm wide [REC]; chest wall and great vessels are under 3 cm thick
HEART_ML = (250.0, 2000.0)  # heart with blood, adult [REC]
_SOFT_HU = (-30.0, 120.0)


def _soft(hu: np.ndarray, body: np.ndarray, bone: np.ndarray) -> np.ndarray:
    return (hu > _SOFT_HU[0]) & (hu < _SOFT_HU[1]) & body & ~bone


def aorta_mask(ctx: CTContext, spine: np.ndarray, starts_z_mm: dict[str, float], bottom_z_mm: float,
               top_z_mm: float) -> np.ndarray:
    """The aorta (bool z, y, x) on the CT of ``ctx`` from ``bottom_z_mm`` (bifurcation) to ``top_z_mm`` (LPS z).

    ``starts_z_mm`` maps a window of ``AORTA_WINDOWS_MM`` ("abdominal", "thoracic") to the level
    where a track starts, in order; ``spine`` holds the vertebral bodies. A track ends where an
    earlier one has drawn.
    """
    spacing, z_mm, y_mm, x_mm = ctx.spacing, ctx.z_mm, ctx.y_mm, ctx.x_mm
    soft = _soft(ctx.hu, ctx.body, ctx.bone)
    out = np.zeros(ctx.hu.shape, bool)
    slices = np.flatnonzero((z_mm >= min(bottom_z_mm, top_z_mm)) & (z_mm <= max(bottom_z_mm, top_z_mm)))
    if slices.size == 0:
        return out
    for window, start_z_mm in starts_z_mm.items():
        k0 = int(slices[np.argmin(np.abs(z_mm[slices] - start_z_mm))])
        start = _first_centre(soft[k0], spine[k0], spacing, y_mm, x_mm, ctx.midline_x_mm, AORTA_WINDOWS_MM[window])
        if start is not None:
            _track(soft, spacing, y_mm, x_mm, slices, k0, start, out)
    return out


def _track(soft: np.ndarray, spacing: np.ndarray, y_mm: np.ndarray, x_mm: np.ndarray, slices: np.ndarray, k0: int,
           start: tuple[float, float, float], out: np.ndarray) -> None:
    """Follow the tube found at slice ``k0`` (``start`` = y, x, radius mm) up and down ``slices``; draw it into
    ``out``."""
    yy, xx = y_mm[:, None], x_mm[None, :]
    for direction in (1, -1):
        centre, radius, merged = start[:2], start[2], 0
        k = k0 if direction == 1 else k0 - 1
        while slices.min() <= k <= slices.max():
            found = _centre_near(soft[k], spacing, y_mm, x_mm, centre)
            if found is None or out[k].any():
                break  # lost, or joined the track of the other start
            if found[2] > min(AORTA_RADIUS_MM[1], start[2] + MERGE_MARGIN_PX * spacing[1]):
                # merged with a neighbour of the same density (heart, pancreas, crus): carry the centre line on
                merged += 1
                if merged * spacing[0] > 120.0:
                    break
                k += direction
                continue  # not drawn: its wall cannot be told from the neighbour's here
            centre, radius, merged = found[:2], found[2], 0
            disc = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= (radius + 0.5 * spacing[1]) ** 2
            out[k] |= disc & soft[k]
            k += direction


def _first_centre(soft: np.ndarray, spine: np.ndarray, spacing: np.ndarray, y_mm: np.ndarray, x_mm: np.ndarray,
                  midline_x: float, window_mm: tuple[tuple[float, float], tuple[float, float]]
                  ) -> tuple[float, float, float] | None:
    """(y, x, radius) mm of the roundest tube of aortic size in ``window_mm`` beside the vertebral body of one slice."""
    if not spine.any():
        return None
    front_y = float(y_mm[np.flatnonzero(spine.any(1)).min()])
    depth = ndimage.distance_transform_edt(soft, sampling=spacing[1:])
    (y0, y1), (x0, x1) = window_mm
    window = (((y_mm >= front_y + y0) & (y_mm <= front_y + y1))[:, None]
              & ((x_mm >= midline_x + x0) & (x_mm <= midline_x + x1))[None, :])
    peaks = (depth == ndimage.maximum_filter(depth, size=3)) & window
    peaks &= (depth >= AORTA_RADIUS_MM[0]) & (depth <= AORTA_RADIUS_MM[1])
    if not peaks.any():
        return None
    rows, cols = np.nonzero(peaks)
    # the deepest such tube left of the midline (the inferior vena cava, as wide and as dense on a non-contrast
    # CT, lies right of it), else the deepest; ties to the one nearest the vertebral body
    left = [i for i in range(len(rows)) if x_mm[cols[i]] >= midline_x]
    best = max(left or range(len(rows)), key=lambda i: (depth[rows[i], cols[i]], -y_mm[rows[i]]))
    return float(y_mm[rows[best]]), float(x_mm[cols[best]]), float(depth[rows[best], cols[best]])


def _centre_near(soft: np.ndarray, spacing: np.ndarray, y_mm: np.ndarray, x_mm: np.ndarray,
                 centre: tuple[float, float]) -> tuple[float, float, float] | None:
    """(y, x, radius) mm of the deepest soft-tissue point within ``AORTA_STEP_MM`` of ``centre`` (None if too thin)."""
    near = (((y_mm - centre[0]) ** 2)[:, None] + ((x_mm - centre[1]) ** 2)[None, :]) <= AORTA_STEP_MM**2
    if not (soft & near).any():
        return None
    depth = ndimage.distance_transform_edt(soft, sampling=spacing[1:])
    score = np.where(near, depth, -1.0)
    r, c = np.unravel_index(int(np.argmax(score)), score.shape)
    if depth[r, c] < AORTA_RADIUS_MM[0]:
        return None
    return float(y_mm[r]), float(x_mm[c]), float(depth[r, c])


def heart_mask(ctx: CTContext, lungs: np.ndarray, diaphragm_z_mm: float) -> np.ndarray | None:
    """The heart (bool z, y, x) on the CT of ``ctx``: soft tissue at least ``HEART_CORE_MM`` deep between the
    ``lungs`` above the diaphragm (LPS z ``diaphragm_z_mm``)."""
    hu, spacing, z_mm = ctx.hu, ctx.spacing, ctx.z_mm
    if not lungs.any():
        return None
    lung_slices = np.flatnonzero(lungs.any((1, 2)))
    zone = np.zeros(hu.shape, bool)
    for k in lung_slices:
        cols = np.flatnonzero(lungs[k].any(0))
        rows = np.flatnonzero(lungs[k].any(1))
        zone[k, max(rows.min() - 10, 0) : rows.max() + 1, cols.min() : cols.max() + 1] = True
    zone &= (z_mm >= diaphragm_z_mm - 2.0 * spacing[0])[:, None, None]
    soft = _soft(hu, ctx.body, ctx.bone) & zone
    box = bounding_box(soft, pad=1)  # its rim of non-soft voxels keeps the distances within it exact
    if box is None:
        return None
    soft = soft[box]
    core = ndimage.distance_transform_edt(soft, sampling=spacing) >= HEART_CORE_MM
    if not core.any():
        return None
    labels, n = ndimage.label(core)
    sizes = ndimage.sum_labels(core, labels, np.arange(1, n + 1))
    core = labels == int(np.argmax(sizes)) + 1
    heart = np.zeros(hu.shape, bool)
    heart[box] = soft & (ndimage.distance_transform_edt(~core, sampling=spacing) <= HEART_CORE_MM)
    if not HEART_ML[0] <= heart.sum() * ctx.voxel_ml <= HEART_ML[1]:
        return None
    return heart
