"""Built-in anatomy from the CT (HU, resampled onto the PET grid) and the PET (SUV).

Thresholds and proportions only: no model weights, no network. Arrays are numpy
``z, y, x`` on the PET grid, assumed axial with rows running anterior -> posterior
and columns right -> left (the DICOM axial default); levels are LPS z in mm.

* body: HU > -500, largest component, holes filled per slice (no opening: thin walls must stay closed);
* lungs: air (HU < -400) inside the body in components over 150 ml;
* bone: HU > 150 inside the body, holes of up to 25 cm² filled per slice (fatty marrow inside
  a cortex is bone; the pelvic cavity, enclosed by the pelvic ring in axial slices, is not);
* spine: bone in a midline strip; vertebral bodies are its runs along z,
  the sacrum the lowest run, L5 the one above it and so on upwards;
* hips (iliac wings, acetabula, pubis) and femora: bone lateral to the spine
  below the sacral promontory; femoral heads where both meet;
* urinary bladder: water-density (HU -20..30) component of the low pelvis
  between the acetabula;
* prostate (intact gland): soft-tissue component of 12-120 ml on the midline within 6 cm
  behind the pubis, between the symphysis bottom and the bladder (absent after prostatectomy);
* PET-avid organs (liver, spleen, kidneys, parotid and submandibular glands):
  the largest avid soft-tissue component in the box where each organ lies;
* bowel: diffuse PET uptake of the abdomen and pelvis outside bone and the other organs
  (see ``bowel_uptake``).

Levels (DOMAIN.md §5.3 fallbacks): aortic bifurcation = L4/L5 disc, common
iliac bifurcation = L5/S1 disc; pelvic inlet = sacral promontory; symphysis
top / bottom from the pubic bone; diaphragm = lung base.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from localize.metrics import zyx_to_lps

_SLICE = np.array([[[0, 0, 0], [0, 0, 0], [0, 0, 0]], [[0, 1, 0], [1, 1, 1], [0, 1, 0]], [[0, 0, 0], [0, 0, 0], [0, 0, 0]]])
BONE_HU = 150.0
FLUID_HU = (-20.0, 30.0)
SOFT_HU = (-30.0, 150.0)


def ct_on_grid(ct: sitk.Image, grid: sitk.Image) -> np.ndarray:
    """CT HU resampled (linear) onto ``grid`` as float32 z, y, x; outside the CT is air (-1000)."""
    out = sitk.Resample(ct, grid, sitk.Transform(), sitk.sitkLinear, -1000.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)


def _largest(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
    return labels == (int(np.argmax(sizes)) + 1)


def _fill_slices(mask: np.ndarray) -> np.ndarray:
    return ndimage.binary_fill_holes(mask, structure=_SLICE)


def axis_mm(grid: sitk.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LPS (z, y, x) mm of the voxel centres along each numpy axis (axis-aligned grid)."""
    nz, ny, nx = grid.GetSize()[::-1]
    z = zyx_to_lps(grid, np.stack([np.arange(nz), np.zeros(nz), np.zeros(nz)], 1))[:, 2]
    y = zyx_to_lps(grid, np.stack([np.zeros(ny), np.arange(ny), np.zeros(ny)], 1))[:, 1]
    x = zyx_to_lps(grid, np.stack([np.zeros(nx), np.zeros(nx), np.arange(nx)], 1))[:, 0]
    return z, y, x


