"""Built-in anatomy from the CT (HU, resampled onto the PET grid) and the PET (SUV).

Thresholds and proportions only: no model weights, no network. Arrays are numpy
``z, y, x`` on the PET grid, assumed axial with rows running anterior -> posterior
and columns right -> left (the DICOM axial default); levels are LPS z in mm.

* body: HU > -500, largest component, holes filled per slice (no opening: thin walls must stay closed);
* lungs: air (HU -960..-400) in components over 150 ml of median lung density, not reaching
  down near the pelvic inlet (stool mixed with gas is not lung), nor centred at the level of their
  bases or below (gas in the stomach or colon under the diaphragm);
* bone: HU > 150 inside the body, holes of up to 25 cm² filled per slice (fatty marrow inside
  a cortex is bone; the pelvic cavity, enclosed by the pelvic ring in axial slices, is not);
* spine: bone in a midline strip; vertebral bodies are its runs along z,
  the sacrum the lowest run, L5 the one above it and so on upwards;
* hips (iliac wings, acetabula, pubis) and femora: bone lateral to the spine
  below the sacral promontory; femoral heads where both meet;
* urinary bladder: water-density (HU -20..30) component of the low pelvis
  between the acetabula, out to its half-water edge where the PET shows urine;
* prostate (intact gland): soft-tissue component of 8-120 ml on the midline within 6 cm
  behind the pubis, between the symphysis bottom and the bladder (absent after prostatectomy);
* PET-avid organs (liver, spleen, kidneys, parotid and submandibular glands):
  the largest avid soft-tissue component in the box where each organ lies;
* bowel: diffuse PET uptake of the abdomen and pelvis outside bone and the other organs
  (see ``bowel_uptake``);
* bowel gas: gas enclosed in the body below the lung apices that joins neither the lungs nor the
  air outside (see ``bowel_gas``).

Levels (docs/classification.md#landmark-levels): aortic bifurcation = L4/L5 disc, common
iliac bifurcation = L5/S1 disc; pelvic inlet = sacral promontory; symphysis
top / bottom from the pubic bone; diaphragm = lung base.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from skimage.morphology import convex_hull_image

from localize.anatomy.cardiovascular import aorta_mask, heart_mask
from localize.anatomy.checks import (
    GLAND_EVIDENCE_ML,
    PITCH_RATIO,
    VERTEBRA_HEIGHT_MM,
    gland_problem,
    lung_problem,
    plausible_vertebrae,
)
from localize.anatomy.ct_context import CTContext, CTParts
from localize.anatomy.grids import bounding_box
from localize.anatomy.slices import fill_slices, fill_small_holes
from localize.anatomy.spine import BODY_AHEAD_MM, Spine, body_per_slice, find_spine
from localize.detection.metrics import ball, robust_mean_sd, zyx_to_lps

BONE_HU = 150.0
# Metal (a hip prosthesis reads 3000 HU and more, cortical bone under 2000 HU [R]) throws bright and dark streaks
# along lines through it across its slices, the bright ones above BONE_HU 10-20 cm away. The pelvis and the
# spine are mirror images about the midline, a streak through a hip is not: in a slice holding metal, bone is
# dense voxels whose mirror image about the midline lies within MIRROR_MM of bone (the prosthesis mirrors the
# other femoral head) [REC: training seed 32, left hip prosthesis: streaks made the pubic symphysis 139 mm tall].
METAL_HU = 2500.0
MIRROR_MM = 10.0
LUNG_MIN_HU = -960.0  # aerated lung is about -850 HU, air -1000 HU [REC]
FLUID_HU = (-20.0, 30.0)
# Adipose tissue: -190 to -30 HU (Kvist et al. Am J Clin Nutr 1988;48:1351-61; on PET/CT's own CT, partial volume
# included, -140 to -30: Kim et al. Nucl Med Mol Imaging 2012;46:294-9; the lower bound of the first keeps the noisy
# fat of a low-dose CT). Bowel lumen holds gas, fluid or stool, not fat: the fat between loops and round a node is no
# lumen (``localize.detection.physiology.walled_lumen``).
FAT_HU = (-190.0, -30.0)
BLADDER_MIN_FLUID_ML = 10.0  # a fluid component smaller than this is no bladder to take for the urine [REC]
SOFT_HU = (-30.0, 150.0)
KIDNEY_MAX_HU = 300.0  # enhanced renal cortex and medulla on portal-venous CT stay below [REC]


def ct_on_grid(ct: sitk.Image, grid: sitk.Image) -> np.ndarray:
    """CT HU resampled (linear) onto ``grid`` as float32 z, y, x; outside the CT is air (-1000)."""
    out = sitk.Resample(ct, grid, sitk.Transform(), sitk.sitkLinear, -1000.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)


def _nearest(mask: np.ndarray, target: np.ndarray | None, spacing: np.ndarray, min_voxels: float) -> np.ndarray:
    """The 6-connected component of ``mask`` (bool z, y, x; ``spacing`` mm) of at least ``min_voxels`` nearest
    ``target`` (bool, the same grid); the largest component when ``target`` is None or empty, or none is as large."""
    labels, n = ndimage.label(mask)
    sizes = _sizes(labels, n)
    large = np.flatnonzero(sizes >= min_voxels)
    if target is None or not target.any() or large.size == 0:
        return labels == int(np.argmax(sizes)) + 1
    distance = ndimage.distance_transform_edt(~target, sampling=spacing)
    nearest = ndimage.minimum(distance, labels, large + 1)
    return labels == int(large[int(np.argmin(nearest))]) + 1


def _largest(mask: np.ndarray) -> np.ndarray:
    """The largest 6-connected component of ``mask`` (the first of equals), labelled within its bounding box."""
    box = bounding_box(mask)
    if box is None:
        return mask
    labels, n = ndimage.label(mask[box])
    out = np.zeros_like(mask)
    out[box] = labels == int(np.argmax(_sizes(labels, n))) + 1
    return out


def _sizes(labels: np.ndarray, n: int) -> np.ndarray:
    """Voxel count of each label 1..``n`` of ``labels``."""
    return np.bincount(labels.ravel(), minlength=n + 1)[1:]


def axis_mm(grid: sitk.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LPS (z, y, x) mm of the voxel centres along each numpy axis (axis-aligned grid)."""
    nz, ny, nx = grid.GetSize()[::-1]
    z = zyx_to_lps(grid, np.stack([np.arange(nz), np.zeros(nz), np.zeros(nz)], 1))[:, 2]
    y = zyx_to_lps(grid, np.stack([np.zeros(ny), np.arange(ny), np.zeros(ny)], 1))[:, 1]
    x = zyx_to_lps(grid, np.stack([np.zeros(nx), np.zeros(nx), np.arange(nx)], 1))[:, 0]
    return z, y, x


def ct_anatomy(hu: np.ndarray, suv: np.ndarray, grid: sitk.Image, ct: sitk.Image | None = None
               ) -> tuple[CTParts, float]:
    """(masks, levels z mm, warnings and dropped structures; midline x mm) from CT ``hu`` and PET ``suv``
    arrays on ``grid``.

    The warnings name each structure left out because it failed its own check, and why; so
    does ``dropped`` (structure -> why). Levels include ``no_lung_below``, the
    top of the CT's body, when the field shows no lung and no lung candidate was dropped.

    ``ct`` (HU, its own grid) is searched for the disc gaps of the spine; without it
    ``hu`` (on ``grid``) is used, which misses the thin thoracic discs on a coarse grid.
    """
    ctx = ct_context(hu, suv, grid)
    body, z_mm, x_mm, midline_x = ctx.body, ctx.z_mm, ctx.x_mm, ctx.midline_x_mm
    found = CTParts(masks={"body": body, "bone": ctx.bone})
    masks, levels = found.masks, found.levels
    right_side = x_mm[None, None, :] < midline_x  # LPS: +x is the patient's left
    lungs, rejected = _lungs(ctx)
    found.add(rejected)
    why = lung_problem(lungs & ~right_side, lungs & right_side, body, z_mm, x_mm, midline_x) if lungs.any() else None
    if why:
        found.add(CTParts.rejected(["lung_left", "lung_right"], why))
        lungs = np.zeros_like(lungs)
    ct_native = ct if ct is not None else _image_like(hu, grid)
    column = find_spine(ct_native, midline_x, _body_centre_y(body, ctx.y_mm))  # its profile and segments
    lung_bottom = float(z_mm[np.flatnonzero(lungs.any((1, 2)))].min()) if lungs.any() else None
    found.add(_spine_and_pelvis(ctx, column, lung_bottom))
    if lung_bottom is not None:
        masks["lung_left"] = lungs & ~right_side
        masks["lung_right"] = lungs & right_side
        if lung_bottom > float(z_mm.min()):
            levels["diaphragm"] = lung_bottom
            if masks["lung_right"].any():  # the right dome, over the liver
                levels["diaphragm_right"] = float(z_mm[np.flatnonzero(masks["lung_right"].any((1, 2)))].min())
        else:
            found.warnings.append("no diaphragm level: the lungs reach the lowest slice, so their bases lie below "
                                  "the field")
    else:
        found.warnings.append("no lungs found: no diaphragm level (a lesion is called supradiaphragmatic only "
                              "above it)")
        if not any(name.startswith("lung") for name in found.dropped):
            levels["no_lung_below"] = float(z_mm[np.flatnonzero(body.any((1, 2)))].max())
    bladder = _bladder(ctx, levels, masks.get("pubic_symphysis"))
    if bladder is not None:
        masks["urinary_bladder"] = bladder
    masks.update(_heart_and_aorta(ctx, lungs, masks, levels))
    found.add(_prostate(ctx, masks, levels))
    masks.update(_avid_organs(ctx, masks, levels, lung_bottom))
    masks.update(_avid_pancreas(ctx, masks, levels))
    bowel = bowel_uptake(suv, hu, body & ~ndimage.binary_dilation(_union(masks, _NOT_BOWEL, body.shape), iterations=1),
                         ctx.voxel_ml)
    if bowel.any():
        masks["bowel"] = bowel
    if lung_bottom is not None or "no_lung_below" in levels:  # lungs dropped: their air is not told from gas
        gas = bowel_gas(hu, body, lungs, z_mm)
        if gas.any():
            masks["bowel_gas"] = gas
    masks["fat"] = body & (hu >= FAT_HU[0]) & (hu <= FAT_HU[1])
    return found, midline_x


