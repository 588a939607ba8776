"""Reference regions (docs/detection.md#reference-regions): liver, blood pool, parotid, spleen, L3 marrow.

Keys: ``liver``, ``blood_pool``, ``parotid``, ``spleen``, ``marrow_l3`` and
``marrow`` (the lumbar vertebra nearest L3 that is in the field of view; without a named vertebra, the
vertebral bodies in view: red marrow fills the adult axial skeleton, Kricun, Skeletal Radiol 1985;14:10-19).

Each region gives SUVmean, SD, centre (LPS mm) and voxel count on the native PET
grid; arrays are numpy ``z, y, x``. A value implausible for the tracer raises
no error but carries a warning: it often means a wrong weight, dose or time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.signal import fftconvolve

from localize.anatomy.grids import bounding_box, mean_index
from localize.anatomy.model import Anatomy
from localize.detection.metrics import ball, robust_mean_sd, spacing_zyx_mm, zyx_to_lps
from localize.tracers import GENERIC_PLAUSIBLE_SUV, tracer_profile

LIVER_SPHERE_RADIUS_MM = 15.0  # 3 cm sphere (PERCIST / EANM liver VOI, docs/detection.md#reference-regions)
BLOOD_POOL_RADIUS_MM = 5.0  # 1 cm diameter, as PERCIST's cylinder in the aorta (Wahl et al. 2009) ...
# ... but 6 cm long, not 2: a 1 x 2 cm cylinder holds ~25 PET voxels of 15-20 % noise, correlated over
# the PSF, and its mean scatters by ~7 %; three times the length roughly halves the variance [REC]
BLOOD_POOL_LENGTH_MM = 60.0
AORTA_WALL_MM = 2.0  # eroded 2 mm from the wall (docs/detection.md#reference-regions)
MARROW_DEPTH_MM = 8.0  # clear of the cortex (~3 mm) and of its spill-in at PET resolution [REC]
ORGAN_DEPTH_MM = 6.0  # parotid, spleen: one clinical PET FWHM (~5-7 mm) inside the edge, clear of spill-out [REC]
VESSELS = ("aorta", "inferior_vena_cava", "portal_vein_and_splenic_vein")
# the blood pool keeps this far from organs with uptake: ~1.5 x a clinical PET FWHM, clear of their spill-in [REC]
BLOOD_POOL_CLEARANCE_MM = 10.0
# a VOI's SD is the image's noise there (thresholds and scores rest on it): of n voxels, its relative
# standard error is about 1 / sqrt(2 (n - 1)), 13 % at 30. A vertebral body 8 mm deep on a 4-5 mm PET grid
# can leave a single voxel, and an SD of 0 (training seeds 11, 29, 31) [REC].
MIN_VOI_VOXELS = 30
AVID_ORGANS = ("liver", "spleen", "kidney_left", "kidney_right", "pancreas", "urinary_bladder", "bowel", "small_bowel",
               "colon", "duodenum", "stomach")



@dataclass
class ReferenceRegion:
    """SUVbw statistics of one reference VOI; ``centre_lps_mm`` is its centroid."""

    name: str
    suv_mean: float
    suv_sd: float
    centre_lps_mm: tuple[float, float, float]
    n_voxels: int
    warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["centre_lps_mm"] = list(self.centre_lps_mm)
        return d


def reference_regions(
    pet_suv: sitk.Image,
    anatomy: Anatomy,
    tracer_family: str,
    *,
    exclude: np.ndarray | None = None,
) -> dict[str, ReferenceRegion]:
    """Reference VOIs found in ``anatomy`` on the SUVbw image; ``exclude`` (bool z, y, x) marks lesions.

    ``tracer_family``: a tracer family or segmentation preset name (``localize.tracers.tracer_profile``),
    whose profile gives the blood-pool level and the plausible SUVmean ranges.
    """
    profile = tracer_profile(tracer_family)
    suv = sitk.GetArrayViewFromImage(pet_suv).astype(np.float32)
    spacing = spacing_zyx_mm(pet_suv)
    masks = anatomy.masks
    avoid = np.zeros(suv.shape, bool) if exclude is None else exclude.astype(bool).copy()
    for vessel in VESSELS:
        if vessel in masks:
            avoid |= masks[vessel]
    avoid = _dilated(avoid, ball(5.0, spacing))
    vois: dict[str, np.ndarray] = {}
    if "liver" in masks:
        voi = liver_sphere(suv, masks["liver"] & ~avoid, spacing)
        if voi is not None:
            vois["liver"] = voi
    if "aorta" in masks:
        levels = anatomy.levels_z_mm
        level = next((levels[name] for name in profile.blood_pool_levels if name in levels), None)
        avid = [masks[name] for name in AVID_ORGANS if name in masks]
        clear = clear_of(masks["aorta"], _union(avid), spacing, BLOOD_POOL_CLEARANCE_MM) if avid else None
        voi = aorta_cylinder(pet_suv, clear, spacing, level) if clear is not None else None
        if voi is None:  # no stretch clear of them at the level: the aorta as it is
            voi = aorta_cylinder(pet_suv, masks["aorta"], spacing, level)
        if voi is not None:
            vois["blood_pool"] = voi
    for name, group in (("parotid", ("parotid_gland_left", "parotid_gland_right")), ("spleen", ("spleen",))):
        parts = [masks[g] for g in group if g in masks]
        if parts:
            voi = inner_core(_union(parts), spacing, ORGAN_DEPTH_MM)
            vois[name] = voi & ~exclude if exclude is not None else voi
    if "vertebrae_L3" in masks:
        vois["marrow_l3"] = vertebral_body(masks["vertebrae_L3"], spacing)
    lumbar = [f"vertebrae_L{k}" for k in (3, 4, 2, 5, 1)
              if f"vertebrae_L{k}" in masks and masks[f"vertebrae_L{k}"].any()]
    if lumbar:  # marrow of the lumbar vertebra nearest L3 in the field of view
        vois["marrow"] = vertebral_body(masks[lumbar[0]], spacing)
    elif "spine" in masks and masks["spine"].any():  # no vertebra named: the marrow of the vertebral bodies in view
        vois["marrow"] = vertebral_body(masks["spine"], spacing)
    out = {}
    for name, voi in vois.items():
        box = bounding_box(voi)
        if box is None:
            continue
        values = suv[box][voi[box]].astype(np.float64)
        if name.startswith("marrow"):
            values = _without_outliers(values)
        mean, sd = float(values.mean()), float(values.std())
        centre = zyx_to_lps(pet_suv, mean_index(voi))
        lo, hi = profile.plausible_suv.get(name, GENERIC_PLAUSIBLE_SUV)
        warning = None
        if not lo <= mean <= hi:
            warning = (
                f"{name} SUVmean {mean:.2f} outside the plausible {lo:g}-{hi:g} for {tracer_family}: "
                "check patient weight, injected activity and times"
            )
        out[name] = ReferenceRegion(name, mean, sd, (float(centre[0]), float(centre[1]), float(centre[2])),
                                    int(np.count_nonzero(voi[box])), warning)
    return out


def _union(masks: list[np.ndarray]) -> np.ndarray:
    """The voxels (bool z, y, x) in any of ``masks`` (at least one)."""
    out = masks[0].copy()
    for mask in masks[1:]:
        out |= mask
    return out


def _dilated(mask: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """``mask`` (bool z, y, x) dilated by ``structure``, worked out on its bounding box grown by the structure's
    reach."""
    box = bounding_box(mask, pad=max(structure.shape) // 2)
    out = np.zeros(mask.shape, bool)
    if box is not None:
        out[box] = ndimage.binary_dilation(mask[box], structure=structure)
    return out


def _without_outliers(values: np.ndarray, k: float = 3.0) -> np.ndarray:
    """``values`` without those above median + k x robust SD (1.4826 MAD): a metastasis inside a
    vertebral body must not raise the marrow reference [REC]."""
    median, spread = robust_mean_sd(values)
    kept = values[values <= median + k * max(spread, 1e-6)]
    return kept if kept.size else values


def liver_sphere(suv: np.ndarray, liver: np.ndarray, spacing: np.ndarray) -> np.ndarray | None:
    """3 cm sphere inside ``liver`` placed where the SUV coefficient of variation is least (Hirata et al. PLoS One
    2014;9:e105682)."""
    crop = bounding_box(liver)
    if crop is None:
        return None
    lo = np.array([b.start for b in crop])
    organ = liver[crop]
    depth = ndimage.distance_transform_edt(np.pad(organ, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
    radius = min(LIVER_SPHERE_RADIUS_MM, float(depth.max()))
    kernel = ball(radius, spacing).astype(np.float64)
    values = suv[crop].astype(np.float64) * organ
    n = kernel.sum()
    s1 = fftconvolve(values, kernel, mode="same")
    s2 = fftconvolve(values**2, kernel, mode="same")
    mean = s1 / n
    var = np.maximum(s2 / n - mean**2, 0.0)
    centres = depth >= radius - 1e-6
    cov = np.where(centres & (mean > 0), np.sqrt(var) / np.maximum(mean, 1e-9), np.inf)
    best = np.unravel_index(int(np.argmin(cov)), cov.shape)
    out = np.zeros(liver.shape, bool)
    half = np.array(kernel.shape) // 2
    centre = np.array(best) + lo
    for offset in np.argwhere(kernel) - half:
        p = tuple(centre + offset)
        if all(0 <= a < b for a, b in zip(p, liver.shape)):
            out[p] = True
    return out & liver


def aorta_cylinder(pet_suv: sitk.Image, aorta: np.ndarray, spacing: np.ndarray,
                   level_z_mm: float | None) -> np.ndarray | None:
    """Blood-pool VOI: 1 cm x 6 cm cylinder on the aorta centreline, 2 mm inside the wall, centred at ``level_z_mm``
    (None: the middle of the aorta); None when the aorta has no such core there."""
    core = _eroded(aorta, ball(AORTA_WALL_MM, spacing)) if np.count_nonzero(aorta) > 50 else aorta
    slices = np.flatnonzero(core.reshape(core.shape[0], -1).any(1))
    if slices.size == 0:
        return None
    if level_z_mm is None:
        k = int(slices[len(slices) // 2])
    else:
        z_mm = np.array([zyx_to_lps(pet_suv, np.array([k, 0, 0]))[2] for k in range(aorta.shape[0])])
        k = int(np.argmin(np.abs(z_mm - level_z_mm)))
    half = max(int(round(BLOOD_POOL_LENGTH_MM / 2 / spacing[0])), 0)
    out = np.zeros(aorta.shape, bool)
    yy, xx = np.ogrid[: aorta.shape[1], : aorta.shape[2]]
    for z in range(max(k - half, 0), min(k + half + 1, aorta.shape[0])):
        if not core[z].any():
            continue
        cy, cx = np.argwhere(core[z]).mean(0)
        disc = ((yy - cy) * spacing[1]) ** 2 + ((xx - cx) * spacing[2]) ** 2 <= BLOOD_POOL_RADIUS_MM**2
        out[z] = disc & core[z]
    return out if out.any() else None


def _eroded(mask: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """``mask`` (bool z, y, x) eroded by ``structure``, worked out on its bounding box (all outside is False)."""
    box = bounding_box(mask)
    out = np.zeros(mask.shape, bool)
    if box is not None:
        out[box] = ndimage.binary_erosion(mask[box], structure=structure)
    return out


def clear_of(mask: np.ndarray, others: np.ndarray, spacing: np.ndarray, distance_mm: float) -> np.ndarray:
    """``mask`` without its voxels within ``distance_mm`` of ``others`` (bool z, y, x)."""
    pad = np.ceil(distance_mm / spacing).astype(int) + 1
    box = bounding_box(mask)
    if box is None:
        return mask.copy()
    crop = tuple(slice(max(b.start - p, 0), min(b.stop + p, n)) for b, p, n in zip(box, pad, mask.shape))
    out = mask.copy()
    if others[crop].any():
        out[crop] &= ~ndimage.binary_dilation(others[crop], structure=ball(distance_mm, spacing))
    return out


def inner_core(mask: np.ndarray, spacing: np.ndarray, depth_mm: float) -> np.ndarray:
    """Voxels of ``mask`` at least ``depth_mm`` from its edge; when fewer than ``MIN_VOI_VOXELS`` are
    that deep (a structure thin for its grid), the ``MIN_VOI_VOXELS`` deepest ones (all, when it has fewer).

    The edge lies half a voxel beyond the outer voxel centres: the distance to the nearest voxel
    outside overstates the depth by that much, which is added to ``depth_mm``.
    """
    out = np.zeros(mask.shape, bool)
    crop = bounding_box(mask)
    if crop is None:
        return out
    depth = ndimage.distance_transform_edt(np.pad(mask[crop], 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
    deepest = np.sort(depth[mask[crop]])[::-1][: MIN_VOI_VOXELS]
    out[crop] = depth >= min(depth_mm + 0.5 * float(spacing.max()), float(deepest[-1]))
    return out


def vertebral_body(vertebra: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Cancellous body of one vertebra: voxels at least ``MARROW_DEPTH_MM`` inside.

    A vertebra mask on a coarse grid reaches up to half a slice into the discs: that half slice is
    added to the depth.
    """
    return inner_core(vertebra, spacing, MARROW_DEPTH_MM + 0.5 * float(spacing[0]))