def ct_anatomy(hu: np.ndarray, suv: np.ndarray, grid: sitk.Image) -> tuple[dict[str, np.ndarray], dict[str, float], float]:
    """(masks, levels z mm, midline x mm) from CT ``hu`` and PET ``suv`` arrays on ``grid``."""
    spacing = np.array(grid.GetSpacing()[::-1])
    voxel_ml = float(np.prod(spacing)) / 1000.0
    z_mm, y_mm, x_mm = axis_mm(grid)
    masks: dict[str, np.ndarray] = {}
    levels: dict[str, float] = {}

    body = _fill_slices(_largest(hu > -500))
    masks["body"] = body
    air = (hu < -400) & body
    lab, n = ndimage.label(air)
    if n:
        sizes = ndimage.sum_labels(air, lab, index=np.arange(1, n + 1)) * voxel_ml
        lungs = np.isin(lab, np.flatnonzero(sizes > 150.0) + 1)
    else:
        lungs = np.zeros_like(air)
    bone = fill_small_holes(ndimage.binary_closing((hu > BONE_HU) & body, iterations=1) & body,
                            MARROW_HOLE_MM2 / float(spacing[1] * spacing[2]))
    masks["bone"] = bone

    # midline: centre of the body in x, weighted by slice (robust to arms)
    midline_x = float(np.average(x_mm, weights=body.sum((0, 1)) + 1e-9))
    right_side = x_mm[None, None, :] < midline_x  # LPS: +x is the patient's left
    if lungs.any():
        masks["lung_left"] = lungs & ~right_side
        masks["lung_right"] = lungs & right_side
        levels["diaphragm"] = float(z_mm[np.flatnonzero(lungs.any((1, 2)))].min())

    _spine_and_pelvis(bone, spacing, z_mm, y_mm, x_mm, midline_x, masks, levels)
    _bladder(hu, body, masks, levels, spacing, x_mm, z_mm, midline_x)
    _prostate(hu, body, masks, levels, spacing, y_mm, x_mm, z_mm, midline_x, voxel_ml)
    _avid_organs(hu, suv, body, masks, levels, z_mm, y_mm, x_mm, midline_x, voxel_ml)
    bowel = bowel_uptake(suv, hu, body & ~ndimage.binary_dilation(_union(masks, _NOT_BOWEL, body.shape), iterations=1),
                         voxel_ml)
    if bowel.any():
        masks["bowel"] = bowel
    return masks, levels, midline_x


# Marrow cavities in an axial slice are smaller than this (adult lumbar body ~14 cm², femoral head
# ~18 cm² including cortex); the pelvic cavity inside the pelvic ring is over 80 cm² [REC].
MARROW_HOLE_MM2 = 2500.0
# Bowel uptake (DOMAIN.md §3.6: small bowel and colon take up PSMA ligands) [REC]: a connected region of
# at least BOWEL_MIN_ML above BOWEL_BACKGROUND_FACTOR x the soft-tissue median SUV whose 95th percentile is
# at most BOWEL_FLATNESS x its median: a plateau many centimetres long, unlike a node (a blurred sphere
# whose region at that level is mostly its own tail: small, and peaked).
BOWEL_MIN_ML = 15.0
BOWEL_BACKGROUND_FACTOR = 2.5
BOWEL_FLATNESS = 2.0
_NOT_BOWEL = ("bone", "urinary_bladder", "kidney_left", "kidney_right", "liver", "spleen", "lung_left",
              "lung_right", "prostate")


def _union(masks: dict[str, np.ndarray], names: tuple[str, ...], shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape, bool)
    for name in names:
        if name in masks:
            out |= masks[name]
    return out


def fill_small_holes(mask: np.ndarray, max_pixels: float) -> np.ndarray:
    """``mask`` (z, y, x) with the holes of each axial slice filled when at most ``max_pixels`` in area."""
    holes = _fill_slices(mask) & ~mask
    labels, n = ndimage.label(holes, structure=_SLICE)
    if n == 0:
        return mask
    sizes = ndimage.sum_labels(holes, labels, index=np.arange(1, n + 1))
    return mask | np.isin(labels, np.flatnonzero(sizes <= max_pixels) + 1)


def bowel_uptake(suv: np.ndarray, hu: np.ndarray, allowed: np.ndarray, voxel_ml: float) -> np.ndarray:
    """Diffuse, low-contrast bowel uptake (bool z, y, x) within ``allowed`` (body minus bone and organs).

    Soft tissue and bowel content (HU -200..200, gas excluded: it has no uptake) whose smoothed
    SUV exceeds ``BOWEL_BACKGROUND_FACTOR`` x the median of soft tissue, in connected regions
    that are large (``BOWEL_MIN_ML``) and flat (``BOWEL_FLATNESS``).
    """
    tissue = allowed & (hu > -200.0) & (hu < 200.0)
    if not tissue.any():
        return np.zeros(suv.shape, bool)
    smooth = ndimage.gaussian_filter(suv, 1.0)
    level = BOWEL_BACKGROUND_FACTOR * float(np.median(suv[tissue & (hu > SOFT_HU[0])]))
    labels, n = ndimage.label(tissue & (smooth >= level))
    if n == 0:
        return np.zeros(suv.shape, bool)
    index = np.arange(1, n + 1)
    sizes = ndimage.sum_labels(np.ones(suv.shape, np.float32), labels, index) * voxel_ml
    keep = []
    for lab in index[sizes >= BOWEL_MIN_ML]:
        values = smooth[labels == lab]
        p95, median = np.percentile(values, [95, 50])
        if p95 <= BOWEL_FLATNESS * median:
            keep.append(lab)
    return np.isin(labels, keep)