def mirrored(mask: np.ndarray, x_mm: np.ndarray, midline_x_mm: float, tolerance_mm: float,
             spacing_yx: np.ndarray) -> np.ndarray:
    """``mask`` (bool z, y, x; LPS x of its columns ``x_mm``, evenly spaced either way; ``spacing_yx`` mm)
    mirrored about ``midline_x_mm``, grown in-plane by ``tolerance_mm``; False where the mirror image lies
    outside the grid."""
    step = float(x_mm[1] - x_mm[0])
    columns = np.round((2.0 * midline_x_mm - x_mm - x_mm[0]) / step).astype(int)
    inside = (columns >= 0) & (columns < len(x_mm))
    flipped = np.zeros_like(mask)
    flipped[:, :, inside] = mask[:, :, columns[inside]]
    disk = ball(tolerance_mm, np.array([1.0, *spacing_yx]))
    return ndimage.binary_dilation(flipped, structure=disk[disk.shape[0] // 2][None])


def ct_context(hu: np.ndarray, suv: np.ndarray, grid: sitk.Image) -> CTContext:
    """The ``CTContext`` of CT ``hu`` and PET ``suv`` (z, y, x on ``grid``): its axes, body, bone and midline.

    body: HU > -500, largest component, holes filled per slice; bone: HU > ``BONE_HU`` in the body,
    small holes (marrow) filled per slice, in a slice holding metal only where mirrored bone lies within
    ``MIRROR_MM`` (see METAL_HU); midline: the body's centre in x, weighted by slice (robust to arms).
    """
    spacing = np.array(grid.GetSpacing()[::-1])
    z_mm, y_mm, x_mm = axis_mm(grid)
    body = fill_slices(_largest(hu > -500))
    bone = fill_small_holes(ndimage.binary_closing((hu > BONE_HU) & body, iterations=1) & body,
                            MARROW_HOLE_MM2 / float(spacing[1] * spacing[2]))
    midline_x = float(np.average(x_mm, weights=body.sum((0, 1)) + 1e-9))
    metal = (hu > METAL_HU).any((1, 2))
    if metal.any():
        bone[metal] &= mirrored(bone[metal], x_mm, midline_x, MIRROR_MM, spacing[1:])
    return CTContext(hu=hu, suv=suv, grid=grid, spacing=spacing, z_mm=z_mm, y_mm=y_mm, x_mm=x_mm,
                     voxel_ml=float(np.prod(spacing)) / 1000.0, body=body, bone=bone, midline_x_mm=midline_x)


# Lungs: parenchyma density (HU -960..-400; pure air outside the patient and in bowel gas is ~-1000) in
# components over LUNG_MIN_ML. Aerated lung reads about -850 HU; stool mixed with gas and the blurred rim
# of a gas pocket fill the same band but centre higher [REC].
LUNG_MIN_ML = 150.0
# A lung base cut by the top of an abdominal field is a costophrenic recess: tens of ml, whose lowest and
# largest part is the posterior recess, in the back third of the body beside the spine [R: Gray's Anatomy];
# gas in the colon (which can read -900 HU, like the air around the patient on some scanners) lies in front
# of it. Training seed 20 (pelvis field, its top through the descending colon): 41 ml of gas at -895 HU
# taken for a lung base dropped the whole pelvis [REC].
LUNG_BASE_MIN_ML = 20.0
LUNG_MAX_MEDIAN_HU = -700.0
# Under the domes of the diaphragm, beside the posterior recesses, lie the gastric fundus and the colon's
# flexures, and the descending colon runs down from there; their gas can fill hundreds of ml [R: Gray's
# Anatomy]. A lung in view whole spans the thorax from its apex to its base, and the other lung spans
# nearly the same levels (the right dome lies 1-2 cm higher): a candidate centred at the level of the lowest
# LUNG_BASE_BAND of the largest whole candidate's height, or below it, is gas under the diaphragm. Training
# seeds 1-40: 8 of 20 whole-body studies had 150-790 ml of colon gas at -900 HU taken for lung, which put
# the diaphragm 6-30 cm low (or dropped the lungs as reaching the iliac crests) and hid the liver [REC].
LUNG_BASE_BAND = 0.2


def _outline(body: np.ndarray) -> np.ndarray:
    """The convex outline of ``body`` (bool z, y, x) in each axial slice: what the skin encloses, lungs
    included even where a mask of the body lets them through to the outside."""
    out = np.zeros_like(body)
    for k in np.flatnonzero(body.any((1, 2))):
        out[k] = convex_hull_image(body[k])
    return out


def _lungs(ctx: CTContext) -> tuple[np.ndarray, CTParts]:
    """(the lungs (bool z, y, x): large components of the parenchyma band whose median is aerated lung,
    the candidates left out). A small component counts only as a lung base cut by the field's top slice
    that reaches the back third of the body (``LUNG_BASE_MIN_ML``); one mostly outside the body's convex
    outline is the air around the patient; one centred at the level of the lungs' bases or below is gas
    under the diaphragm (``LUNG_BASE_BAND``)."""
    hu, voxel_ml, z_mm = ctx.hu, ctx.voxel_ml, ctx.z_mm
    rejected = CTParts()
    air = ndimage.binary_opening((hu < -400) & (hu > LUNG_MIN_HU), iterations=1)  # not the skin's partial volume
    labels, _ = ndimage.label(air)
    lungs = np.zeros_like(air)
    kept: list[tuple[tuple[slice, ...], np.ndarray, float, bool]] = []  # box, part, ml, cut by the field
    top = int(np.flatnonzero(ctx.body.any((1, 2))).max()) + 1 if ctx.body.any() else 0
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        part = labels[box] == index
        volume_ml = part.sum() * voxel_ml
        if volume_ml > LUNG_BASE_MIN_ML and np.count_nonzero(part & _outline(ctx.body[box])) < 0.5 * part.sum():
            continue  # the air around the patient (it reads -960..-900 HU on some scanners and grids) [REC]
        at_top = box[0].stop == top  # a lung base that the field's top slice cuts: as small as it is cut
        if volume_ml <= (LUNG_BASE_MIN_ML if at_top else LUNG_MIN_ML):
            continue
        if volume_ml <= LUNG_MIN_ML and not _in_back_third(part, ctx.body[box[0]], ctx.y_mm, box[1]):
            continue  # gas in the colon at the field's top: a lung base cut there is a posterior recess
        median_hu = float(np.median(hu[box][part]))
        if median_hu <= LUNG_MAX_MEDIAN_HU:
            kept.append((box, part, volume_ml, at_top or box[0].start == 0))
            continue
        bottom = float(z_mm[box[0]][part.any((1, 2))].min())
        rejected.add(CTParts.rejected([f"lung candidate of {volume_ml:.0f} ml (lowest at z {bottom:.0f} mm)"],
                                      f"median {median_hu:.0f} HU is not aerated lung (about -850 HU)"))
    largest = max(kept, key=lambda k: k[2], default=None)
    for box, part, volume_ml, _cut in kept:
        if largest is not None and not largest[3]:
            lung_z = z_mm[largest[0][0]][largest[1].any((1, 2))]
            centre_z = float(np.average(z_mm[box[0]], weights=part.sum((1, 2))))
            if centre_z <= lung_z.min() + LUNG_BASE_BAND * (lung_z.max() - lung_z.min()):
                rejected.add(CTParts.rejected(
                    [f"lung candidate of {volume_ml:.0f} ml (centred at z {centre_z:.0f} mm)"],
                    f"gas under the diaphragm: centred at the level of the base of the lungs ({lung_z.min():.0f} "
                    f"mm) or below"))
                continue
        lungs[box] |= part
    return lungs, rejected


# Marrow cavities in an axial slice are smaller than this (adult lumbar body ~14 cm², femoral head
# ~18 cm² including cortex); the pelvic cavity inside the pelvic ring is over 80 cm² [REC].
MARROW_HOLE_MM2 = 2500.0
# Bowel uptake (docs/detection.md#physiological-uptake-psma: small bowel and colon take up PSMA ligands) [REC]: a
# connected region of at least BOWEL_MIN_ML above BOWEL_BACKGROUND_FACTOR x the soft-tissue median SUV whose 95th
# percentile is at most BOWEL_FLATNESS x its median: a plateau many centimetres long, unlike a node (a blurred sphere
# whose region at that level is mostly its own tail: small, and peaked).
BOWEL_MIN_ML = 15.0
BOWEL_BACKGROUND_FACTOR = 2.5
BOWEL_FLATNESS = 2.0
EDGE_FRACTION = 0.3  # an organ's rim reaches down to this fraction of its box's hottest uptake [REC]
POLE_FRACTION = 0.2  # a pole cut off by a rib is a small part of its organ [REC]
RIB_GAP_MM = 15.0  # a rib (about 1 cm thick in an adult) with its blur on the CT can cut an organ's pole off [REC]
# Kidneys below a field without lungs: a ptotic kidney's centre can lie at the level of L4-L5 and its lower
# pole near the iliac crest [R: Gray's Anatomy, kidneys T12-L3, 2-3 cm lower on standing]; a lower pole cut by
# the field's top slice can hold a few ml; PSMA ligands and fluciclovine make the cortex several times the
# soft tissue (docs/detection.md#physiological-uptake-psma, #physiological-uptake-fluciclovine) [REC].
KIDNEY_BELOW_INLET_MM = 20.0
# The kidneys lie in the paravertebral gutters: the centre of each behind the front of the vertebral bodies,
# its anterior lip at most about half a kidney's depth (3-4 cm with its rotation) ahead of it [R: Gray's Anatomy,
# kidneys, relations] [REC].
KIDNEY_AHEAD_OF_SPINE_MM = 40.0
KIDNEY_POLE_MIN_ML = 2.0
KIDNEY_OVER_SOFT = 4.0
# An adult kidney is 10-13 cm long, 5-7.5 cm wide and 2.5-3 cm thick [R: Gray's Anatomy]: its axial section
# (width x depth, turned in the renal fossa) stays under about 40 cm²; a spleen's reaches 60-100 cm² [REC].
KIDNEY_SECTION_MM2 = 5000.0
KIDNEY_SINUS_MM = 15.0  # the renal sinus fat between the cortex of the two lips of a pole [REC]
SACRUM_MIN_MM = 50.0  # the adult sacrum is ~10 cm from promontory to apex [R: Gray's Anatomy]; a coccyx is under 4 cm
# The first sacral vertebra's alae meet both hip bones at the sacroiliac joints, so in its axial slices the bone
# joined to the vertebral body spans the pelvic ring (about 25 cm; the joint space, 2-4 mm, is bridged at 4 mm
# voxels); a lumbar body with its transverse processes spans under 10 cm, 15 cm where one touches an iliac
# crest [R: Gray's Anatomy]. A residual S1/S2 disc parts S1 from the rest of the sacrum on the spine profile:
# segments up to SACRUM_REACH_MM above the sacrum whose joined bone spans SACRAL_RING_MM or more are sacrum
# too [REC: training seeds 13 and 16 named S1 as L5 without it].
SACRAL_RING_MM = 200.0
SACRAL_GAP_MM = 10.0  # slices without bone in the strip bridged below a segment: the sacrum's plate leaves the strip's
# section between its foramina and its curve [REC: real CT tests/data/totalsegmentator-abdomen, S2-S4 at 3 mm]
SACRUM_REACH_MM = 60.0
# The bodies between dark bands are taken for the vertebrae only where the bone-area segments name fewer than
# this many plausibly, and only when at least this many of them are plausible in a row: evenly pitched bodies
# are a spine's, one of vertebral height is no evidence [REC: training seed 32, a dark band below a hip
# prosthesis's streaks named L5 45 mm low]. Higher up, the bone-area segments hold (a partial body at the top
# of the field fails alone) [REC: a first version taken wherever the top body alone failed named whole-body
# phantoms' solid bodies, whose dark bands are their cores, a vertebra off].
DISC_CHAIN_MIN = 3
PEELS = 3  # hotter neighbours taken out of an organ's box before giving up on it
_NOT_BOWEL = ("bone", "urinary_bladder", "kidney_left", "kidney_right", "liver", "spleen", "lung_left",
              "lung_right", "prostate", "heart", "aorta")  # blood is a plateau too (SUV ~2 with PSMA-11)


def _union(masks: Mapping[str, np.ndarray], names: tuple[str, ...], shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape, bool)
    for name in names:
        if name in masks:
            out |= masks[name]
    return out


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
    sizes = _sizes(labels, n) * voxel_ml
    keep = []
    for lab in index[sizes >= BOWEL_MIN_ML]:
        values = smooth[labels == lab]
        p95, median = np.percentile(values, [95, 50])
        if p95 <= BOWEL_FLATNESS * median:
            keep.append(lab)
    return np.isin(labels, keep)


# Gas: on the PET grid a voxel below GAS_HU is mostly gas (aerated lung -850 HU, fat -100 HU) [REC]. Gas
# enclosed in the body below the lung apices that joins neither the lungs (nor so the bronchi and trachea)
# nor the air outside (skin folds, the gap between arm and trunk) lies in the stomach or the bowel.
GAS_HU = -500.0


def bowel_gas(hu: np.ndarray, body: np.ndarray, lungs: np.ndarray, z_mm: np.ndarray) -> np.ndarray:
    """Gas in the stomach and bowel (bool z, y, x): the connected parts of HU < ``GAS_HU`` that lie inside
    the ``body``, touch neither the ``lungs`` nor the air outside the body, below the lungs' top (LPS z mm
    of each slice in ``z_mm``; anywhere when no lung is in view)."""
    air = hu < GAS_HU
    labels, _ = ndimage.label(air, structure=np.ones((3, 3, 3)))
    joined = ~body | ndimage.binary_dilation(lungs, iterations=1)
    gas = air & body & ~np.isin(labels, np.unique(labels[joined & air]))
    if lungs.any():
        gas &= (z_mm < z_mm[np.flatnonzero(lungs.any((1, 2)))].max())[:, None, None]
    return gas


def _prostate(ctx: CTContext, masks: Mapping[str, np.ndarray], levels: Mapping[str, float]) -> CTParts:
    """The intact prostate (and seminal vesicles): a soft-tissue organ on the midline behind the lower
    symphysis, below the bladder; or the soft tissue there left out, and why."""
    hu, body, spacing, voxel_ml = ctx.hu, ctx.body, ctx.spacing, ctx.voxel_ml
    z_mm, y_mm, x_mm, midline_x = ctx.z_mm, ctx.y_mm, ctx.x_mm, ctx.midline_x_mm
    out = CTParts()
    pubic = masks.get("pubic_symphysis")
    if pubic is None or "symphysis_bottom" not in levels:
        return out
    pubis_y = float(np.median(y_mm[np.argwhere(pubic)[:, 1]]))
    # the gland lies within ~6 cm behind the pubis (rectum behind it), from the symphysis bottom to the bladder neck
    z_lo, z_hi = levels["symphysis_bottom"], levels["symphysis_top"] + 30.0
    zsel, ysel = (z_mm >= z_lo) & (z_mm <= z_hi), (y_mm > pubis_y + 5.0) & (y_mm < pubis_y + 75.0)
    xsel = np.abs(x_mm - midline_x) <= 40.0
    crop = _crop_around(zsel, ysel, xsel, 1)  # all below lies in the box; the bladder is read a voxel around it
    if crop is None:
        return out
    z_crop, shape = z_mm[crop[0]], body.shape
    box = zsel[crop[0]][:, None, None] & ysel[crop[1]][None, :, None] & xsel[crop[2]][None, None, :]
    # from water density up: a small gland on a noisy non-contrast CT reads -20 to 60 HU voxel by voxel, with the
    # fat round it averaged in (tests/data/totalsegmentator-abdomen: median 10 HU); the urine is taken out below
    tissue = (hu[crop] > FLUID_HU[0]) & (hu[crop] < 100.0) & body[crop] & box & ~ctx.bone[crop]
    if "urinary_bladder" in masks:
        tissue &= ~ndimage.binary_dilation(masks["urinary_bladder"][crop], iterations=1)
    tissue[tissue.sum((1, 2)) > 0.6 * box.sum((1, 2))] = False  # slices filled wall to wall: pelvic floor, not a gland
    low = (z_crop <= levels["symphysis_top"])[:, None, None]
    soft = ndimage.binary_opening(tissue, iterations=1) & low
    if not soft.any():
        return out

    def problem(part: np.ndarray) -> str | None:
        behind = float(y_mm[crop[1]][np.argwhere(part)[:, 1]].mean()) - pubis_y
        return gland_problem(_in_volume(part, crop, shape), spacing, voxel_ml, z_mm, masks.get("urinary_bladder"),
                             behind)

    gland = _largest(soft)
    why = problem(gland)
    if why:  # the CT joins the gland to the pelvic floor's muscles: its uptake parts them (GLAND_OVER_MUSCLE)
        suv = ctx.suv[crop]
        avid = tissue & low & (suv >= GLAND_OVER_MUSCLE * float(np.median(suv[gland])))
        part = _largest(avid) if avid.any() else avid
        if part.any() and problem(part) is None:
            gland, why = part, None
    if why:
        if gland.sum() * voxel_ml >= GLAND_EVIDENCE_ML:  # smaller tissue is no evidence of a gland either way
            out.add(CTParts.rejected(["prostate"],
                                     f"the soft-tissue component behind the symphysis is not a gland: {why}"))
        return out
    out.masks["prostate"] = _in_volume(fill_slices(gland), crop, shape)
    # seminal vesicles: small soft-tissue parts above the gland's centre, within 3 cm of it
    near = ndimage.distance_transform_edt(~gland, sampling=spacing) <= 30.0
    centre_z = float(z_crop[np.argwhere(gland)[:, 0]].mean())
    labels, _ = ndimage.label(tissue & ~ndimage.binary_dilation(gland) & (z_crop > centre_z)[:, None, None])
    vesicles = np.zeros_like(gland)
    for lab, sl in enumerate(ndimage.find_objects(labels), start=1):
        part = labels[sl] == lab
        if 1.0 <= part.sum() * voxel_ml <= 20.0 and (near[sl] & part).any():
            vesicles[sl] |= part
    if vesicles.any():
        out.masks["seminal_vesicles"] = _in_volume(vesicles, crop, shape)
    return out


# The intact gland takes up PSMA ligands above the muscle round it (docs/detection.md#physiological-uptake-psma).
# On a non-contrast CT the pelvic floor's muscles join the gland; where they are most of what the CT shows, the
# part of it at least GLAND_OVER_MUSCLE x its median SUV is the gland when it passes the gland's checks (real CT
# tests/data/totalsegmentator-abdomen: a 21 ml component, 6.6 : 1, of muscle at SUV 0.6 and a gland at 2.5). Not
# a fraction of its hottest uptake: a lesion in the gland would be all of that [REC].
GLAND_OVER_MUSCLE = 2.0


def _in_volume(part: np.ndarray, crop: tuple[slice, ...], shape: tuple[int, ...]) -> np.ndarray:
    """A bool volume of ``shape`` holding ``part`` at ``crop``, False elsewhere."""
    out = np.zeros(shape, bool)
    out[crop] = part
    return out


# Pelvic bone (ilium, acetabulum, sacral alae) is thick: PELVIC_DEPTH_MM and more from its surface in
# places, which ribs and costal cartilage (about 1 cm thick) never are; it lies within PELVIC_REACH_MM of
# the midline, where the humeri of arms held down do not; and the lung bases lie far above it, over T12-L1
# while the sacral promontory is at S1 [REC: standard adult anatomy, iliac crests ~28 cm apart].
PELVIC_DEPTH_MM = 8.0
PELVIC_REACH_MM = 130.0
PELVIS_BELOW_LUNGS_MM = 100.0


def _ball(radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    """Boolean ball of ``radius_mm`` on a (z, y, x) voxel grid of ``spacing`` mm (a structuring element)."""
    r = np.maximum(np.floor(radius_mm / spacing), 1).astype(int)
    z, y, x = np.ogrid[-r[0]:r[0] + 1, -r[1]:r[1] + 1, -r[2]:r[2] + 1]
    return (z * spacing[0]) ** 2 + (y * spacing[1]) ** 2 + (x * spacing[2]) ** 2 <= radius_mm**2


def joined_width_mm(bone: np.ndarray, spine: np.ndarray, x_mm: np.ndarray, slices: np.ndarray) -> float:
    """Median over the ``slices`` (bool per z) of the left-right extent (mm) of the bone joined, in each
    axial slice, to the vertebral body (``spine``); 0 where a slice holds no spine."""
    widths = []
    for k in np.flatnonzero(slices):
        labels, _ = ndimage.label(bone[k])
        joined = np.isin(labels, np.unique(labels[spine[k] & (labels > 0)]))
        columns = np.flatnonzero(joined.any(0))
        widths.append(float(x_mm[columns].max() - x_mm[columns].min()) if columns.size else 0.0)
    return float(np.median(widths)) if widths else 0.0


def _spine_and_pelvis(ctx: CTContext, column_profile: Spine, lung_bottom_mm: float | None) -> CTParts:
    """Spine, sacrum, vertebrae (named upwards from the sacrum), hips and pubis on the PET grid, with
    their levels; ``column_profile``: the spine's profile and its segments between disc gaps (LPS z mm,
    bottom up). A segment above the sacrum too tall for one vertebral body is split at its deepest dip.

    Without a sacrum (thick pelvic bone beside the lowest spinal segment, below the lungs) no
    vertebra is named and no pelvic structure is built; a warning says so.
    """
    bone, spacing, z_mm, y_mm, x_mm, midline_x = ctx.bone, ctx.spacing, ctx.z_mm, ctx.y_mm, ctx.x_mm, ctx.midline_x_mm
    segments = column_profile.segments
    out = CTParts()
    masks, levels = out.masks, out.levels
    strip = np.abs(x_mm - midline_x) <= 20.0
    column = bone & strip[None, None, :]
    if not column.any() or not segments:
        return out
    # vertebral bodies: the front of the body's bone in the midline strip in each slice (``body_per_slice``)
    behind = (y_mm >= _body_centre_y(ctx.body, y_mm) - BODY_AHEAD_MM)[None, :, None]
    column = body_per_slice(column & behind, ctx.hu, y_mm)
    depth_vox = int(round(30.0 / spacing[1]))
    spine = np.zeros_like(bone)
    for k in np.flatnonzero(column.any((1, 2))):
        first = int(np.flatnonzero(column[k].any(1)).min())
        spine[k, first : first + depth_vox] = column[k, first : first + depth_vox]
    masks["spine"] = spine
    lateral = bone & ~(np.abs(x_mm - midline_x) <= 30.0)[None, None, :]
    thick = ndimage.binary_erosion(lateral & (np.abs(x_mm - midline_x) <= PELVIC_REACH_MM)[None, None, :],
                                   structure=_ball(PELVIC_DEPTH_MM, spacing))
    pelvic_z = z_mm[thick.any((1, 2))]
    if lung_bottom_mm is not None:
        pelvic_z = pelvic_z[pelvic_z < lung_bottom_mm - PELVIS_BELOW_LUNGS_MM]
    # the sacrum: the lowest segment of sacral height, with the thin bone that continues it down (an
    # osteoporotic S2-S5 is a plate of a few cm² in the midline strip, below the gap threshold), with thick
    # pelvic bone at its levels (a coccygeal fragment below it has the ischia beside it too)
    bottoms = [column_profile.reach_down(z0, SACRAL_GAP_MM) for z0, _ in segments]
    i = next((j for j, (z0, z1) in enumerate(segments)
              if z1 - bottoms[j] >= SACRUM_MIN_MM and pelvic_z.size and ((pelvic_z >= z0) & (pelvic_z <= z1)).any()),
             None)
    if i is None:
        out.warnings.append("vertebrae not named and no pelvis built: no sacrum (thick pelvic bone beside the lowest "
                            "spinal segment, below the lungs) in view")
        return out
    top = i
    for j in range(i + 1, len(segments)):
        if segments[j][0] - segments[i][1] > SACRUM_REACH_MM:
            break
        # a segment of sacral height by itself, just above (the dip between them too short for a disc): the
        # sacrum, and the segment below its apex and coccyx reaching the pubis
        whole = segments[j][1] - segments[j][0] >= SACRUM_MIN_MM and segments[j][0] - segments[top][1] <= SACRAL_GAP_MM
        if whole or joined_width_mm(bone, spine, x_mm, (z_mm >= segments[j][0]) & (z_mm <= segments[j][1])) \
                >= SACRAL_RING_MM:
            top = j
    sacrum_z = (segments[i][0], segments[top][1])  # below it the strip can reach the coccyx and the pubis
    masks["sacrum"] = _in_z(spine, z_mm, *sacrum_z)
    levels["pelvic_inlet"] = sacrum_z[1]  # sacral promontory
    above: list[tuple[float, float] | None] = list(
        column_profile.split_tall(segments[top + 1 :], VERTEBRA_HEIGHT_MM[1], PITCH_RATIO))
    if plausible_vertebrae(above) < min(len(above), DISC_CHAIN_MIN):
        # an osteoporotic spine's bone-area segments are the endplates round its discs, not its bodies: when
        # they fail from the lowest lumbar vertebrae, the bodies between the discs read as dark bands, when at
        # least DISC_CHAIN_MIN of them are plausible (spine.py, module notes)
        between = column_profile.between_discs(sacrum_z[1])
        if plausible_vertebrae(between) >= DISC_CHAIN_MIN:
            above = between
            if above[0] is None:
                out.warnings.append("vertebrae_L5 not named: no lumbosacral disc seen between the discs above the "
                                    "sacrum (L4 and up named between them)")
    for name, body in zip(VERTEBRA_NAMES, above):
        if body is not None:
            masks[f"vertebrae_{name}"] = _in_z(spine, z_mm, *body)
            levels[name] = (body[0] + body[1]) / 2
    if above and above[0] is not None:
        # L5/S1 disc (docs/classification.md#landmark-levels)
        levels["common_iliac_bifurcation"] = (sacrum_z[1] + above[0][0]) / 2
    if len(above) >= 2 and above[1] is not None:
        # "typically at L4 (L4-L5)" (docs/classification.md#landmark-levels): the lower quarter of L4 [REC]
        l4_bottom, l4_top = above[1]
        levels["aortic_bifurcation"] = l4_bottom + 0.25 * (l4_top - l4_bottom)
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
        pubic = _largest(pubic)  # not a stray fragment (a calcification, the edge of a hip) above or below it
        masks["pubic_symphysis"] = pubic
        zs = np.flatnonzero(pubic.any((1, 2)))
        levels["symphysis_top"], levels["symphysis_bottom"] = float(z_mm[zs].max()), float(z_mm[zs].min())
    return out


VERTEBRA_NAMES = ("L5", "L4", "L3", "L2", "L1", "T12", "T11", "T10", "T9", "T8", "T7", "T6", "T5", "T4", "T3", "T2",
                  "T1")


def _in_back_third(part: np.ndarray, body: np.ndarray, y_mm: np.ndarray, rows: slice) -> bool:
    """Whether ``part`` (bool z, y, x; its rows ``rows`` of ``y_mm``) reaches the back third of ``body`` (bool z,
    y, x, the same slices, whole rows) from front to back."""
    body_rows = np.flatnonzero(body.any((0, 2)))
    if not body_rows.size:
        return False
    front, back = float(y_mm[body_rows].min()), float(y_mm[body_rows].max())
    part_back = float(y_mm[rows][np.flatnonzero(part.any((0, 2)))].max())
    return part_back >= front + 2.0 / 3.0 * (back - front)


def _spine_front_y(spine: np.ndarray | None, y_mm: np.ndarray, zsel: np.ndarray) -> float | None:
    """LPS y (mm) of the front of the vertebral bodies: the median, over the slices ``zsel`` (bool per slice)
    that hold ``spine`` (bool z, y, x), of its most anterior row; None without such a slice."""
    if spine is None:
        return None
    rows = [np.flatnonzero(spine[k].any(1)) for k in np.flatnonzero(zsel)]
    fronts = [float(y_mm[r].min()) for r in rows if r.size]
    return float(np.median(fronts)) if fronts else None


def _body_centre_y(body: np.ndarray, y_mm: np.ndarray) -> float:
    """AP centre (LPS y, mm) of the body, over all slices."""
    return float(np.average(y_mm, weights=body.sum((0, 2)) + 1e-9))


def _in_z(mask: np.ndarray, z_mm: np.ndarray, z0: float, z1: float) -> np.ndarray:
    """``mask`` in the slices whose centre lies within [z0, z1] mm (half a slice of tolerance)."""
    half = abs(float(z_mm[1] - z_mm[0])) / 2 if len(z_mm) > 1 else 0.0
    out = np.zeros_like(mask)
    keep = (z_mm >= z0 - half) & (z_mm <= z1 + half)
    out[keep] = mask[keep]
    return out


def _bladder(ctx: CTContext, levels: Mapping[str, float], symphysis: np.ndarray | None) -> np.ndarray | None:
    """Urine (bool z, y, x): the water-density component of the low pelvis nearest the pubic symphysis
    (``symphysis``, bool z, y, x), out to its partial-volume edge; None when not found.

    The bladder lies against the back of the symphysis, across the thin retropubic space; fluid in the
    rectum, the sigmoid or a pelvic loop lies behind or above it, and can hold more fluid than a small
    bladder [R: Gray's Anatomy, the urinary bladder]. So of the fluid components of at least
    ``BLADDER_MIN_FLUID_ML``, the one nearest the symphysis is the urine (the largest without a symphysis).
    The fluid range finds the urine; its edge is then placed where the CT reads half water,
    half fat (``BLADDER_EDGE_HU``), one voxel out at most and only where the PET shows urine
    (SUV at least ``BLADDER_EDGE_FRACTION`` x the urine median), so the mask is as wide on
    every side, also where the grid cuts the base or dome between two slices. Tissue at the
    wall that is cooler than urine (a recurrence at the bladder base) stays outside, and so does
    fluid-density tissue that the PET shows cooler than that edge: urine is mixed and its activity
    even, while a prostate can read as water on a non-contrast CT (tests/data/totalsegmentator-abdomen:
    10 HU, the urine 13), beneath the bladder and joined to it, and so can a fluid-filled loop at the
    dome on a low-dose CT (training seed 20) [REC].
    """
    x_mm, z_mm, midline_x = ctx.x_mm, ctx.z_mm, ctx.midline_x_mm
    if "symphysis_top" not in levels or "pelvic_inlet" not in levels:
        return None
    window = (z_mm >= levels["symphysis_bottom"]) & (z_mm <= levels["pelvic_inlet"])
    near = np.abs(x_mm - midline_x) <= 60.0
    # the filters below read at most 3 voxels beyond the window: work on it grown by 3
    crop = _crop_around(window, np.ones(ctx.body.shape[1], bool), near, 3)
    if crop is None:
        return None
    hu, suv, body = ctx.hu[crop], ctx.suv[crop], ctx.body[crop]
    fluid = (hu > FLUID_HU[0]) & (hu < FLUID_HU[1]) & body
    fluid = ndimage.binary_opening(ndimage.median_filter(fluid.astype(np.uint8), size=3).astype(bool), iterations=1)
    fluid &= window[crop[0]][:, None, None] & near[crop[2]][None, None, :]
    if not fluid.any():
        return None
    target, fewest = None if symphysis is None else symphysis[crop], BLADDER_MIN_FLUID_ML / ctx.voxel_ml
    urine = _nearest(fluid, target, ctx.spacing, fewest)
    cool = suv < BLADDER_EDGE_FRACTION * float(np.median(suv[urine]))  # fewer than half the voxels: never all
    if (urine & cool).any():
        urine = _nearest(urine & ~cool, target, ctx.spacing, fewest)
    unlike = _unlike_urine(suv, urine, ctx.voxel_ml)
    if unlike.any():
        urine = _nearest(urine & ~unlike, target, ctx.spacing, fewest)
    edge = (ndimage.binary_dilation(urine) & body & (hu > BLADDER_EDGE_HU) & (hu < FLUID_HU[1]) & ~unlike
            & (suv >= BLADDER_EDGE_FRACTION * float(np.median(suv[urine]))))
    return _in_volume(urine | edge, crop, ctx.body.shape)


# Half water (~0 HU) and half fat (~-100 HU) reads about -50 HU [REC]: the partial-volume edge of the urine.
BLADDER_EDGE_HU = -50.0
BLADDER_EDGE_FRACTION = 0.4  # a blurred edge voxel of urine keeps about half its activity; a base lesion less [REC]
# Urine is mixed: its activity is even, within its noise. A body of UNLIKE_MIN_ML or more, thicker than a voxel's
# shell (the blurred edge is one), whose activity lies outside URINE_BAND x the urine's median and URINE_BAND_SD
# robust SD from it is tissue that the CT reads as water: on a non-contrast CT a prostate reads 10 HU
# (tests/data/totalsegmentator-abdomen, the urine 13) and joins the bladder's base, cooler than the urine under
# PSMA-1007 (SUV 2.5 against 5) and hotter under fluciclovine (2 against 1), where the edge's fraction does not part
# it [REC].
URINE_BAND = (0.7, 1.3)
URINE_BAND_SD = 3.0
UNLIKE_MIN_ML = 3.0


def _unlike_urine(suv: np.ndarray, urine: np.ndarray, voxel_ml: float) -> np.ndarray:
    """The bodies of ``urine`` (bool z, y, x) whose SUV departs from the urine's (see URINE_BAND), bool."""
    level, sd = robust_mean_sd(suv[urine])
    unlike = urine & ((suv < min(URINE_BAND[0] * level, level - URINE_BAND_SD * sd))
                      | (suv > max(URINE_BAND[1] * level, level + URINE_BAND_SD * sd)))
    labels, n = ndimage.label(ndimage.binary_opening(unlike, iterations=1))
    if n == 0:
        return np.zeros(urine.shape, bool)
    sizes = ndimage.sum_labels(np.ones(urine.shape), labels, np.arange(1, n + 1)) * voxel_ml
    return np.isin(labels, 1 + np.flatnonzero(sizes >= UNLIKE_MIN_ML))


def _avid_organs(ctx: CTContext, masks: Mapping[str, np.ndarray], levels: Mapping[str, float],
                 lung_bottom_mm: float | None) -> dict[str, np.ndarray]:
    """Liver, spleen, kidneys, salivary glands (name -> bool z, y, x): PET-avid soft tissue where each organ lies.

    Each organ has a box from the landmarks and a volume range [REC: adult organ volumes, liver
    1-2.5 l, spleen 0.1-0.6 l, kidney 0.1-0.3 l, parotid 15-40 ml, submandibular 5-15 ml]. In
    its box, the organ is the largest component above half the box's 99.5th percentile SUV
    within the range. The hottest organ of a box can be a neighbour (a kidney in the liver's
    box), so the boxes are revisited with the organs found so far taken out, until none is added.
    """
    hu, suv, body, spacing, voxel_ml = ctx.hu, ctx.suv, ctx.body, ctx.spacing, ctx.voxel_ml
    z_mm, y_mm, x_mm, midline_x = ctx.z_mm, ctx.y_mm, ctx.x_mm, ctx.midline_x_mm
    soft = (hu > SOFT_HU[0]) & (hu < SOFT_HU[1]) & body
    kidney_soft = kidney_tissue(hu, body, masks)
    dia = levels.get("diaphragm", lung_bottom_mm)  # the lung bases bound the boxes even below the field
    if dia is None and "no_lung_below" in levels and "pelvic_inlet" not in levels:
        dia = levels["no_lung_below"]  # a field of the upper abdomen, no lung in view: the diaphragm is above it
    if dia is None:
        return _kidneys_below_the_lungs(ctx, soft, kidney_soft, masks, levels)
    background = float(np.median(suv[soft])) if soft.any() else 0.0
    left, offset = x_mm > midline_x, np.abs(x_mm - midline_x)
    posterior = y_mm > _body_centre_y(body, y_mm)
    any_y = np.ones_like(y_mm, bool)
    # kidneys first: under PSMA ligands they are the hottest organ of the liver's and spleen's boxes
    boxes = {}
    # without named vertebrae: the lowest lung (the posterior costophrenic recess, at T12-L1) lies behind the
    # kidneys' upper poles [R: Gray's Anatomy, pleura and kidneys]; the lower poles lie about 200 mm below it
    top_kidney = levels.get("T11", dia)
    bottom_kidney = levels.get("L3", dia - 170) - 30
    if "pelvic_inlet" in levels:  # a ptotic kidney's lower pole reaches the iliac crest (as without lungs)
        bottom_kidney = min(bottom_kidney, levels["pelvic_inlet"] - KIDNEY_BELOW_INLET_MM)
    spine_front = _spine_front_y(masks.get("spine"), y_mm, (z_mm >= bottom_kidney) & (z_mm <= top_kidney))
    kidney_y = posterior if spine_front is None else y_mm >= spine_front - KIDNEY_AHEAD_OF_SPINE_MM
    for side, sel in (("left", left), ("right", ~left)):
        boxes[f"kidney_{side}"] = ((bottom_kidney, top_kidney), sel & (offset > 30) & (offset < 140), kidney_y,
                                   (60.0, 450.0))
    dome = levels.get("diaphragm_right", dia)
    boxes["liver"] = ((dome - 200, dome + 40), ~left | (offset < 40), any_y, (600.0, 3500.0))
    boxes["spleen"] = ((dia - 140, dia + 80), left & (offset > 50), any_y, (40.0, 800.0))
    top = float(z_mm[np.flatnonzero(body.any((1, 2)))].max())
    if top - dia > 250:  # the head and neck are in the field of view
        for side, sel in (("left", left), ("right", ~left)):
            boxes[f"parotid_gland_{side}"] = ((top - 110, top), sel & (offset > 25), any_y, (8.0, 80.0))
            boxes[f"submandibular_gland_{side}"] = ((top - 160, top - 60), sel & (offset > 15), any_y, (2.0, 30.0))
    taken = np.zeros_like(body)
    gap_vox = max(int(np.ceil(RIB_GAP_MM / float(spacing[1:].min()))), 1)
    organs: dict[str, np.ndarray] = {}
    parted: set[str] = set()  # kidneys parted from a neighbour, their rim grown once the neighbour is known
    for _ in range(3):
        found = False
        for name, ((z0, z1), xsel, ysel, size_ml) in boxes.items():
            if name in masks or name in organs:
                continue
            zsel = (z_mm >= z0) & (z_mm <= z1)
            # everything below stays within gap_vox + 3 voxels of the box: work on that crop
            crop = _crop_around(zsel, ysel, xsel, gap_vox + 3)
            if crop is None:
                continue
            tissue = (kidney_soft if name.startswith("kidney") else soft)[crop]
            zone = (zsel[crop[0]][:, None, None] & ysel[crop[1]][None, :, None] & xsel[crop[2]][None, None, :]
                    & tissue & ~taken[crop])
            found_in_zone = _organ_in_zone(zone, tissue & ~taken[crop], suv[crop], ctx.bone[crop], y_mm[crop[1]],
                                           background, size_ml, voxel_ml, gap_vox,
                                           spine_front if name.startswith("kidney") else None, spacing[1:])
            if found_in_zone is None:
                continue
            organ, rim_later = found_in_zone
            if rim_later:
                parted.add(name)
            organs[name] = _in_volume(fill_slices(organ), crop, body.shape)
            taken[crop] |= ndimage.binary_dilation(organs[name][crop])
            found = True
        if not found:
            break
    for name in ("kidney_left", "kidney_right"):
        if name in organs:
            others = np.logical_or.reduce([m for n, m in organs.items() if n != name] or [np.zeros_like(body)])
            if name in parted:
                rim = kidney_soft & ~others & (suv >= EDGE_FRACTION * float(np.percentile(suv[organs[name]], 99.5)))
                organs[name] = organs[name] | ndimage.binary_dilation(organs[name], iterations=2, mask=rim)
            organs[name] = whole_kidney(organs[name], kidney_soft & ~others, suv, spacing, voxel_ml)
    return organs


# A kidney's box spans the usual kidney levels (T11 to L3 - 30 mm); a low or long kidney reaches below it,
# and its pole left out of the mask is as hot as the kidney (a false lesion of SUV ~20). The kidney found in
# its box is completed by the kidney tissue connected to it as avid as the kidney's own body (its
# KIDNEY_GROW_PERCENTILE-th percentile SUV: where its edge was drawn; a fixed fraction of its median would
# let a faint fluciclovine kidney bleed into the muscle beside it), within KIDNEY_GROW_MM of it, as long
# as the whole stays within a kidney's volume [REC].
KIDNEY_GROW_PERCENTILE = 10.0
KIDNEY_GROW_MM = 60.0
KIDNEY_MAX_ML = 450.0


def whole_kidney(kidney: np.ndarray, tissue: np.ndarray, suv: np.ndarray, spacing: np.ndarray,
                 voxel_ml: float) -> np.ndarray:
    """``kidney`` (bool z, y, x) with the avid ``tissue`` connected to it beyond its box (see
    KIDNEY_GROW_PERCENTILE); unchanged when the whole would exceed ``KIDNEY_MAX_ML``."""
    level = float(np.percentile(suv[kidney], KIDNEY_GROW_PERCENTILE))
    pad = np.ceil(KIDNEY_GROW_MM / spacing).astype(int) + 1
    where = np.argwhere(kidney)
    crop = tuple(slice(max(int(a) - k, 0), int(b) + k + 1) for a, b, k in zip(where.min(0), where.max(0), pad))
    part = kidney[crop]
    near = ndimage.distance_transform_edt(~part, sampling=spacing) <= KIDNEY_GROW_MM
    grown = ndimage.binary_propagation(part, mask=part | (near & tissue[crop] & (suv[crop] >= level)))
    if grown.sum() * voxel_ml > KIDNEY_MAX_ML:
        return kidney
    out = kidney.copy()
    out[crop] = grown
    return out


def _crop_around(zsel: np.ndarray, ysel: np.ndarray, xsel: np.ndarray, pad: int) -> tuple[slice, ...] | None:
    """Index box (slices z, y, x) spanning the True entries of each axis selector, grown by ``pad`` voxels
    within the volume; None when a selector is all False."""
    out = []
    for sel in (zsel, ysel, xsel):
        index = np.flatnonzero(sel)
        if index.size == 0:
            return None
        out.append(slice(max(int(index[0]) - pad, 0), min(int(index[-1]) + 1 + pad, sel.size)))
    return tuple(out)


def _grown(box: tuple[slice, ...], pad: int, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """Index ``box`` grown by ``pad`` voxels on every side, within ``shape``."""
    return tuple(slice(max(b.start - pad, 0), min(b.stop + pad, n)) for b, n in zip(box, shape))


def _widest_section_mm2(mask: np.ndarray, spacing_yx: np.ndarray) -> float:
    """The largest axial section (mm²) of ``mask`` (bool z, y, x; ``spacing_yx`` in mm)."""
    return float(mask.sum((1, 2)).max() * np.prod(spacing_yx)) if mask.any() else 0.0


def _fitting_parts(avid: np.ndarray, y_mm: np.ndarray, size_ml: tuple[float, float], voxel_ml: float,
                   spine_front_y: float | None, spacing_yx: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(``avid``, its labelled parts, their volumes in ml, the indices of those that fit the organ) for
    ``_organ_in_zone``: a volume within ``size_ml``; for a kidney (``spine_front_y`` given) a centre behind the
    vertebral bodies' front and an axial section of at most ``KIDNEY_SECTION_MM2``."""
    labels, n = ndimage.label(ndimage.binary_opening(avid, iterations=1) if avid.sum() > 50 else avid)
    sizes = _sizes(labels, n) * voxel_ml
    fits = np.flatnonzero((sizes >= size_ml[0]) & (sizes <= size_ml[1]))
    if spine_front_y is not None and fits.size:
        # retroperitoneal: the kidney's centre lies no more anterior than the vertebral bodies [REC]
        centre_y = ndimage.mean(np.broadcast_to(y_mm[None, :, None], avid.shape), labels, fits + 1)
        fits = fits[np.asarray(centre_y) >= spine_front_y]
        # and its axial section is a kidney's, not a spleen's or a liver's cut by the box
        fits = np.array([f for f in fits if _widest_section_mm2(labels == f + 1, spacing_yx) <= KIDNEY_SECTION_MM2],
                        int)
    return avid, labels, sizes, fits


def _organ_in_zone(zone, tissue, suv, bone, y_mm, background, size_ml, voxel_ml, gap_vox, spine_front_y,
                   spacing_yx) -> tuple[np.ndarray, bool] | None:
    """The avid organ of ``zone`` (bool z, y, x) with its rim and poles, or None (see ``_avid_organs``); and
    whether it was parted from a neighbour more than half as avid (PSMA-1007's liver reads 10-12, more than half the
    kidneys' 15-25: docs/detection.md#physiological-uptake-psma), its rim then left to grow once that neighbour is
    known.

    ``tissue`` is where its rim may lie, ``bone`` the CT's bone, ``y_mm`` LPS y of the rows; ``size_ml``
    its volume range; ``spine_front_y`` (kidneys) the LPS y (mm) of the vertebral bodies' front, which the
    organ's centre lies behind, its largest axial section then at most ``KIDNEY_SECTION_MM2``; ``spacing_yx`` the
    in-plane voxel size (mm). All arrays share one crop, which holds ``zone`` grown by ``gap_vox`` + 3 voxels.
    """
    box = zone.copy()
    edge = EDGE_FRACTION
    for _peel in range(PEELS):  # a hotter neighbour too small or too large (pancreas tail): peel it off
        if box.sum() < 10:
            break
        ref = float(np.percentile(suv[box], 99.5))
        if ref <= 2.0 * background:
            break
        avid, labels, sizes, fits = _fitting_parts(box & (suv >= 0.5 * ref), y_mm, size_ml, voxel_ml, spine_front_y,
                                                   spacing_yx)
        if fits.size:
            break
        hottest = np.unique(labels[box & (suv >= ref)])
        if spine_front_y is not None and hottest.any():
            # a kidney joined at half its peak to a liver more than half as avid (PSMA-1007): parted half-way
            # between the joined part's median (the larger organ's plateau) and the peak
            level = 0.5 * (float(np.median(suv[np.isin(labels, hottest[hottest > 0])])) + ref)
            split = _fitting_parts(box & (suv >= level), y_mm, size_ml, voxel_ml, spine_front_y, spacing_yx)
            if split[3].size:
                avid, labels, sizes, fits = split
                edge = level / ref  # its rim is not grown into the neighbour it was parted from
                break
        # peel the parts that hold the box's hottest voxels (a kidney, a bone lesion): the organ's own noisy,
        # fragmented parts below them stay for the next reading
        box &= ~ndimage.binary_dilation(np.isin(labels, hottest[hottest > 0]) if hottest.any() else avid, iterations=2)
    else:
        return None
    if box.sum() < 10 or ref <= 2.0 * background or fits.size == 0:
        return None
    if edge > EDGE_FRACTION:  # parted from a neighbour: the part that holds the box's hottest voxels
        hottest = np.intersect1d(np.unique(labels[box & (suv >= ref)]), fits + 1)  # labels, from 1
        label = int(hottest[0]) if hottest.size else int(fits[np.argmax(sizes[fits])]) + 1
        organ = labels == label
    else:
        organ = labels == (int(fits[np.argmax(sizes[fits])]) + 1)
        # parts of the organ cut off by a rib or a vertebra crossing it (within 2 voxels) belong to it
        parts, _ = ndimage.label(avid)
        near = np.unique(parts[ndimage.binary_dilation(organ, iterations=2) & avid])
        organ |= np.isin(parts, near[near > 0])
    # the blurred rim (PET partial volume): soft tissue next to it down to EDGE_FRACTION x the reference (not
    # below the level that parted it from a neighbour)
    rim = tissue & (suv >= edge * ref)
    # a pole behind a rib: a small part (POLE_FRACTION of the organ at most) of its box's uptake down to the
    # rim level, reached from the organ across bone cooler than the rim; a part whose bone neighbour is
    # hotter than itself is a bone lesion's spill-out, a larger one a neighbouring organ
    cold_bone = bone & (suv < edge * ref)
    across = ndimage.binary_dilation(organ, iterations=gap_vox, mask=organ | cold_bone)
    parts, _ = ndimage.label(rim & zone)
    boxes = ndimage.find_objects(parts)
    for lab in np.unique(parts[ndimage.binary_dilation(across) & rim & zone]):
        box = _grown(boxes[lab - 1], 1, parts.shape)  # the part and its neighbours
        part = parts[box] == lab
        beside = ndimage.binary_dilation(part) & bone[box]
        if (part.sum() <= POLE_FRACTION * organ.sum()
                and not (beside.any() and suv[box][beside].max() > suv[box][part].max())):
            organ[box] |= part
    return organ | ndimage.binary_dilation(organ, iterations=2, mask=rim), edge > EDGE_FRACTION


def kidney_tissue(hu: np.ndarray, body: np.ndarray, masks: Mapping[str, np.ndarray]) -> np.ndarray:
    """Where a kidney can lie on CT: soft tissue up to ``KIDNEY_MAX_HU`` (the renal cortex enhances to
    150-250 HU on contrast CT, above ``BONE_HU``), outside the named bones grown by a voxel."""
    bones = _union(masks, ("hip_left", "hip_right", "sacrum", "spine", "pubic_symphysis"), body.shape)
    return (hu > SOFT_HU[0]) & (hu < KIDNEY_MAX_HU) & body & ~ndimage.binary_dilation(bones)


def _kidneys_below_the_lungs(ctx: CTContext, soft: np.ndarray, kidney_soft: np.ndarray, masks: Mapping[str, np.ndarray],
                             levels: Mapping[str, float]) -> dict[str, np.ndarray]:
    """Kidneys (name -> bool z, y, x) in a field whose top lies below the lungs (pelvis, lower abdomen), from
    the pelvic inlet up; ``soft``, ``kidney_soft``: soft tissue and where a kidney can lie on CT.

    Each side's kidney is the largest avid soft-tissue component beside the spine (30-140 mm off the
    midline, its centre no more anterior than the vertebral bodies), above the inlet less
    ``KIDNEY_BELOW_INLET_MM``, either of kidney volume or cut by the field's top slice (a lower pole,
    then at least ``KIDNEY_POLE_MIN_ML``), grown through the zone down to ``EDGE_FRACTION`` of it. Avid: at least half
    the side's 99.5th centile SUV and ``KIDNEY_OVER_SOFT`` x the median soft tissue. No lungs, no diaphragm: liver and
    spleen are not sought.
    """
    suv, spacing, voxel_ml = ctx.suv, ctx.spacing, ctx.voxel_ml
    z_mm, y_mm, x_mm, midline_x = ctx.z_mm, ctx.y_mm, ctx.x_mm, ctx.midline_x_mm
    kidneys: dict[str, np.ndarray] = {}
    inlet = levels.get("pelvic_inlet")
    if inlet is None or "spine" not in masks or not masks["spine"].any():
        return kidneys
    above = z_mm >= inlet - KIDNEY_BELOW_INLET_MM
    front = _spine_front_y(masks["spine"], y_mm, above)
    if front is None:
        return kidneys
    background = float(np.median(suv[soft])) if soft.any() else 0.0
    top_k = int(np.argmax(z_mm)) if kidney_soft[int(np.argmax(z_mm))].any() else None
    offset = np.abs(x_mm - midline_x)
    beside = (offset > 30) & (offset < 140)
    for side, sel in (("left", x_mm > midline_x), ("right", x_mm <= midline_x)):
        name = f"kidney_{side}"
        if name in masks:
            continue
        zone = (above[:, None, None] & (y_mm >= front - KIDNEY_AHEAD_OF_SPINE_MM)[None, :, None]
                & (sel & beside)[None, None, :] & kidney_soft)
        if zone.sum() < 10:
            continue
        ref = float(np.percentile(suv[zone], 99.5))
        if ref < KIDNEY_OVER_SOFT * background:
            continue
        avid = zone & (suv >= max(0.5 * ref, KIDNEY_OVER_SOFT * background))
        labels, n = ndimage.label(ndimage.binary_dilation(avid, iterations=1))  # a pole split by its sinus: one
        labels[~avid] = 0
        best, best_ml = 0, 0.0
        for index, box in enumerate(ndimage.find_objects(labels), start=1):
            if box is None:
                continue
            part = labels[box] == index
            ml = float(part.sum()) * voxel_ml
            centre_y = float(y_mm[box[1]][np.argwhere(part)[:, 1]].mean())
            cut = top_k is not None and box[0].start <= top_k < box[0].stop and part[top_k - box[0].start].any()
            if centre_y < front or not (60.0 <= ml <= 450.0 or (cut and ml >= KIDNEY_POLE_MIN_ML)):
                continue
            if ml > best_ml:
                best, best_ml = index, ml
        if best:
            organ = labels == best
            # the rest of the kidney across its sinus fat: avid parts within KIDNEY_SINUS_MM of it
            reach = ndimage.binary_dilation(organ, structure=_ball(KIDNEY_SINUS_MM, spacing))
            organ |= np.isin(labels, np.unique(labels[reach & avid]))
            organ = ndimage.binary_propagation(organ, mask=zone & (suv >= EDGE_FRACTION * ref))
            kidneys[name] = fill_slices(organ)
    return kidneys


# The pancreas where it is avid (fluciclovine, more so than the liver:
# docs/detection.md#physiological-uptake-fluciclovine): uptake above PANCREAS_OVER_LIVER x the liver's median between
# the levels of T10 and L3 [R: Gray's Anatomy, body at L1-L2], at least PANCREAS_MIN_ML, PANCREAS_MIN_LENGTH_MM long and
# PANCREAS_ELONGATION x longer than thick, its long axis within 30 degrees of the axial plane [REC: adult pancreas ~15
# cm long, 2-3 cm thick, lying across the spine; a liver metastasis or a node is round, a para-aortic chain
# runs along the spine].
PANCREAS_OVER_LIVER = 1.15
PANCREAS_MIN_ML = 5.0
PANCREAS_MIN_LENGTH_MM = 50.0
PANCREAS_ELONGATION = 2.5
PANCREAS_MAX_AXIS_Z = 0.5  # sin 30 degrees
_NOT_PANCREAS = ("bone", "spleen", "aorta", "urinary_bladder")
_GROWN_INTO_PANCREAS = ("liver", "kidney_left", "kidney_right")  # PET-based rules that can take its hot parts


def _avid_pancreas(ctx: CTContext, masks: Mapping[str, np.ndarray], levels: Mapping[str, float]
                   ) -> dict[str, np.ndarray]:
    """An avid pancreas, and the liver and kidneys whose PET-based rules grow into it without it
    (name -> bool z, y, x; empty when there is none)."""
    hu, suv, body, spacing, z_mm, voxel_ml = ctx.hu, ctx.suv, ctx.body, ctx.spacing, ctx.z_mm, ctx.voxel_ml
    top, bottom, liver = levels.get("T10"), levels.get("L3"), masks.get("liver")
    if top is None or bottom is None or liver is None or not liver.any():
        return {}
    liver_level = float(np.median(suv[liver]))
    band = ((z_mm >= bottom) & (z_mm <= top))[:, None, None]
    smooth = ndimage.gaussian_filter(suv, 1.0)  # the liver's voxel noise must not link up into a "rod"
    hot = (band & body & (hu > SOFT_HU[0]) & (hu < SOFT_HU[1]) & (smooth >= PANCREAS_OVER_LIVER * liver_level)
           & ~_union(masks, _NOT_PANCREAS, body.shape))
    labels, _ = ndimage.label(hot)
    pancreas = np.zeros_like(hot)
    for lab, box in enumerate(ndimage.find_objects(labels), start=1):
        part = labels[box] == lab
        if (part.sum() * voxel_ml >= PANCREAS_MIN_ML
                and _lies_across((np.argwhere(part) + [b.start for b in box]) * spacing)):
            pancreas[box] |= part
    if not pancreas.any():
        return {}
    # its blurred rim, down to halfway between the liver's uptake and its own
    rim_level = 0.5 * (liver_level + float(np.median(suv[pancreas])))
    pancreas |= ndimage.binary_dilation(pancreas, iterations=1) & (suv >= rim_level) & body & band
    return {"pancreas": pancreas} | {name: masks[name] & ~pancreas for name in _GROWN_INTO_PANCREAS if name in masks}


def _lies_across(points_mm: np.ndarray) -> bool:
    """True when points (z, y, x mm) form a rod at least ``PANCREAS_MIN_LENGTH_MM`` long, elongated and transverse."""
    variances, axes = np.linalg.eigh(np.cov(points_mm.T))  # ascending
    sd = np.sqrt(np.maximum(variances, 0.0))
    length = 2.0 * np.sqrt(3.0) * sd[-1]  # extent of a uniform rod with this SD
    return bool(length >= PANCREAS_MIN_LENGTH_MM and sd[-1] >= PANCREAS_ELONGATION * sd[-2]
                and abs(axes[0, -1]) <= PANCREAS_MAX_AXIS_Z)


def _heart_and_aorta(ctx: CTContext, lungs: np.ndarray, masks: Mapping[str, np.ndarray],
                     levels: Mapping[str, float]) -> dict[str, np.ndarray]:
    """Heart above the diaphragm; aorta from the bifurcation up, tracked from T8 (or the nearest named
    mid-thoracic level) and from L3 (or the nearest named lumbar level). Name -> bool z, y, x."""
    z_mm = ctx.z_mm
    out: dict[str, np.ndarray] = {}
    if "diaphragm" in levels:
        heart = heart_mask(ctx, lungs, levels["diaphragm"])
        if heart is not None:
            out["heart"] = heart
    windows = (("thoracic", ("T8", "T9", "T7")), ("abdominal", ("L3", "L2", "L4", "L1", "T12")))
    starts = {window: next(levels[name] for name in names if name in levels)
              for window, names in windows if any(name in levels for name in names)}
    if not starts or "spine" not in masks:
        return out
    bottom = levels.get("aortic_bifurcation", float(z_mm.min()))
    top = float(z_mm[np.flatnonzero(lungs.any((1, 2)))].max()) if lungs.any() else float(z_mm.max())
    aorta = aorta_mask(ctx, masks["spine"], starts, bottom, top)
    if aorta.any():
        out["aorta"] = aorta
        if "heart" in out:
            out["heart"] &= ~ndimage.binary_dilation(aorta)
    return out


def _image_like(array: np.ndarray, grid: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(grid)
    return image
