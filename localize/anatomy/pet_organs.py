"""Organs of physiological uptake found on the PET alone: brain, heart, kidneys, urinary bladder.

For a PET with no CT (or organs the CT rules do not build, such as the brain), each
organ is read off the image by its pattern, never by a table position or a field
of view: the body is what stands above air; its central part in each axial slice is
the head where it is narrow (``HEAD_MAX_WIDTH_MM``) above the widest slice, the trunk
where it is wide;
"hot" is smoothed uptake of at least ``HOT_OVER_BODY`` x the body's median SUV.

* brain: hot and mostly in head slices;
* urinary bladder: the lowest very hot (``URINE_OVER_BODY``), compact component of
  the trunk within ``MIDLINE_MM`` of its centre line;
* kidneys: a left/right pair of hot components beside the midline at one level, above the bladder;
* heart: a hot compact component of the trunk above the kidneys, centred left of or on the midline;
* liver: the thickest avid organ of the trunk below the heart, right of or on the midline.

An organ that does not fit its pattern is not returned. Arrays are numpy ``z, y, x``
on the PET grid; +z is superior and +x the patient's left (LPS), whatever the
patient position.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from localize.detection.metrics import spacing_zyx_mm, zyx_to_lps

SMOOTH_MM = 4.0  # Gaussian sigma before finding organs: voxel noise must not split them
BODY_FRACTION = 0.3  # body: smoothed SUV above this x the typical tissue uptake
HOT_OVER_BODY = 4.0  # "hot": at least this x the body's median SUV [REC]
URINE_OVER_BODY = 8.0  # urine: at least this x the body's median SUV [REC]
# Adult head: breadth ~15 cm (with blur and scalp, under 22 cm); the trunk at the shoulders or the
# pelvis is over 30 cm wide [REC: anthropometric tables, e.g. Gordon et al. ANSUR II 2012].
HEAD_MAX_WIDTH_MM = 220.0
HEAD_OVER_TRUNK = 0.6  # and at most this x the widest slice: a thin man's waist above his hips is no head [REC]
MIDLINE_MM = 40.0
# Organ volume ranges in ml [REC: adult organ volumes; a brain cut by the field's edge comes in pieces from 5 ml]
BRAIN_ML = (5.0, 1800.0)
BLADDER_ML = (10.0, 1500.0)
KIDNEY_ML = (20.0, 600.0)
HEART_ML = (80.0, 1500.0)
KIDNEY_PAIR_DZ_MM = 80.0
# The liver holds a core this deep inside its uptake; bowel, vessels and glands do not [REC: adult liver
# 15-20 cm across, 10-15 cm front to back]. Its FDG and PSMA uptake is about 2-5 x the body's median.
LIVER_OVER_BODY = 2.0
LIVER_CORE_MM = 20.0
LIVER_CORE_ML = 200.0  # the two kidneys' centres lie within this of one level [REC: ptosis, asymmetry]


def pet_organs(pet_suv: sitk.Image, *,
               wanted: tuple[str, ...] = ("brain", "urinary_bladder", "kidneys", "heart", "liver")
               ) -> dict[str, np.ndarray]:
    """Masks (bool z, y, x on the PET grid) of the ``wanted`` organs that the PET shows by their pattern.

    ``wanted`` names: "brain", "urinary_bladder", "kidneys" (gives kidney_left / kidney_right), "heart", "liver".
    """
    suv = sitk.GetArrayViewFromImage(pet_suv).astype(np.float32)
    spacing = spacing_zyx_mm(pet_suv)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    smooth = ndimage.gaussian_filter(suv, SMOOTH_MM / spacing)
    top = float(np.percentile(smooth, 99.9))
    if top <= 0:
        return {}
    tissue = float(np.median(smooth[smooth > 0.05 * top]))
    body = smooth > BODY_FRACTION * tissue
    if not body.any():
        return {}
    level = float(np.median(smooth[body]))
    grid_z = zyx_to_lps(pet_suv, np.stack([np.arange(suv.shape[0]), np.zeros(suv.shape[0]), np.zeros(suv.shape[0])], 1))
    z_mm = grid_z[:, 2]
    columns = np.arange(suv.shape[2], dtype=float)
    zeros = np.zeros_like(columns)
    x_lps = zyx_to_lps(pet_suv, np.stack([zeros, zeros, columns], 1))[:, 0]
    centre_x, width_mm = _central_part(body, x_lps, spacing)
    # the head lies above the trunk's widest slice (+z is superior); below it, a narrow central part is a leg
    above_trunk = z_mm > z_mm[int(np.argmax(width_mm))]
    head = (width_mm <= HEAD_MAX_WIDTH_MM) & (width_mm <= HEAD_OVER_TRUNK * np.nanmax(width_mm)) & above_trunk
    trunk = ~head & np.isfinite(centre_x)
    labels, n = ndimage.label(smooth >= HOT_OVER_BODY * level)
    parts = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        mask = labels[box] == index
        zyx = np.argwhere(mask) + [s.start for s in box]
        volume_ml = len(zyx) * voxel_ml
        points = zyx_to_lps(pet_suv, zyx.astype(float))
        k = zyx[:, 0]
        parts.append({
            "label": index, "ml": volume_ml, "centre": points.mean(0), "z_span": np.ptp(points[:, 2]),
            "head": float(head[k].mean()), "trunk": float(trunk[k].mean()),
            "offset_mm": float(np.nanmedian(points[:, 0] - centre_x[k])) if np.isfinite(centre_x[k]).any() else np.nan,
            "peak_ratio": float(smooth[labels == index].max() / level), "compact": _compact(points),
        })
    found: dict[str, np.ndarray] = {}
    chosen: dict[str, list[int]] = {}
    if "brain" in wanted:
        chosen["brain"] = [p["label"] for p in parts if p["head"] >= 0.5 and BRAIN_ML[0] <= p["ml"] <= BRAIN_ML[1]]
    bladder = None
    if "urinary_bladder" in wanted or "kidneys" in wanted or "heart" in wanted:
        urine = [p for p in parts if p["trunk"] >= 0.8 and p["peak_ratio"] >= URINE_OVER_BODY and p["compact"]
                 and BLADDER_ML[0] <= p["ml"] <= BLADDER_ML[1] and abs(p["offset_mm"]) <= MIDLINE_MM]
        bladder = min(urine, key=lambda p: p["centre"][2]) if urine else None
        if bladder is not None and "urinary_bladder" in wanted:
            chosen["urinary_bladder"] = [bladder["label"]]
    floor = bladder["centre"][2] if bladder is not None else -np.inf
    pair = _kidney_pair([p for p in parts if p["trunk"] >= 0.8 and p["centre"][2] > floor
                         and KIDNEY_ML[0] <= p["ml"] <= KIDNEY_ML[1] and abs(p["offset_mm"]) > MIDLINE_MM / 2])
    if pair is not None and "kidneys" in wanted:
        chosen["kidney_left"], chosen["kidney_right"] = [pair[0]["label"]], [pair[1]["label"]]
    if "heart" in wanted and pair is not None:
        above = max(pair[0]["centre"][2], pair[1]["centre"][2])
        hearts = [p for p in parts if p["trunk"] >= 0.8 and p["centre"][2] > above and p["compact"]
                  and HEART_ML[0] <= p["ml"] <= HEART_ML[1] and p["offset_mm"] >= -MIDLINE_MM / 2]
        if hearts:
            chosen["heart"] = [max(hearts, key=lambda p: p["ml"])["label"]]
    for name, indices in chosen.items():
        if indices:
            found[name] = np.isin(labels, indices)
    if "liver" in wanted:
        heart_z = float(zyx_to_lps(pet_suv, np.argwhere(found["heart"]).mean(0))[2]) if "heart" in found else np.inf
        liver = _liver(smooth >= LIVER_OVER_BODY * level, spacing, voxel_ml, pet_suv, centre_x, trunk, heart_z)
        if liver is not None:
            found["liver"] = liver & ~np.logical_or.reduce([m for m in found.values()] or [np.zeros_like(liver)])
    return found


def _liver(avid: np.ndarray, spacing: np.ndarray, voxel_ml: float, grid: sitk.Image, centre_x: np.ndarray,
           trunk: np.ndarray, below_z_mm: float) -> np.ndarray | None:
    """The liver: the thickest avid organ (its core ``LIVER_CORE_MM`` inside the avid uptake, at least
    ``LIVER_CORE_ML``), in the trunk, centred right of or on the midline and below the heart; grown back
    to its surface. Bowel loops, vessels and glands are too thin to keep a core that deep."""
    depth = ndimage.distance_transform_edt(avid, sampling=spacing)
    labels, n = ndimage.label(depth >= LIVER_CORE_MM)
    if n == 0:
        return None
    sizes = ndimage.sum_labels(np.ones(avid.shape, np.float32), labels, np.arange(1, n + 1)) * voxel_ml
    for index in np.argsort(sizes)[::-1]:
        if sizes[index] < LIVER_CORE_ML:
            return None
        zyx = np.argwhere(labels == index + 1)
        centre = zyx_to_lps(grid, zyx.mean(0))
        k = int(round(zyx[:, 0].mean()))
        if trunk[k] and centre[2] < below_z_mm and centre[0] - centre_x[k] <= MIDLINE_MM / 2:
            near = ndimage.distance_transform_edt(labels != index + 1, sampling=spacing) <= LIVER_CORE_MM
            return near & avid
    return None


def _central_part(body: np.ndarray, x_lps: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per axial slice: LPS x (mm) of the centre and left-right width (mm) of the body's central part.

    The central part is the 2D component of the body nearest the body's overall centre line, so
    raised arms beside the head or the trunk are left out. Slices without body: NaN centre, 0 width.
    """
    nz = body.shape[0]
    centre, width = np.full(nz, np.nan), np.zeros(nz)
    overall = float(np.average(x_lps, weights=body.sum((0, 1)) + 1e-9))
    for k in range(nz):
        labels, n = ndimage.label(body[k])
        if n == 0:
            continue
        best, best_distance = 0, np.inf
        for index in range(1, n + 1):
            columns = np.flatnonzero((labels == index).any(0))
            if columns.size * spacing[2] < 30.0:  # a fragment, not a body part
                continue
            distance = abs(float(np.mean(x_lps[columns])) - overall)
            if distance < best_distance:
                best, best_distance = index, distance
        if best:
            columns = np.flatnonzero((labels == best).any(0))
            centre[k] = float(np.mean(x_lps[columns]))
            width[k] = columns.size * spacing[2]
    return centre, width


def _compact(points_mm: np.ndarray) -> bool:
    """True when the points are not a long thin track: longest SD at most 3 x the shortest."""
    if len(points_mm) < 4:
        return False
    sd = np.sqrt(np.maximum(np.linalg.eigvalsh(np.cov(points_mm.T)), 1e-6))
    return bool(sd[-1] <= 3.0 * sd[0])


def _kidney_pair(parts: list[dict]) -> tuple[dict, dict] | None:
    """(left, right) components on either side of the midline at one level, the largest such pair."""
    left = [p for p in parts if p["offset_mm"] > 0]
    right = [p for p in parts if p["offset_mm"] < 0]
    pairs = [(a, b) for a in left for b in right if abs(a["centre"][2] - b["centre"][2]) <= KIDNEY_PAIR_DZ_MM
             and 0.25 <= a["ml"] / b["ml"] <= 4.0]
    return max(pairs, key=lambda ab: ab[0]["ml"] + ab[1]["ml"]) if pairs else None
