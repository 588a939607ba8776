"""Physiological uptake: which organ masks hide lesion candidates, per tracer.

PSMA ligands are taken up by the salivary glands, kidneys, liver, spleen and
bowel and excreted in urine (kidneys -> ureters -> bladder), DOMAIN.md §3.6;
18F-PSMA-1007 is mainly hepatobiliary. 18F-fluciclovine shows liver, pancreas,
marrow and muscle uptake with little early urine (§3.7). Masks are numpy bool
arrays (z, y, x) on the PET grid.

Three kinds of suppression:

* ``organ``: a hot spot inside the (slightly dilated) organ is physiological;
* ``excess``: a hot spot inside the organ (or within the margin around it) is kept only when it
  clearly exceeds the organ's own uptake (mean + k SD), so a liver metastasis can still come out;
* ``halo``: around urine-filled organs a hot spot is kept only when it exceeds the
  spill-over seen at the same distance from the organ elsewhere, so a local
  recurrence touching the bladder base stays detectable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from localize.metrics import ball

HALO_PATCH_MM = 25.0  # radius of the surface patch whose median is the local spill-over
# Bowel, as the CT-only rules find it, is any large flat plateau of uptake (loops, and lukewarm vessels
# or pancreas): a hot spot in it must also reach this x the plateau's mean, so a node against
# iliac vessels stands out while the plateau's own noise does not [REC].
PLATEAU_CONTRAST = 2.0

# Organ groups: a name of the anatomy, or a group of names (unions).
ORGAN_GROUPS: dict[str, tuple[str, ...]] = {
    "salivary_glands": (
        "parotid_gland_left",
        "parotid_gland_right",
        "submandibular_gland_left",
        "submandibular_gland_right",
    ),
    "kidneys": ("kidney_left", "kidney_right"),
    "urinary_bladder": ("urinary_bladder",),
    "liver": ("liver",),
    "spleen": ("spleen",),
    "bowel": ("bowel", "small_bowel", "colon", "duodenum"),
    "pancreas": ("pancreas",),
    "prostate": ("prostate", "seminal_vesicles"),
}


@dataclass
class Suppression:
    """Physiology masks on the PET grid (z, y, x) and what each one means."""

    organ: dict[str, np.ndarray] = field(default_factory=dict)  # hot spots inside are physiological
    excess: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # mask, SUV map a lesion must reach
    halo: dict[str, tuple[np.ndarray, float]] = field(default_factory=dict)  # residual SD map (0 outside), background SUV
    detection: np.ndarray | None = None  # SUV with the spill-over of halo organs flattened (see ``flatten_halo``)
    significant: np.ndarray | None = None  # False where a halo voxel does not stand out of the spill-over noise
    walls: np.ndarray | None = None  # the voxels just outside halo organs (their wall on the PET grid)

    def any_organ(self, shape: tuple[int, ...]) -> np.ndarray:
        """Union of the ``organ`` masks."""
        out = np.zeros(shape, bool)
        for mask in self.organ.values():
            out |= mask
        return out


def group_mask(masks: dict[str, np.ndarray], group: str) -> np.ndarray | None:
    """Union of the anatomy masks that make up ``group`` (None if none is present)."""
    parts = [masks[name] for name in ORGAN_GROUPS.get(group, (group,)) if name in masks]
    if not parts:
        return None
    return np.logical_or.reduce(parts)


def _dilate(mask: np.ndarray, radius_mm: float, spacing_zyx: np.ndarray) -> np.ndarray:
    if radius_mm <= 0:
        return mask
    return ndimage.binary_dilation(mask, structure=ball(radius_mm, spacing_zyx))


def ureter_tracks(
    detection: np.ndarray,
    organs: np.ndarray,
    spacing_zyx: np.ndarray,
    *,
    threshold_suv: float,
    min_length_mm: float,
    max_area_mm2: float,
    margin_mm: float,
) -> np.ndarray:
    """Hot thin tracks running along z (ureters with urine), as a bool mask (z, y, x).

    A component of ``detection >= threshold_suv`` outside ``organs`` (gaps of up to
    two slices along z bridged: a thin tube dips on a coarse grid) that spans at
    least ``min_length_mm`` in z with a mean cross-section of at most
    ``max_area_mm2`` per slice: far longer than wide, unlike a node.
    """
    hot = (detection >= threshold_suv) & ~organs
    hot |= ndimage.binary_closing(hot, structure=np.ones((3, 1, 1)), iterations=2) & ~organs  # bridge dips along z
    labels, n = ndimage.label(hot, structure=np.ones((3, 3, 3)))
    out = np.zeros(detection.shape, bool)
    pixel_mm2 = float(spacing_zyx[1] * spacing_zyx[2])
    for lab, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        n_slices = sl[0].stop - sl[0].start
        if n_slices * spacing_zyx[0] < min_length_mm:
            continue
        part = labels[sl] == lab
        if part.sum() * pixel_mm2 / n_slices <= max_area_mm2:
            out[sl] |= part
    return _dilate(out, margin_mm, spacing_zyx)


def suppression_for(
    suv: np.ndarray,
    masks: dict[str, np.ndarray],
    spacing_zyx: np.ndarray,
    *,
    organs: tuple[str, ...],
    excess_organs: tuple[str, ...],
    halo_organs: tuple[str, ...],
    organ_margin_mm: float,
    halo_mm: float,
    excess_sd: float,
    ureter_threshold_suv: float | None,
    ureter_min_length_mm: float,
    ureter_max_area_mm2: float,
    halo_sd_factor: float,
) -> Suppression:
    """Build the physiology masks for one study from its anatomy ``masks`` and SUV array (z, y, x)."""
    out = Suppression(detection=suv.copy())
    for group in organs:
        mask = group_mask(masks, group)
        if mask is not None and mask.any():
            out.organ[group] = _dilate(mask, organ_margin_mm, spacing_zyx)
    for group in excess_organs:
        mask = group_mask(masks, group)
        if mask is None or not mask.any():
            continue
        out.excess[group] = excess_limits(suv, mask, spacing_zyx, organ_margin_mm, excess_sd,
                                          PLATEAU_CONTRAST if group == "bowel" else 0.0)
    for group in halo_organs:
        mask = group_mask(masks, group)
        if mask is None or not mask.any():
            continue
        mask = with_partial_volume_rim(suv, mask)
        if group in out.organ:
            out.organ[group] = mask  # no margin: the halo rule decides right next to the wall
        out.halo[group] = flatten_halo(suv, out.detection, mask, spacing_zyx, halo_mm)
        wall = ndimage.binary_dilation(mask, structure=np.ones((3, 3, 3))) & ~mask
        out.walls = wall if out.walls is None else out.walls | wall
    # in a halo, only what stands out of the spill-over noise of its patch counts
    significant = np.ones(suv.shape, bool)
    for noise, background in out.halo.values():
        significant &= (noise == 0) | (out.detection - background >= halo_sd_factor * noise)
    out.significant = significant
    if ureter_threshold_suv is not None:
        tracks = ureter_tracks(
            np.where(significant, out.detection, 0.0),
            out.any_organ(suv.shape),
            spacing_zyx,
            threshold_suv=ureter_threshold_suv,
            min_length_mm=ureter_min_length_mm,
            max_area_mm2=ureter_max_area_mm2,
            margin_mm=organ_margin_mm,
        )
        if tracks.any():
            out.organ["ureters"] = tracks
    return out


def excess_limits(suv: np.ndarray, organ: np.ndarray, spacing_zyx: np.ndarray, margin_mm: float, excess_sd: float,
                  contrast: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(organ grown by ``margin_mm``, SUV a hot spot there must reach to be no longer the organ's own uptake).

    Each connected part of the organ has its own limit, mean + ``excess_sd`` x SD of its core and
    at least ``contrast`` x its mean: bowel loops and other plateaus differ in uptake. The margin
    counts as the part (its spill-out into a rib or vertebra beside it); where margins meet, the
    higher limit holds. Outside, the limit is -inf.
    """
    labels, n = ndimage.label(organ)
    grown = np.zeros(organ.shape, bool)
    limit = np.full(organ.shape, -np.inf, np.float32)
    pad = np.ceil(margin_mm / spacing_zyx).astype(int) + 1
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        crop = tuple(slice(max(b.start - k, 0), b.stop + k) for b, k in zip(box, pad))
        part = labels[crop] == index
        core = ndimage.binary_erosion(part, iterations=1)
        values = suv[crop][core if core.sum() > 20 else part]
        around = _dilate(part, margin_mm, spacing_zyx)
        grown[crop] |= around
        part_limit = max(float(values.mean() + excess_sd * values.std()), contrast * float(values.mean()))
        limit[crop][around] = np.maximum(limit[crop][around], part_limit)
    return grown, limit


