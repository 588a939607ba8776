"""Physiological uptake: which organ masks hide lesion candidates, per tracer.

PSMA ligands are taken up by the salivary glands, kidneys, liver, spleen and
bowel and excreted in urine (kidneys -> ureters -> bladder), docs/detection.md#physiological-uptake-psma;
18F-PSMA-1007 is mainly hepatobiliary. 18F-fluciclovine shows liver, pancreas,
marrow and muscle uptake with little early urine (docs/detection.md#physiological-uptake-fluciclovine). Masks are numpy
bool arrays (z, y, x) on the PET grid.

Three kinds of suppression:

* ``organ``: a hot spot inside the (slightly dilated) organ is physiological;
* ``excess``: a hot spot inside the organ (or within the margin around it) is kept only when it
  clearly exceeds the organ's own uptake (mean + k SD), so a liver metastasis can still come out;
* ``halo``: around urine-filled organs a hot spot is kept only when it exceeds the
  spill-over seen at the same distance from the organ elsewhere, so a local
  recurrence touching the bladder base stays detectable.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.morphology import reconstruction

from localize.detection.metrics import ball, ball_mask, crop_around, robust_mean_sd

if TYPE_CHECKING:  # segment imports this module
    from localize.detection.segment import SegmentationSettings

# How far the urine seen on PET may lie from a CT mask of the bladder (two PET voxels of 4-5 mm: a CT mask
# drawn against muscle on low-dose CT, or a bladder filling between CT and PET) and how much hotter than the
# urine level a voxel may be and still be urine (noise on the urine's plateau: URINE_CEILING x the level, or
# inside the CT mask URINE_NOISE_Z robust SD of the urine's voxels above it when that is more: the largest
# of 10^3-10^4 urine voxels lies about 4 SD above their median) [REC]. Training seed 52 (18F-PSMA-1007,
# urine SUV 5.8 with an SD of 0.9, the CT mask off it): a noise peak of SUV 7.6 inside the mask was cut out
# of the urine, a false lesion.
URINE_REACH_MM = 10.0
URINE_CEILING = 1.25
URINE_NOISE_Z = 4.0
URINE_EDGE = 0.4
URINE_AGREEMENT = 0.9  # Dice of a CT bladder mask on the urine's half-level region: below, the mask is off it
URINE_FULL = 0.75  # urine outside the mask at this x its median or more ...
URINE_OUTSIDE = 0.02  # ... in this fraction of the mask's voxels or more: the mask falls short of the urine
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

    detection: np.ndarray  # SUV with the spill-over of halo organs flattened (see ``flatten_halo``)
    significant: np.ndarray  # False where a halo voxel does not stand out of the spill-over noise
    organ: dict[str, np.ndarray] = field(default_factory=dict)  # hot spots inside are physiological
    excess: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # mask, SUV map a lesion must reach
    excess_organs: dict[str, np.ndarray] = field(default_factory=dict)  # the organs of ``excess``, without margin
    # residual SD map (0 outside), background SUV
    halo: dict[str, tuple[np.ndarray, float]] = field(default_factory=dict)
    urine: dict[str, float] = field(default_factory=dict)  # median SUV of each halo organ (its urine level)
    urine_sd: dict[str, float] = field(default_factory=dict)  # robust SD of the urine inside it (its voxel noise)
    walls: np.ndarray | None = None  # the voxels just outside halo organs (their wall on the PET grid)

    def any_organ(self, shape: tuple[int, ...]) -> np.ndarray:
        """Union of the ``organ`` masks."""
        out = np.zeros(shape, bool)
        for mask in self.organ.values():
            out |= mask
        return out


def group_mask(masks: dict[str, np.ndarray], group: str) -> np.ndarray | None:
    """Union of the anatomy masks that make up ``group`` (None if none is present)."""
    return union_of(masks, ORGAN_GROUPS.get(group, (group,)))


def union_of(masks: dict[str, np.ndarray], names: tuple[str, ...]) -> np.ndarray | None:
    """Union of the anatomy masks named ``names`` (None if none is present)."""
    parts = [masks[name] for name in names if name in masks]
    if not parts:
        return None
    return np.logical_or.reduce(parts)


def _dilate(mask: np.ndarray, radius_mm: float, spacing_zyx: np.ndarray) -> np.ndarray:
    """``mask`` grown by a ball of ``radius_mm``, worked out on its bounding box (the same voxels)."""
    if radius_mm <= 0 or not mask.any():
        return mask
    structure = ball(radius_mm, spacing_zyx)
    lo, hi = _bbox(mask, max(structure.shape) // 2 + 1, mask.shape)
    crop = tuple(slice(a, b) for a, b in zip(lo, hi))
    out = np.zeros_like(mask)
    out[crop] = ndimage.binary_dilation(mask[crop], structure=structure)
    return out


# A ureter on PET: urine in a tube ~3-7 mm wide running from the renal pelvis down to the bladder,
# often in boluses with empty stretches between them (peristalsis, docs/detection.md#physiological-uptake-psma: tubular
# high-uptake tracks connecting kidneys to bladder). A piece of it is a hot run along z whose axial cross-sections
# stay narrow; pieces whose ends lie within URETER_GAP_MM in z and URETER_STEP_MM across of each other are
# one ureter. A round hot spot (a node: as tall as wide) is never a piece, so nodes are not chained [REC].
URETER_GAP_MM = 30.0
URETER_STEP_MM = 20.0
URETER_ELONGATION = 2.5  # a piece is at least this many times taller (z) than wide (equivalent diameter)
URETER_BULGE = 2.0  # a cross-section this many times the tube's median area holds something beside it
# A tube is one lumen: in most of its slices one connected section holds most of its hot voxels. Hot voxels
# scattered around a kidney or a lesion whose mask stops short (noise at the threshold, joined only
# diagonally across slices) make a "piece" of many specks whose centre and width are those of the
# scatter, not of a tube; painted, it hides what lies inside. Training seed 4: a 12 mm iliac-bone lesion
# beside a ptotic kidney was hidden so (sections of 3-12 specks, the largest holding a fifth) [REC].
URETER_COHERENCE = 0.5  # median over slices of the largest section's share of the piece's voxels there


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
    """Hot thin tubes running along z (ureters with urine), as a bool mask (z, y, x).

    Axial cross-sections of ``detection >= threshold_suv`` outside ``organs`` of at most
    ``max_area_mm2`` (read at half the section's own maximum when that is higher) make up
    pieces (gaps of up to two slices along z bridged: a thin tube dips on a coarse grid);
    pieces much taller than wide are chained (see ``URETER_GAP_MM``)
    and a chain spanning at least ``min_length_mm`` in z is a ureter. The mask follows the
    tube's path slice by slice, out to its own radius plus ``margin_mm``: a node beside the
    ureter (a cross-section bulging to ``URETER_BULGE`` x the tube's median area there) stays
    outside, and the path through those slices is interpolated from its neighbours.
    """
    hot = (detection >= threshold_suv) & ~organs
    hot |= ndimage.binary_closing(hot, structure=np.ones((3, 1, 1)), iterations=2) & ~organs  # bridge dips along z
    pixel_mm2 = float(spacing_zyx[1] * spacing_zyx[2])
    narrow = np.zeros(hot.shape, bool)
    for z in np.flatnonzero(hot.any((1, 2))):
        sections, n = ndimage.label(hot[z])
        # a section's width is read at half its own maximum: a hot tube's blur spreads it wide at the threshold
        peaks = np.asarray(ndimage.maximum(detection[z], sections, np.arange(n + 1)))
        half_max = np.maximum(threshold_suv, 0.5 * peaks)
        areas = np.bincount(sections.ravel(), weights=detection[z].ravel() >= half_max[sections].ravel(),
                            minlength=n + 1) * pixel_mm2
        small = areas <= max_area_mm2
        small[0] = False
        narrow[z] = small[sections]
    pieces, _ = ndimage.label(narrow, structure=np.ones((3, 3, 3)))
    tubes = []
    for index, box in enumerate(ndimage.find_objects(pieces), start=1):
        part = pieces[box] == index
        height_mm = (box[0].stop - box[0].start) * spacing_zyx[0]
        width_mm = 2.0 * np.sqrt(np.median(part.sum((1, 2))[part.any((1, 2))]) * pixel_mm2 / np.pi)
        if height_mm >= URETER_ELONGATION * width_mm and _coherence(part) >= URETER_COHERENCE:
            tubes.append(_tube_path(part, box, detection[box], threshold_suv, spacing_zyx))
    out = np.zeros(hot.shape, bool)
    for chain in _chains(tubes, spacing_zyx):
        z_span = (max(t["z"][-1] for t in chain) - min(t["z"][0] for t in chain) + 1) * spacing_zyx[0]
        if z_span >= min_length_mm:
            for tube in chain:
                _paint_tube(out, tube, margin_mm, spacing_zyx)
    return out


def _coherence(part: np.ndarray) -> float:
    """Median over the slices of a piece (bool z, y, x) of its largest in-slice section's share of that slice."""
    shares = []
    for section in part:
        if section.any():
            labels, _ = ndimage.label(section)  # the sections' own connectivity (``ureter_tracks``)
            shares.append(np.bincount(labels.ravel())[1:].max() / np.count_nonzero(section))
    return float(np.median(shares))


def _tube_path(part: np.ndarray, box: tuple[slice, ...], detection: np.ndarray, threshold_suv: float,
               spacing_zyx: np.ndarray) -> dict:
    """Per slice of a tube piece (bool ``part`` in the crop ``box``, SUV ``detection`` on that crop, hot from
    ``threshold_suv``): z index, centre (y, x) index, radius mm. A section with two peaks (``_two_peaks``)
    or bulging to ``URETER_BULGE`` x the median area holds something beside the tube: it sets neither the
    tube's radius nor its path, which is interpolated there from the plain sections."""
    zs = np.flatnonzero(part.any((1, 2)))
    areas = part.sum((1, 2))[zs].astype(float)
    centres = np.array([np.argwhere(part[z]).mean(0) for z in zs])
    single = np.array([not _two_peaks(detection[z], part[z], threshold_suv) for z in zs])
    if not single.any():  # two peaks all along: two tubes side by side, neither the other's neighbour
        single[:] = True
    typical = float(np.median(areas[single]))
    plain = single & (areas <= URETER_BULGE * typical)
    for axis in (0, 1):
        centres[:, axis] = np.interp(zs, zs[plain], centres[plain, axis])
    offset = np.array([box[1].start, box[2].start])
    radius_mm = np.sqrt(typical * float(spacing_zyx[1] * spacing_zyx[2]) / np.pi)
    return {"z": zs + box[0].start, "centre": centres + offset, "radius_mm": radius_mm}


def _two_peaks(suv: np.ndarray, section: np.ndarray, threshold_suv: float) -> bool:
    """Whether the hot ``section`` (bool y, x) of a slice of ``suv`` holds a second peak apart from its
    hottest voxel: one that the valley between them drops below half-way from ``threshold_suv`` to that
    peak (the saddle, by grey reconstruction from the hottest voxel within the section). A ureter's lumen
    is one peak; a node beside it is a second one that the threshold joins to it on a coarse grid
    (training seed 21: a 9 mm node of SUV 14 15 mm from a hotter ureter)."""
    floor = min(threshold_suv, float(suv[section].min()))  # closing bridges voxels below the threshold
    values = np.where(section, suv.astype(np.float64), floor)
    peaks = section & (values == ndimage.maximum_filter(values, size=3))
    if np.count_nonzero(peaks) < 2:
        return False
    marker = np.full(values.shape, floor)
    top = np.unravel_index(int(np.argmax(values)), values.shape)
    marker[top] = values[top]
    saddle = reconstruction(marker, values, method="dilation")
    return bool(np.any(peaks & (saddle < threshold_suv + 0.5 * (values - threshold_suv))))


def _chains(tubes: list[dict], spacing_zyx: np.ndarray) -> list[list[dict]]:
    """Tube pieces grouped into ureters: the top of one near the bottom of another (z, then across)."""
    order = sorted(range(len(tubes)), key=lambda i: tubes[i]["z"][0])
    group = list(range(len(tubes)))

    def root(i):
        while group[i] != i:
            i = group[i]
        return i

    for k, i in enumerate(order):
        low = tubes[i]
        for j in order[:k]:
            high = tubes[j]  # starts lower in index z; joins when it ends just below ``low`` starts
            gap_mm = (low["z"][0] - high["z"][-1]) * spacing_zyx[0]
            step_mm = np.linalg.norm((low["centre"][0] - high["centre"][-1]) * spacing_zyx[1:])
            if 0 <= gap_mm <= URETER_GAP_MM and step_mm <= URETER_STEP_MM:
                group[root(i)] = root(j)
    chains: dict[int, list[dict]] = {}
    for i in range(len(tubes)):
        chains.setdefault(root(i), []).append(tubes[i])
    return list(chains.values())


def _paint_tube(out: np.ndarray, tube: dict, margin_mm: float, spacing_zyx: np.ndarray) -> None:
    """Set the disc of the tube's radius plus ``margin_mm`` around its path in each of its slices (and the
    slices within ``margin_mm`` above and below its ends)."""
    radius_mm = tube["radius_mm"] + margin_mm
    reach = int(np.ceil(margin_mm / spacing_zyx[0]))
    zs, centres = tube["z"], tube["centre"]
    yy, xx = np.ogrid[: out.shape[1], : out.shape[2]]
    for z in range(max(zs[0] - reach, 0), min(zs[-1] + reach + 1, out.shape[0])):
        centre = centres[int(np.clip(np.searchsorted(zs, z), 0, len(zs) - 1))]
        dz_mm = max(zs[0] - z, z - zs[-1], 0) * spacing_zyx[0]
        r2 = radius_mm**2 - dz_mm**2
        out[z] |= ((yy - centre[0]) * spacing_zyx[1]) ** 2 + ((xx - centre[1]) * spacing_zyx[2]) ** 2 <= r2


# No lesion holds gas. A hot spot whose own region holds bowel gas (``localize.anatomy.ct_heuristics.bowel_gas``)
# within GAS_REACH_MM of its maximum is uptake of the wall around that gas: small bowel and colon take up PSMA
# ligands (docs/detection.md#physiological-uptake-psma), a loop's wall is 1-3 mm thick, so the hottest voxel of
# its uptake lies against the lumen. A node beside a loop keeps its maximum at its centre, its own radius and
# the wall away from the gas [REC: training seeds 1-40, 6 of 62 false lesions, no lesion].
GAS_REACH_MM = 6.5


def gas_at_maximum(region: np.ndarray, seed: np.ndarray, gas: np.ndarray, spacing_zyx: np.ndarray) -> bool:
    """True when ``region`` (bool z, y, x) holds ``gas`` within ``GAS_REACH_MM`` of its maximum at index ``seed``."""
    lo, crop = crop_around(seed, GAS_REACH_MM, spacing_zyx, region.shape)
    near = ball_mask(seed - lo, region[crop].shape, GAS_REACH_MM, spacing_zyx)
    return bool((region[crop] & gas[crop] & near).any())


# Bowel loops and ureters that an organ segmentation of the CT names (imported anatomy: TotalSegmentator's
# small_bowel, colon and duodenum, TG-263's Ureter_L / Ureter_R; the built-in anatomy finds neither). A hot spot
# whose maximum lies in a ureter's lumen is urine; one whose maximum and at least HOLLOW_SHARE of its region lie in
# a loop is that loop's wall or content, whatever its SUV: loops differ in uptake from one to the next, so no limit
# read on the bowel's own distribution tells a hot loop from a lesion (docs/detection.md#physiological-uptake-psma).
# A node beside a loop keeps its maximum and most of its region outside it, unless the PET lies off the CT by more
# than its radius. A rectum named apart (TG-263 Rectum) is not among them: a recurrence in the prostate bed lies
# against it, and keeps its maximum outside a colon mask that takes the rectum in, as a node beside a loop does.
# The caller leaves the CT's bone and the prostate out (a sacral lesion beside a loop).
# Training seeds 1-100 with each phantom's own organ map imported: false lesions 45 -> 21, no lesion lost; no
# lesion's maximum lay within 1.8 mm of a loop (a sacral one) or 8.6 mm of a ureter [REC].
HOLLOW_ORGANS = {"bowel": ("small_bowel", "colon", "duodenum"), "ureter": ("ureter_left", "ureter_right")}
HOLLOW_SHARE = 0.5


def hollow_organ_masks(masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The ``HOLLOW_ORGANS`` that ``masks`` (canonical name -> bool z, y, x) hold, each the union of its parts."""
    unions = {name: union_of(masks, parts) for name, parts in HOLLOW_ORGANS.items()}
    return {name: mask for name, mask in unions.items() if mask is not None and mask.any()}


def hollow_organ_at(region: np.ndarray, seed: np.ndarray, hollow: dict[str, np.ndarray]) -> str | None:
    """The hollow organ (``hollow_organ_masks``) that holds the hot spot at index ``seed`` grown to ``region`` (bool
    z, y, x): its maximum in a ureter, or its maximum and ``HOLLOW_SHARE`` of ``region`` in a bowel loop."""
    at = tuple(seed)
    for name, mask in hollow.items():
        if not mask[at]:
            continue
        if name == "ureter" or np.count_nonzero(mask & region) >= HOLLOW_SHARE * np.count_nonzero(region):
            return name
    return None


# A loop of bowel whose lumen holds fluid or stool shows on PET as a hot ring around a cold core: the uptake is in
# its wall (docs/detection.md#physiological-uptake-psma), and readers set such curvilinear uptake that follows the
# bowel aside. A noise peak of that wall stands out of its background as a node does. A node is solid: its
# maximum lies at its centre, and the cold tissue beside it is open fat. A hot spot is a wall when a cold point
# LUMEN_MM from it (below a quarter of the way from the background to its SUV, and no fat on the CT: a lumen holds
# gas, fluid or stool, ``localize.anatomy.ct_heuristics.FAT_HU``) is walled in: more than
# WALLED_FRACTION of the rays from that point meet tissue above half-way within twice its distance to the hot spot
# (+ a voxel). Bowel lies between the pelvic floor and the diaphragm: a limb's necrotic tumour is a hot ring too
# (a real FDG sarcoma scored 0.53). The wall of a tube crossed at right angles closes ~0.9 of the rays.
# Training phantoms (seeds 1-40): 14 of 46 false soft-tissue lesions scored above one half, every node and bed
# lesion at most 0.47, an intact gland's own texture up to 0.72 (so the prostate is not tested); in the
# pipeline, false lesions went from 1.33 to 1.15 per study and no lesion was lost [REC]. On a real CT
# (tests/data/totalsegmentator-abdomen) loops pack closer round a node than on the phantoms: a para-aortic node in
# the fat between the aorta, the duodenum and small-bowel loops walled a fat point in on 0.53 of the rays, until
# fat was no lumen.
LUMEN_MM = (4.0, 15.0)
WALLED_FRACTION = 0.5
_RAYS = 32
_POINTS_PER_BATCH = 256


def _sphere_directions(n: int) -> np.ndarray:
    """``n`` unit vectors (z, y, x) spread evenly over the sphere (Fibonacci lattice)."""
    k = np.arange(n) + 0.5
    polar, azimuth = np.arccos(1.0 - 2.0 * k / n), np.pi * (1.0 + 5.0**0.5) * k
    return np.stack([np.cos(polar), np.sin(polar) * np.sin(azimuth), np.sin(polar) * np.cos(azimuth)], axis=1)


def walled_lumen(suv: np.ndarray, seed: np.ndarray, background: float, spacing_zyx: np.ndarray,
                 exclude: np.ndarray | None = None, no_lumen: np.ndarray | None = None) -> float:
    """Largest fraction of rays walled in, over the cold points ``LUMEN_MM`` from the hot spot at index ``seed``
    of ``suv`` (z, y, x), its local ``background`` given (see ``WALLED_FRACTION``). ``exclude`` (bool, same
    shape): voxels that are no wall (the organs whose uptake is physiological wherever it lies); ``no_lumen``
    (bool, same shape): voxels that are no cold point (fat on the CT)."""
    reach = 3.0 * LUMEN_MM[1] + 3.0 * float(spacing_zyx.max())
    lo, crop = crop_around(seed, reach, spacing_zyx, suv.shape)
    local = ndimage.gaussian_filter(suv[crop].astype(np.float32), 1.5 / spacing_zyx)  # a noisy voxel is no lumen
    at = seed - lo
    value = float(local[tuple(at)])
    wall = local >= background + 0.5 * (value - background)
    if exclude is not None:
        wall &= ~exclude[crop]
    cold = local < background + 0.25 * (value - background)
    if no_lumen is not None:
        cold &= ~no_lumen[crop]
    points = np.argwhere(cold)
    distance = np.linalg.norm((points - at) * spacing_zyx, axis=1)
    keep = (distance >= LUMEN_MM[0]) & (distance <= LUMEN_MM[1])
    points, distance = points[keep], distance[keep]
    if not len(points):
        return 0.0
    step = float(spacing_zyx.min())
    lengths = np.arange(step, 2.0 * LUMEN_MM[1] + float(spacing_zyx.max()) + step, step)
    steps = _sphere_directions(_RAYS)[:, None, :] * (lengths[None, :, None] / spacing_zyx)  # rays, lengths, zyx
    wall_u8, best = wall.astype(np.uint8), 0.0
    for start in range(0, len(points), _POINTS_PER_BATCH):  # memory bounded on a fine grid
        batch, reach_mm = points[start:start + _POINTS_PER_BATCH], 2.0 * distance[start:start + _POINTS_PER_BATCH]
        where = batch[:, None, None, :] + steps[None]
        hit = ndimage.map_coordinates(wall_u8, where.reshape(-1, 3).T, order=0, mode="constant")
        hit = hit.reshape(len(batch), *steps.shape[:2]).astype(bool)
        hit &= lengths[None, None, :] <= (reach_mm + float(spacing_zyx.max()))[:, None, None]
        best = max(best, float(hit.any(axis=2).mean(axis=1).max()))
    return best


# Salivary (parotid, submandibular) and lacrimal glands take up PSMA ligands intensely and come in mirror
# pairs (docs/detection.md#physiological-uptake-psma); a gland whose mask is missing is as focal as a node. A hot
# spot above the lung apices, at least PAIR_OFF_MIDLINE_MM off the midline, whose mirror image about the midline holds
# uptake alike (the maximum within PAIR_MM of the mirrored point within PAIR_SUV_RATIO of its own) is a gland, whether
# or not its partner was found as a hot spot or masked as an organ; a cervical node has no such twin. This holds
# for every tracer: fluciclovine's fainter glands pass a lower threshold as lone foci too. The midline is the
# head's and neck's own (``localize.detection.segment.section_midline_x_mm``): on training seed 81 the trunk's lay
# 12 mm off the lacrimal glands' midpoint, the head's 7.5 mm. A lacrimal gland is ~20 mm long and a noisy
# maximum shifts by a voxel (4-5 mm) either way, so the twin is looked for within 20 mm: training seeds 61 and 81,
# three lacrimal glands of SUV 4.0-4.7 reported as lesions with their twins 16-20 mm off their mirror image; the
# twin is looked for beyond the midline only, so a hot spot PAIR_OFF_MIDLINE_MM off it is paired too (one of
# those glands lay 20 mm off the head's midline estimated from the body's section) [REC].
PAIR_MM = 20.0
PAIR_OFF_MIDLINE_MM = 15.0
PAIR_SUV_RATIO = 1.5


def mirrored_glands(suv: np.ndarray, seeds_zyx: list[np.ndarray], mirrors_zyx: list[np.ndarray | None],
                    spacing_zyx: np.ndarray) -> set[int]:
    """Indices of the hot spots ``seeds_zyx`` (voxel indices of ``suv``, z, y, x) whose mirror image
    ``mirrors_zyx`` (continuous voxel index, None where not to be looked for) holds uptake alike."""
    out: set[int] = set()
    reach = np.ceil(PAIR_MM / spacing_zyx).astype(int)
    for k, (seed, mirror) in enumerate(zip(seeds_zyx, mirrors_zyx)):
        if mirror is None:
            continue
        centre = np.rint(mirror).astype(int)
        lo, hi = np.maximum(centre - reach, 0), np.minimum(centre + reach + 1, suv.shape)
        if np.any(hi <= lo):
            continue  # the mirror image lies outside the field
        grid = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), axis=-1)
        to_mirror = np.linalg.norm((grid - mirror) * spacing_zyx, axis=-1)
        # on the far side of the midline only (nearer the mirror image than the hot spot): never its own uptake
        ball = (to_mirror <= PAIR_MM) & (to_mirror < np.linalg.norm((grid - seed) * spacing_zyx, axis=-1))
        box = suv[tuple(slice(a, b) for a, b in zip(lo, hi))]
        twin, own = float(box[ball].max(initial=0.0)), float(suv[tuple(seed)])
        if max(twin, own) <= PAIR_SUV_RATIO * min(twin, own):
            out.add(k)
    return out


def suppression_for(
    suv: np.ndarray,
    masks: dict[str, np.ndarray],
    spacing_zyx: np.ndarray,
    settings: SegmentationSettings,
    *,
    ureter_threshold_suv: float | None,
) -> Suppression:
    """Build the physiology masks for one study from its anatomy ``masks`` and SUV array (z, y, x;
    ``spacing_zyx`` mm) with the organ and halo settings of ``settings``; ureters are tracked at
    ``ureter_threshold_suv`` (None: not)."""
    out = Suppression(detection=suv.copy(), significant=np.ones(suv.shape, bool))
    for group in settings.suppress_organs:
        mask = group_mask(masks, group)
        if mask is not None and mask.any():
            out.organ[group] = _dilate(mask, settings.organ_margin_mm, spacing_zyx)
    for group in settings.suppress_excess_organs:
        mask = group_mask(masks, group)
        if mask is None or not mask.any():
            continue
        out.excess[group] = excess_limits(suv, mask, spacing_zyx, settings.organ_margin_mm, settings.excess_sd,
                                          PLATEAU_CONTRAST if group == "bowel" else 0.0)
        out.excess_organs[group] = mask
    for group in settings.halo_organs:
        mask = group_mask(masks, group)
        if mask is None or not mask.any():
            continue
        faint = faint_urine(suv, mask)
        mask = with_partial_volume_rim(suv, mask, spacing_zyx)
        if group in out.organ:
            out.organ[group] = mask  # no margin: the halo rule decides right next to the wall
        if faint:
            continue  # no spill-over to flatten, and no urine's edge to tell from a lesion
        out.halo[group] = flatten_halo(suv, out.detection, mask, spacing_zyx, settings.halo_mm)
        out.urine[group] = float(np.median(suv[mask]))
        core = ndimage.binary_erosion(mask, iterations=2)  # the urine away from its partial-volume edge
        out.urine_sd[group] = robust_mean_sd(suv[core if core.sum() >= 20 else mask])[1]
        wall = ndimage.binary_dilation(mask, structure=np.ones((3, 3, 3))) & ~mask
        out.walls = wall if out.walls is None else out.walls | wall
    # in a halo, only what stands out of the spill-over noise of its patch counts
    for noise, background in out.halo.values():
        out.significant &= (noise == 0) | (out.detection - background >= settings.halo_sd_factor * noise)
    significant = out.significant
    if ureter_threshold_suv is not None:
        tracks = ureter_tracks(
            np.where(significant, out.detection, 0.0),
            out.any_organ(suv.shape),
            spacing_zyx,
            threshold_suv=ureter_threshold_suv,
            min_length_mm=settings.ureter_min_length_mm,
            max_area_mm2=settings.ureter_max_area_mm2,
            margin_mm=settings.organ_margin_mm,
        )
        if tracks.any():
            out.organ["ureters"] = tracks
    return out


def excess_limits(suv: np.ndarray, organ: np.ndarray, spacing_zyx: np.ndarray, margin_mm: float, excess_sd: float,
                  contrast: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(organ grown by ``margin_mm``, SUV a hot spot there must reach to be no longer the organ's own uptake).

    Each connected part of the organ has its own limit, mean + ``excess_sd`` x SD of its core and
    at least ``contrast`` x its mean, both robust (``robust_mean_sd``: a lesion filling part of a
    gland does not raise its own limit): bowel loops and other plateaus differ in uptake. The margin
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
        mean, sd = robust_mean_sd(values)
        part_limit = max(mean + excess_sd * sd, contrast * mean)
        limit[crop][around] = np.maximum(limit[crop][around], part_limit)
    return grown, limit


# A lesion filling a good part of a small organ (a 25 mm recurrence in a 25 ml irradiated gland) raises
# the median and spread of the whole part with its own uptake, and so the limit it is judged against.
# There (the organ's voxels within AWAY_MM of the hot spot at least NEAR_SHARE of those within NEAR_MM)
# the organ's own uptake around a hot spot is read on its voxels AWAY_MM to NEAR_MM from it: beyond the
# lesion and its blur, within the same stretch of the organ. In a large organ or plateau (liver, bowel) no
# lesion sways the part's statistics, and its other stretches may be cooler than the one the hot spot
# lies in [REC]. Bowel is judged on its parts alone (``excess_limits``).
AWAY_MM = 15.0
NEAR_MM = 50.0
NEAR_SHARE = 0.25
MIN_AWAY_VOXELS = 30


def limit_away_from(suv: np.ndarray, organ: np.ndarray, seed: np.ndarray, spacing_zyx: np.ndarray,
                    excess_sd: float) -> float:
    """SUV a hot spot at index ``seed`` must reach to exceed ``organ``'s own uptake around it (as ``excess_limits``,
    on the organ's voxels ``AWAY_MM`` to ``NEAR_MM`` from it); +inf when fewer than ``MIN_AWAY_VOXELS`` lie there,
    or when those within ``AWAY_MM`` are less than ``NEAR_SHARE`` of those within ``NEAR_MM`` (a large organ)."""
    lo, crop = crop_around(seed, NEAR_MM, spacing_zyx, suv.shape)
    shape = organ[crop].shape
    near = organ[crop] & ball_mask(seed - lo, shape, NEAR_MM, spacing_zyx)
    around = near & ~ball_mask(seed - lo, shape, AWAY_MM, spacing_zyx)
    if around.sum() < MIN_AWAY_VOXELS or (near & ~around).sum() < NEAR_SHARE * near.sum():
        return float("inf")
    mean, sd = robust_mean_sd(suv[crop][around])
    return mean + excess_sd * sd


def faint_urine(suv: np.ndarray, organ: np.ndarray) -> bool:
    """True when the urine in ``organ`` (bool, z, y, x) is no hotter than twice the tissue round it (its 90th centile
    against the median of the voxels touching it): little early urine (fluciclovine), whose spill-over is nothing
    that stands out."""
    lo, hi = _bbox(organ, 2, suv.shape)
    crop = tuple(slice(a, b) for a, b in zip(lo, hi))
    inside = organ[crop]
    rim = ndimage.binary_dilation(inside, structure=np.ones((3, 3, 3))) & ~inside
    return float(np.percentile(suv[crop][inside], 90)) <= 2.0 * float(np.median(suv[crop][rim]))


def with_partial_volume_rim(suv: np.ndarray, organ: np.ndarray, spacing_zyx: np.ndarray,
                            reach_mm: float = URINE_REACH_MM) -> np.ndarray:
    """A urine-filled ``organ`` as the PET shows it (bool z, y, x); ``spacing_zyx`` in mm.

    The urine level is the 90th centile of the SUV in the CT mask. When the mask lies on the urine
    (Dice >= ``URINE_AGREEMENT`` with the urine's half-level region, and less than ``URINE_OUTSIDE`` of
    its volume in urine of ``URINE_FULL`` x its median outside it) or the urine is no hotter than 2 x
    the shell around the mask (little early urine, e.g. fluciclovine), the organ is the mask with the
    touching voxels of half to full its median SUV: its ragged partial-volume edge. A mask off the urine (a
    bladder of near-tissue HU on a noisy low-dose CT, or filling between CT and PET) would leave hot
    urine outside, standing out of its shell like a lesion: the organ is then the urine itself, the
    voxels within ``reach_mm`` of the mask from ``URINE_EDGE`` to ``URINE_CEILING`` x the level (inside
    the mask up to its noise peaks, ``URINE_NOISE_Z``) connected to it. A lesion hotter than the urine
    stays outside; with little urine, so does what stands above the urine's noise in the mask.
    """
    median, level = (float(v) for v in np.percentile(suv[organ], [50, 90]))
    rim = ndimage.binary_dilation(organ, structure=np.ones((3, 3, 3))) & ~organ
    # no higher than the median: taking the urine's noise peaks beside a mask short of the urine into it leaves
    # those one voxel further out as lesions
    ragged = organ | (rim & (suv >= 0.5 * median) & (suv <= median))
    if faint_urine(suv, organ):
        # the PET cannot tell little urine from what is round it: what stands above the urine's noise in the CT's
        # mask is no urine (a lesion of the gland or wall beside the bladder that the mask took in)
        noise = robust_mean_sd(suv[organ])[1]
        return ragged & (suv <= max(URINE_CEILING * level, level + URINE_NOISE_Z * noise))
    lo, hi = _bbox(organ, int(np.ceil(reach_mm / spacing_zyx.min())) + 1, suv.shape)
    crop = tuple(slice(a, b) for a, b in zip(lo, hi))
    near = _dilate(organ[crop], reach_mm, spacing_zyx)
    # inside the mask, the urine's noise peaks are urine too; outside it, what is hotter than
    # URINE_CEILING x the level is something beside the bladder (a ureter's end, a lesion)
    noise = robust_mean_sd(suv[organ & (suv >= URINE_EDGE * level)])[1]
    ceiling = np.where(organ[crop], max(URINE_CEILING * level, level + URINE_NOISE_Z * noise), URINE_CEILING * level)
    urine = near & (suv[crop] >= URINE_EDGE * level) & (suv[crop] <= ceiling)
    seeded = ndimage.binary_propagation(urine & organ[crop], mask=urine)
    half = seeded & (suv[crop] >= 0.5 * level)  # the urine's edge on PET, where a CT mask on it would lie
    agreement = 2.0 * (half & organ[crop]).sum() / max(half.sum() + organ.sum(), 1)
    # urine at nearly its full level outside the mask: the mask falls short of it (partial volume at a
    # true edge stays near half the level)
    outside = (seeded & ~organ[crop] & (suv[crop] >= URINE_FULL * median)).sum()
    on_urine = agreement >= URINE_AGREEMENT and outside < URINE_OUTSIDE * organ.sum()
    if on_urine or seeded.sum() < 0.3 * organ.sum():
        return ragged
    out = np.zeros_like(organ)
    out[crop] = seeded
    return out


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
        neighbours = _padded(tree.query_ball_point(shell * spacing_zyx, patch_mm, return_sorted=False))
        median = _medians(shell_values, neighbours)
        residual = shell_values - median
        spread = 1.4826 * _medians(np.abs(residual), neighbours)
        flat[tuple(shell.T)] = background + residual
        sd[tuple(shell.T)] = np.maximum(spread, 1e-3)
    flat[organ[crop]] = background
    return noise, background


def _padded(neighbours: list[list[int]]) -> np.ndarray:
    """Neighbour lists as one (n, longest) index array, -1 where a list is shorter."""
    lengths = np.fromiter((len(i) for i in neighbours), int, len(neighbours))
    out = np.full((len(neighbours), int(lengths.max(initial=1))), -1, np.int64)
    out[np.arange(out.shape[1]) < lengths[:, None]] = np.fromiter(itertools.chain.from_iterable(neighbours), np.int64,
                                                                  int(lengths.sum()))
    return out


def _medians(values: np.ndarray, neighbours: np.ndarray, rows: int = 4096) -> np.ndarray:
    """``np.median`` of ``values`` over each row of the padded index array ``neighbours`` (-1: none), the same
    arithmetic (the mean of the two middle values in the values' own dtype), in chunks of ``rows``."""
    out = np.empty(len(neighbours), values.dtype)
    for start in range(0, len(neighbours), rows):
        index = neighbours[start:start + rows]
        ordered = np.sort(np.where(index >= 0, values[index], np.inf).astype(values.dtype), axis=1)
        count = (index >= 0).sum(1)
        row = np.arange(len(index))
        out[start:start + rows] = (ordered[row, (count - 1) // 2] + ordered[row, count // 2]) / values.dtype.type(2)
    return out


def _bbox(mask: np.ndarray, pad: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    coords = np.argwhere(mask)
    lo = np.maximum(coords.min(0) - pad, 0)
    hi = np.minimum(coords.max(0) + pad + 1, shape)
    return lo, hi