def _prostate(hu, body, masks, levels, spacing, y_mm, x_mm, z_mm, midline_x, voxel_ml) -> None:
    """The intact prostate: a soft-tissue organ on the midline behind the lower symphysis, below the bladder."""
    pubic = masks.get("pubic_symphysis")
    if pubic is None or "symphysis_bottom" not in levels:
        return
    pubis_y = float(np.median(y_mm[np.argwhere(pubic)[:, 1]]))
    # the gland lies within ~6 cm behind the pubis (rectum behind it), from the symphysis bottom to the bladder neck
    z_lo, z_hi = levels["symphysis_bottom"], levels["symphysis_top"] + 30.0
    box = (((z_mm >= z_lo) & (z_mm <= z_hi))[:, None, None] & ((y_mm > pubis_y + 5.0) & (y_mm < pubis_y + 75.0))[None, :, None]
           & (np.abs(x_mm - midline_x) <= 40.0)[None, None, :])
    tissue = (hu > 0.0) & (hu < 100.0) & body & box & ~masks["bone"]
    if "urinary_bladder" in masks:
        tissue &= ~ndimage.binary_dilation(masks["urinary_bladder"], iterations=1)
    tissue[tissue.sum((1, 2)) > 0.6 * box.sum((1, 2))] = False  # slices filled wall to wall: pelvic floor, not a gland
    soft = ndimage.binary_opening(tissue, iterations=1) & (z_mm <= levels["symphysis_top"])[:, None, None]
    if not soft.any():
        return
    gland = _largest(soft)
    if not 12.0 <= gland.sum() * voxel_ml <= 120.0:
        return
    masks["prostate"] = _fill_slices(gland)
    # seminal vesicles: small soft-tissue parts above the gland's centre, within 3 cm of it
    near = ndimage.distance_transform_edt(~gland, sampling=spacing) <= 30.0
    centre_z = float(z_mm[np.argwhere(gland)[:, 0]].mean())
    labels, _ = ndimage.label(tissue & ~ndimage.binary_dilation(gland) & (z_mm > centre_z)[:, None, None])
    vesicles = np.zeros_like(gland)
    for lab, sl in enumerate(ndimage.find_objects(labels), start=1):
        part = labels[sl] == lab
        if 1.0 <= part.sum() * voxel_ml <= 20.0 and (near[sl] & part).any():
            vesicles[sl] |= part
    if vesicles.any():
        masks["seminal_vesicles"] = vesicles