def with_partial_volume_rim(suv: np.ndarray, organ: np.ndarray) -> np.ndarray:
    """``organ`` grown by the touching voxels that hold at least half its median SUV and no more than it.

    A urine-filled organ's edge on PET lies where the SUV falls to half the urine's (a CT mask drawn
    out to the wall leaves some of those voxels outside, raggedly): left out, they would stand out of
    the spill-over of their shell like a lesion. A lesion hotter than the urine stays outside.
    """
    level = float(np.median(suv[organ]))
    rim = ndimage.binary_dilation(organ, structure=np.ones((3, 3, 3))) & ~organ
    return organ | (rim & (suv >= 0.5 * level) & (suv <= level))


def flatten_halo(
    suv: np.ndarray,
    detection: np.ndarray,
    organ: np.ndarray,
    spacing_zyx: np.ndarray,
    halo_mm: float,
    patch_mm: float = HALO_PATCH_MM,
) -> tuple[np.ndarray, float]:
    """Remove the spill-over of a hot ``organ`` from ``detection`` (in place); return (residual SD map, background).

    The spill-over at a voxel is the median SUV of the voxels at the same
    distance from the organ (same shell, one voxel thick) within ``patch_mm``
    along the surface: a lesion fills only a small part of that patch, and the
    patch follows how the mask sits on the grid. In the halo the detection
    image becomes background + (SUV - spill-over), so a lesion touching the
    organ keeps its own maximum; inside the organ it becomes the background.
    The SD map holds the robust SD (1.4826 MAD) of the residual over the same
    patches, 0 outside the halo.
    """
    step = float(spacing_zyx.min())
    lo, hi = _bbox(organ, int(np.ceil(halo_mm / step)) + 2, suv.shape)
    crop = tuple(slice(a, b) for a, b in zip(lo, hi))
    distance = ndimage.distance_transform_edt(~organ[crop], sampling=spacing_zyx)
    bins = np.rint(distance / step).astype(int)
    values = suv[crop]
    n_bins = int(np.rint(halo_mm / step))
    outer = bins == n_bins + 1
    background = float(np.median(values[outer])) if outer.any() else 0.0
    noise = np.zeros(suv.shape, np.float32)
    flat = detection[crop]  # views: written through to ``detection`` and ``noise``
    sd = noise[crop]
    for b in range(1, n_bins + 1):
        shell = np.argwhere(bins == b)
        if len(shell) == 0:
            continue
        shell_values = values[tuple(shell.T)]
        tree = cKDTree(shell * spacing_zyx)
        neighbours = tree.query_ball_point(shell * spacing_zyx, patch_mm)
        median = np.array([np.median(shell_values[i]) for i in neighbours])
        residual = shell_values - median
        spread = np.array([1.4826 * np.median(np.abs(residual[i])) for i in neighbours])
        flat[tuple(shell.T)] = background + residual
        sd[tuple(shell.T)] = np.maximum(spread, 1e-3)
    flat[organ[crop]] = background
    return noise, background


def _bbox(mask: np.ndarray, pad: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    coords = np.argwhere(mask)
    lo = np.maximum(coords.min(0) - pad, 0)
    hi = np.minimum(coords.max(0) + pad + 1, shape)
    return lo, hi