def _spine_and_pelvis(bone, spacing, z_mm, y_mm, x_mm, midline_x, masks, levels) -> None:
    strip = np.abs(x_mm - midline_x) <= 20.0
    column = bone & strip[None, None, :]
    if not column.any():
        return
    # vertebral bodies: the most anterior bone of the midline strip in each slice (spinous processes and ribs behind)
    ys = np.where(column.any((0, 2)))[0]
    body_y = np.full(bone.shape[0], -1)
    for k in range(bone.shape[0]):
        rows = np.flatnonzero(column[k].any(1))
        if rows.size:
            body_y[k] = rows.min()
    present = body_y >= 0
    depth_vox = int(round(30.0 / spacing[1]))
    spine = np.zeros_like(bone)
    for k in np.flatnonzero(present):
        spine[k, body_y[k] : body_y[k] + depth_vox] = column[k, body_y[k] : body_y[k] + depth_vox]
    del ys
    runs = _runs(spine.any((1, 2)), min_len=max(2, int(round(10.0 / spacing[0]))))
    if not runs:
        return
    masks["spine"] = spine
    lateral = bone & ~(np.abs(x_mm - midline_x) <= 30.0)[None, None, :]
    pelvis_slices = lateral.sum((1, 2)) > 0
    # the sacrum: the lowest spinal run that has pelvic (lateral) bone at the same levels
    sacrum_run = next((r for r in runs if pelvis_slices[r[0] : r[1]].any()), runs[0])
    i = runs.index(sacrum_run)
    masks["sacrum"] = _in_slices(spine, *sacrum_run)
    levels["pelvic_inlet"] = float(z_mm[sacrum_run[1] - 1])  # sacral promontory
    names = ["L5", "L4", "L3", "L2", "L1", "T12", "T11", "T10", "T9", "T8", "T7", "T6", "T5", "T4", "T3", "T2", "T1"]
    above = runs[i + 1 :]
    for name, run in zip(names, above):
        masks[f"vertebrae_{name}"] = _in_slices(spine, *run)
        levels[name] = float(z_mm[(run[0] + run[1] - 1) // 2])
    if len(above) >= 1:
        levels["common_iliac_bifurcation"] = float((z_mm[sacrum_run[1] - 1] + z_mm[above[0][0]]) / 2)
    if len(above) >= 2:
        levels["aortic_bifurcation"] = float((z_mm[above[0][1] - 1] + z_mm[above[1][0]]) / 2)
    below_inlet = (z_mm <= levels["pelvic_inlet"])[:, None, None]
    pelvic = lateral & below_inlet
    for side, sign in (("left", 1), ("right", -1)):
        half = (sign * (x_mm - midline_x) > 0)[None, None, :]
        part = _largest(pelvic & half) if (pelvic & half).any() else pelvic & half
        masks[f"hip_{side}"] = part
    pubic = bone & (np.abs(x_mm - midline_x) <= 25.0)[None, None, :] & below_inlet & ~masks["sacrum"]
    anterior = (y_mm < np.median(y_mm[np.flatnonzero(bone.any((0, 2)))]))[None, :, None]
    pubic &= anterior
    if pubic.any():
        masks["pubic_symphysis"] = pubic
        zs = np.flatnonzero(pubic.any((1, 2)))
        levels["symphysis_top"], levels["symphysis_bottom"] = float(z_mm[zs.max()]), float(z_mm[zs.min()])


def _bladder(hu, body, masks, levels, spacing, x_mm, z_mm, midline_x) -> None:
    if "symphysis_top" not in levels or "pelvic_inlet" not in levels:
        return
    fluid = (hu > FLUID_HU[0]) & (hu < FLUID_HU[1]) & body
    fluid = ndimage.binary_opening(ndimage.median_filter(fluid.astype(np.uint8), size=3).astype(bool), iterations=1)
    window = (z_mm >= levels["symphysis_bottom"]) & (z_mm <= levels["pelvic_inlet"])
    near = np.abs(x_mm - midline_x) <= 60.0
    fluid &= window[:, None, None] & near[None, None, :]
    if fluid.any():
        masks["urinary_bladder"] = _largest(fluid)


def _avid_organs(hu, suv, body, masks, levels, z_mm, y_mm, x_mm, midline_x, voxel_ml) -> None:
    """Liver, spleen, kidneys, salivary glands: largest avid soft-tissue component in each organ's box."""
    soft = (hu > SOFT_HU[0]) & (hu < SOFT_HU[1]) & body
    dia = levels.get("diaphragm")
    if dia is None:
        return
    left = x_mm > midline_x
    boxes = {
        "liver": ((dia - 150, dia + 60), ~left, 300.0),
        "spleen": ((dia - 120, dia + 30), left & (x_mm > midline_x + 50), 40.0),
    }
    l1 = levels.get("L1", dia - 90)
    for side, sel in (("left", left), ("right", ~left)):
        boxes[f"kidney_{side}"] = ((l1 - 90, l1 + 60), sel & (np.abs(x_mm - midline_x) > 35), 40.0)
    top = float(z_mm[np.flatnonzero(body.any((1, 2)))].max())
    if top - dia > 250:  # the head is in the field of view
        for side, sel in (("left", left), ("right", ~left)):
            boxes[f"parotid_gland_{side}"] = ((top - 140, top - 40), sel & (np.abs(x_mm - midline_x) > 25), 5.0)
            boxes[f"submandibular_gland_{side}"] = ((top - 190, top - 90), sel & (np.abs(x_mm - midline_x) > 15), 2.0)
    taken = np.zeros_like(body)
    for name, ((z0, z1), xsel, min_ml) in boxes.items():
        box = ((z_mm >= z0) & (z_mm <= z1))[:, None, None] & xsel[None, None, :] & soft & ~taken
        if not box.any():
            continue
        ref = float(np.percentile(suv[box], 99.5))
        avid = box & (suv >= 0.5 * ref) & (ref > 2.0 * float(np.median(suv[soft])))
        if not avid.any():
            continue
        organ = _largest(ndimage.binary_opening(avid, iterations=1) if avid.sum() > 50 else avid)
        if organ.sum() * voxel_ml >= min_ml:
            masks[name] = _fill_slices(organ)
            taken |= masks[name]


def _runs(present: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    """(start, stop) index ranges of consecutive True values, at least ``min_len`` long, bottom (low z index) first."""
    labels, n = ndimage.label(present)
    out = []
    for sl in ndimage.find_objects(labels):
        if sl[0].stop - sl[0].start >= min_len:
            out.append((sl[0].start, sl[0].stop))
    return out


def _in_slices(mask: np.ndarray, start: int, stop: int) -> np.ndarray:
    out = np.zeros_like(mask)
    out[start:stop] = mask[start:stop]
    return out
