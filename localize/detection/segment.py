"""Lesion segmentation on the SUV image (docs/detection.md#segmentation-pipeline).

physiological-uptake suppression -> candidate hot spots (local maxima) ->
threshold test -> per-lesion growing (% of SUVmax, capped radius) -> touching
lesions separated by a watershed on the SUV -> minimum size -> measurement.
Hot spots that do not become lesions are kept as ``Candidate`` for audit.

Arrays are numpy ``z, y, x`` views of the PET image; points are LPS mm; SUV is
body-weight SUV.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.segmentation import watershed

from localize.anatomy.model import Anatomy
from localize.detection.metrics import (
    ball_mask,
    crop_around,
    measure_lesion,
    robust_mean_sd,
    spacing_zyx_mm,
    voxel_volume_ml,
    zyx_to_lps,
)
from localize.detection.physiology import (
    PAIR_OFF_MIDLINE_MM,
    URINE_EDGE,
    URINE_NOISE_Z,
    WALLED_FRACTION,
    Suppression,
    gas_at_maximum,
    group_mask,
    hollow_organ_at,
    hollow_organ_masks,
    limit_away_from,
    mirrored_glands,
    suppression_for,
    walled_lumen,
)
from localize.detection.reference import ReferenceRegion, reference_regions
from localize.errors import ConfigError
from localize.findings import Candidate, Lesion, number_lesions
from localize.tracers import GENERIC_PRESET, PROFILES

METHODS = ("fixed_suv", "percent_max", "percist", "qpsma")
DELINEATIONS = ("percent_max", "threshold")


@dataclass
class SegmentationSettings:
    """Every parameter of the segmentation; ``to_dict()`` is recorded in the findings.

    Detection threshold per method (soft tissue / inside the CT bone mask):
    ``fixed_suv``: ``detect_suv``; ``percent_max``: ``detect_suv`` (the lesion is
    then delineated at ``percent_of_max``); ``percist``: ``reference_mean_factor``
    x mean + ``reference_sd_factor`` x SD of ``reference_region`` (PERCIST uses
    1.5 x liver mean + 2 SD, docs/detection.md#percist), never below ``detect_suv``;
    ``qpsma``: soft tissue ``qpsma_constant`` / mean x (mean + SD) of the
    reference (qPSMA liver threshold, Gafita et al. JNM 2019;60:1277-83, formula as in
    docs/detection.md#qpsma), bone ``bone_suv`` (qPSMA: SUV >= 3 in the CT bone mask).
    """

    method: str = "fixed_suv"
    # fixed threshold, or floor of the reference-based ones (MUST-segmenter 2.5/3/4,
    # docs/detection.md#threshold-families)
    detect_suv: float = 3.0
    bone_suv: float | None = None  # threshold inside the bone mask; None: as soft tissue
    bone_reference_region: str | None = None  # in marrow-bearing bone: at least factors x this region's statistics
    reference_region: str = "liver"
    reference_mean_factor: float = 1.5
    reference_sd_factor: float = 2.0
    fallback_region: str | None = None  # percist: this region when ``reference_region`` is not found ...
    fallback_mean_factor: float = 2.0  # ... at this x mean + ``reference_sd_factor`` x SD (PERCIST blood pool)
    qpsma_constant: float = 4.30
    delineation: str = "percent_max"  # grow at percent_of_max x SUVmax, or at the detection threshold
    percent_of_max: float = 0.41  # 41 % SUVmax (MUST-segmenter, docs/detection.md#threshold-families)
    grow_floor_suv: float = 1.5  # never grow below this SUV
    max_radius_mm: float = 30.0  # growth cap around the hottest voxel (docs/detection.md#segmentation-pipeline)
    min_separation_mm: float = 10.0  # two hot spots closer than this are one candidate
    prominence: float = 0.15  # a hot spot is distinct if the SUV dips by this fraction before a hotter one
    smoothing_fwhm_mm: float = 0.0  # Gaussian smoothing for detection only (0: none)
    min_voxels: int = 3  # docs/detection.md#segmentation-pipeline, step 5 (fewer on coarse grids: fewest_voxels)
    min_volume_ml: float = 0.0
    audit_min_suv: float = 2.0  # hot spots from this SUV on are examined ...
    audit_fraction: float = 0.8  # ... and listed below threshold when reaching this fraction of it
    max_candidates: int = 200  # audit list cap, hottest first
    suppress_organs: tuple[str, ...] = ()
    suppress_excess_organs: tuple[str, ...] = ()
    halo_organs: tuple[str, ...] = ()
    organ_margin_mm: float = 4.0
    halo_mm: float = 12.0  # spill-over halo around urine-filled organs
    halo_sd_factor: float = 4.0  # a hot spot in the halo must exceed the spill-over by this x its residual SD
    excess_sd: float = 4.0  # a hot spot in an "excess" organ must exceed organ mean + this x SD
    min_local_contrast: float = 1.5  # SUVmax over the local background, see LOCAL_CONTRAST (0: not tested) ...
    local_contrast_sd: float = 4.0  # ... and above it by this x the background's robust SD
    blood_noise_z: float = 4.5  # thresholds at least blood-pool mean + this x its SD, see BLOOD_NOISE (0: not)
    ureters: bool = False
    ureter_min_length_mm: float = 60.0  # a hot track at least this long in z ...
    ureter_max_area_mm2: float = 400.0  # ... and at most this wide on average is a ureter

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of every parameter."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


# LOCAL_CONTRAST: whatever masks the anatomy has, a lesion is focal uptake that stands out of its own
# surroundings: its SUVmax reaches min_local_contrast x the local background (``local_background``) and
# exceeds it by local_contrast_sd x that background's robust SD, the noise and texture of this image at
# this place. Where an organ's mask is missing or too small, the noise peaks of its parenchyma stand ~4 SD
# (the largest of 10^4-10^5 voxels, fewer of them independent) and, at the 10-15 % voxel CoV of clinical
# PET (olde Heuvel et al. EJNMMI Res 2020, docs/metrics.md#repeatability), less than 1.5 x above their plateau; on the
# phantom with every diffuse organ's mask removed they stood at 1.0-1.6 x and 0-3.8 SD, every lesion at
# 2.7 x and 5.8 SD or more [REC].

# BLOOD_NOISE: the blood-pool VOI (docs/detection.md#reference-regions) is homogeneous blood, so its SD is
# this image's voxel noise at blood level. Vessels, bowel wall and muscle at about that level fill 10^4-10^5
# voxels of a PET; the largest of n independent normal values lies near sqrt(2 ln n) SD above their mean
# (4.3 for 10^4, 4.8 for 10^5; fewer of the voxels are independent), so a hot spot less than
# ``blood_noise_z`` SD above the blood pool cannot be told from the noise peaks of tissue at blood level,
# wherever it lies. On a low-count Ga-68 scan (blood SUV 2.0, SD 0.6) this floor is 4.7, above the fixed
# floor of 3; on a clinical one (SD ~0.3) it stays below it. Training seeds 1-20: 21 of 51 false lesions
# (vessel and bowel noise peaks of SUV 3.0-4.3) at less than 4.5 SD, every lesion at 5.3 SD or more [REC].
# The floor holds only with a blood pool that passed its plausibility check. The marrow that sets a bone
# threshold (``bone_reference_region``) fills the axial skeleton's 10^4-10^5 voxels too: in marrow-bearing
# bone a hot spot must stand ``blood_noise_z`` SD above the marrow's mean. Training seed 35 (18F-fluciclovine,
# marrow SUV 2.2, SD 0.63: 1.5 x mean + 2 SD is mean + 3.8 SD): three marrow noise peaks of SUV 4.7-5.0 [REC].

# A lesion inside an organ of diffuse uptake is delineated with the organ's uptake as its background
# (background-adapted threshold: Nestle et al. J Nucl Med 2005;46:1342-8; Schaefer et al. Eur J Nucl Med
# Mol Imaging 2008;35:1989-99): at 41 % of SUVmax a focus 1.5 x an avid gland would take the whole gland.
ORGAN_DELINEATION = 0.5
# A lesion in marrow-bearing bone, under a marrow-referenced threshold, is grown at ``percent_of_max`` of its
# contrast over the marrow's mean: at 41 % of its SUVmax, below the marrow when it is less than 2.4 x as hot,
# it takes the marrow round it. Training seeds 9, 14, 15, 30, 36 (7 bone lesions of 0.1-2.6 ml): volume
# off by a factor of e^0.66 on average (up to 3.9 x; seed 14: 8.2 ml for 2.5, its target 4.1 mm off) before,
# e^0.47 now (large fluciclovine lesions read 40-65 % small), targets within 1.4 mm; half-way, as in organs,
# read them smaller still (e^0.72) [REC].

# Tracer presets (docs/detection.md#physiological-uptake-psma): each tracer family's profile gives its preset's
# settings.
PRESETS: dict[str, dict[str, Any]] = {p.preset: dict(p.segmentation) for p in PROFILES.values()}


def preset_for(tracer_family: str) -> str:
    """The preset name of ``tracer_family``: its own, else ``GENERIC_PRESET``."""
    return tracer_family if tracer_family in PRESETS else GENERIC_PRESET


def settings_for(tracer_family: str,
                 overrides: SegmentationSettings | dict[str, Any] | None = None) -> SegmentationSettings:
    """The preset of ``tracer_family`` updated with ``overrides`` (unknown keys -> ConfigError)."""
    if isinstance(overrides, SegmentationSettings):
        return _checked(overrides)
    if tracer_family not in PRESETS:
        raise ConfigError(f"no segmentation preset for tracer family {tracer_family!r} (known: {', '.join(PRESETS)})")
    known = {f.name for f in dataclasses.fields(SegmentationSettings)}
    values = dict(PRESETS[tracer_family])
    for key, value in (overrides or {}).items():
        if key not in known:
            raise ConfigError(f"unknown segmentation setting {key!r}")
        values[key] = tuple(value) if isinstance(value, list) else value
    return _checked(SegmentationSettings(**values))


def _checked(s: SegmentationSettings) -> SegmentationSettings:
    if s.method not in METHODS:
        raise ConfigError(f"segmentation method {s.method!r} is not one of {', '.join(METHODS)}")
    if s.delineation not in DELINEATIONS:
        raise ConfigError(f"delineation {s.delineation!r} is not one of {', '.join(DELINEATIONS)}")
    if not 0.0 < s.percent_of_max < 1.0:
        raise ConfigError(f"percent_of_max must lie in (0, 1), got {s.percent_of_max}")
    return s


@dataclass
class Segmentation:
    """Lesions found on one PET: label image (UInt16, PET grid; lesion i has value ``Lesion.label``)."""

    labels: sitk.Image
    lesions: list[Lesion] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    settings: SegmentationSettings = field(default_factory=SegmentationSettings)
    thresholds: dict[str, float] = field(default_factory=dict)  # effective soft-tissue / bone thresholds
    warnings: list[str] = field(default_factory=list)


def detection_thresholds(s: SegmentationSettings, references: dict[str, ReferenceRegion], *,
                         unused: frozenset[str] = frozenset()) -> tuple[float, float]:
    """(soft tissue, bone) detection thresholds in SUV for settings ``s``.

    A missing reference raises ConfigError unless it is ``unused`` (then soft tissue is detected
    at ``detect_suv``, bone at ``bone_suv``). Both are at least ``noise_floor_suv(s, references)``; bone at
    least ``blood_noise_z`` SD above the mean of ``bone_reference_region`` too (see BLOOD_NOISE).
    """
    soft = s.detect_suv
    if s.method in ("percist", "qpsma") and s.reference_region not in unused:
        ref = references.get(s.reference_region)
        if ref is None:
            raise ConfigError(f"method {s.method} needs the {s.reference_region} reference region, "
                              "not found in this study")
        if s.method == "percist":
            soft = max(s.detect_suv, s.reference_mean_factor * ref.suv_mean + s.reference_sd_factor * ref.suv_sd)
        else:
            soft = max(s.detect_suv, s.qpsma_constant / ref.suv_mean * (ref.suv_mean + ref.suv_sd))
    bone = soft if s.bone_suv is None else s.bone_suv
    if s.bone_reference_region is not None and s.bone_reference_region not in unused:
        ref = references.get(s.bone_reference_region)
        if ref is None:
            raise ConfigError(f"bone_reference_region {s.bone_reference_region} not found in this study")
        bone = max(bone, s.reference_mean_factor * ref.suv_mean + s.reference_sd_factor * ref.suv_sd)
        if s.blood_noise_z and ref.warning is None:  # marrow fills as many voxels as tissue at blood level
            bone = max(bone, ref.suv_mean + s.blood_noise_z * ref.suv_sd)
    floor = noise_floor_suv(s, references)
    return max(soft, floor), max(bone, floor)


def noise_floor_suv(s: SegmentationSettings, references: dict[str, ReferenceRegion]) -> float:
    """SUV a hot spot must reach to stand out of the noise of tissue at blood level (see BLOOD_NOISE):
    blood-pool mean + ``s.blood_noise_z`` x its SD; 0 without a plausible blood pool or with
    ``blood_noise_z`` 0."""
    blood = references.get("blood_pool")
    if not s.blood_noise_z or blood is None or blood.warning:
        return 0.0
    return blood.suv_mean + s.blood_noise_z * blood.suv_sd


def segment_lesions(
    pet_suv: sitk.Image,
    anatomy: Anatomy,
    *,
    tracer_family: str,
    settings: SegmentationSettings | dict[str, Any] | None = None,
    references: dict[str, ReferenceRegion] | None = None,
) -> Segmentation:
    """Find and measure the avid lesions of ``pet_suv`` (SUVbw image), outside physiological uptake.

    ``references`` defaults to ``reference_regions(pet_suv, anatomy, tracer_family)``
    when the method needs one.
    """
    s = settings_for(tracer_family, settings)
    suv = sitk.GetArrayViewFromImage(pet_suv).astype(np.float32)
    spacing = spacing_zyx_mm(pet_suv)
    if references is None and (s.method in ("percist", "qpsma") or s.bone_reference_region is not None
                               or s.blood_noise_z):
        references = reference_regions(pet_suv, anatomy, tracer_family)
    warnings, unused = [], set()
    chosen = set(settings or {}) if not isinstance(settings, SegmentationSettings) else {"method"}
    # a preset on a study whose field of view or anatomy lacks a reference: the fixed floor, said so
    if not {"method", "reference_region"} & chosen and s.method in ("percist", "qpsma") \
            and s.reference_region not in (references or {}):
        if s.method == "percist" and s.fallback_region in (references or {}):
            warnings.append(f"reference region {s.reference_region} not found: soft-tissue threshold "
                            f"{s.fallback_mean_factor:g} x {s.fallback_region} mean + {s.reference_sd_factor:g} SD")
            s = dataclasses.replace(s, reference_region=s.fallback_region, reference_mean_factor=s.fallback_mean_factor)
        else:
            unused.add(s.reference_region)
            warnings.append(f"reference region {s.reference_region} not found: soft-tissue detection at the fixed "
                            f"floor SUV {s.detect_suv:g} instead of the {s.method} threshold")
    if not {"method", "bone_reference_region"} & chosen and s.bone_reference_region is not None \
            and s.bone_reference_region not in (references or {}):
        unused.add(s.bone_reference_region)
        warnings.append(f"reference region {s.bone_reference_region} not found: bone detection without it")
    soft_t, bone_t = detection_thresholds(s, references or {}, unused=frozenset(unused))
    bone = ct_bone = anatomy.mask("bone")
    gas, fat = anatomy.mask("bowel_gas"), anatomy.mask("fat")
    if bone is not None and s.bone_reference_region is not None:
        bone = marrow_bearing(bone, spacing)  # a marrow-referenced threshold holds where marrow is seen
    threshold = np.full(suv.shape, soft_t, np.float32)
    if bone is not None:
        threshold[bone] = bone_t
    marrow = (references or {}).get(s.bone_reference_region or "")
    # a lesion in marrow-bearing bone is delineated against the marrow (see ORGAN_DELINEATION)
    in_marrow = (bone, marrow.suv_mean) if bone is not None and bone is not ct_bone and marrow is not None \
        and marrow.warning is None else None

    physio = suppression_for(suv, anatomy.masks, spacing, s, ureter_threshold_suv=soft_t if s.ureters else None)
    organ_any = physio.any_organ(suv.shape)
    detect = physio.detection  # SUV with urine spill-over flattened: lesions touching the bladder keep their maximum

    # spill-over residue that does not stand out of its noise is no hot spot: it must not take the place
    # of a node beside it in the minimum separation of hot spots
    seeds = _hot_spots(np.where(physio.significant, detect, 0.0), spacing, s)
    candidates: list[Candidate] = []
    accepted: list[np.ndarray] = []
    candidates += _organ_hot_spots(pet_suv, suv, physio, s.audit_min_suv)
    reported: set[str] = set()
    for seed in seeds:
        value = float(detect[tuple(seed)])
        reason = _physiology_reason(seed, value, physio, suv, spacing, s)
        if reason is not None:
            if reason not in reported and not any(physio.organ[name][tuple(seed)] for name in physio.organ):
                reported.add(reason)  # the hottest hot spot of each kind; organs are listed once above
                candidates.append(_candidate(pet_suv, seed, float(suv[tuple(seed)]), reason))
            continue
        if value < threshold[tuple(seed)]:
            if value >= s.audit_fraction * threshold[tuple(seed)]:
                candidates.append(_candidate(pet_suv, seed, float(suv[tuple(seed)]), "below threshold"))
            continue
        if not _distinct(detect, seed, accepted, s.prominence, s.max_radius_mm, spacing):
            continue  # a shoulder of a hotter accepted hot spot: the same lesion
        if seed[0] in (0, suv.shape[0] - 1):
            candidates.append(_candidate(pet_suv, seed, float(suv[tuple(seed)]), FIELD_EDGE))
            continue
        accepted.append(seed)

    parenchyma = [m for m in (group_mask(anatomy.masks, group) for group in s.suppress_excess_organs) if m is not None]
    masks = _grow(detect, accepted, organ_any, parenchyma, threshold, spacing, s, in_marrow, ct_bone)

    if physio.walls is not None:
        masks = [_to_wall(mask, seed, suv, detect, physio.walls, spacing, s) for seed, mask in zip(accepted, masks)]
    # urine's spill-over halos are no background to trust; the organs recognised are background only of what
    # does not stand out of them
    spill = [noise > 0 for noise, _ in physio.halo.values()]
    residue = [halo & ~physio.significant for halo in spill]  # what is left of the spill-over: no lesion's shape
    organs = list(physio.organ.values()) + parenchyma
    outside = residue + list(physio.organ.values())  # no part of a hot spot's own region
    glands = set()
    apex = lung_apex_z_mm(anatomy)
    if apex is not None and anatomy.midline_x_mm is not None:
        body = anatomy.mask("body")
        mirrors = [_mirror_index(pet_suv, seed, section_midline_x_mm(pet_suv, seed, body, anatomy.midline_x_mm), apex)
                   for seed in accepted]
        glands = mirrored_glands(detect, accepted, mirrors, spacing)
    prostate, bowel_span = anatomy.mask("prostate"), bowel_span_z_mm(anatomy, ct_bone is not None)
    hollow = hollow_organ_masks(anatomy.masks)
    no_wall = np.logical_or.reduce(outside) if outside else None
    labels = np.zeros(suv.shape, np.uint16)
    lesions: list[Lesion] = []
    fewest = fewest_voxels(s.min_voxels, spacing)
    for k, (seed, mask) in enumerate(zip(accepted, masks)):
        if k in glands:
            candidates.append(_candidate(pet_suv, seed, float(suv[tuple(seed)]), "physiological: salivary glands"))
            continue
        n = int(np.count_nonzero(mask))
        edge = _urine_edge(seed, mask, suv, physio, float(threshold[tuple(seed)]),
                           ct_bone is not None and bool(ct_bone[tuple(seed)]), s.prominence, spacing)
        if edge is not None:
            candidates.append(_candidate(pet_suv, seed, float(suv[tuple(seed)]), f"physiological: {edge} spill-over"))
            continue
        if bone is not None and n and np.count_nonzero(bone & mask) >= 0.5 * n and detect[tuple(seed)] < bone_t:
            # mostly inside bone though its hottest voxel is not (the CT's edge, the cortex's blur): marrow
            candidates.append(_candidate(pet_suv, seed, float(suv[tuple(seed)]), "below threshold"))
            continue
        if n < fewest or n * voxel_volume_ml(pet_suv) < s.min_volume_ml:
            candidates.append(_candidate(pet_suv, seed, float(suv[tuple(seed)]), "too small"))
            continue
        if gas is not None and gas_at_maximum(mask, seed, gas, spacing):
            candidates.append(_candidate(pet_suv, seed, float(suv[tuple(seed)]), "physiological: bowel (gas)"))
            continue
        hollow_organ = None if any(m is not None and m[tuple(seed)] for m in (ct_bone, prostate)) \
            else hollow_organ_at(mask, seed, hollow)
        if hollow_organ is not None:
            candidates.append(_candidate(pet_suv, seed, float(suv[tuple(seed)]), f"physiological: {hollow_organ} (CT)"))
            continue
        if s.min_local_contrast:
            beside = [organ for organ in organs if not organ[tuple(seed)]]
            solid = [organ for name, organ in physio.organ.items()
                     if name not in NOT_SOLID and name not in physio.halo and not organ[tuple(seed)]]
            tissue = ct_bone if ct_bone is not None and ct_bone[tuple(seed)] else None
            background, noise = local_background(detect, seed, spacing, spill, beside, s.excess_sd, tissue,
                                                 solid, s.prominence)
            value = float(detect[tuple(seed)])
            if value < s.min_local_contrast * background or value - background < s.local_contrast_sd * noise:
                candidates.append(_candidate(pet_suv, seed, float(suv[tuple(seed)]), "low local contrast"))
                continue
            # measured without the organs whose uptake is physiological wherever it lies (bladder, ureters...)
            parenchyma_beside = [organ for organ in parenchyma if not organ[tuple(seed)]]
            region = focal_region(detect, seed, background, spacing, parenchyma_beside, outside)
            if np.count_nonzero(region) == 1 and np.count_nonzero(focal_region(
                    detect, seed, background, spacing, parenchyma_beside, outside, fraction=LONE_FRACTION)) == 1:
                candidates.append(_candidate(pet_suv, seed, float(suv[tuple(seed)]), LONE_VOXEL))
                continue
            # soft tissue: a hot spot mostly outside the CT's bone, though the bone's edge takes in its hottest voxel
            soft = tissue is None or np.count_nonzero(ct_bone & mask) < 0.5 * n
            if soft and n >= FLOOD_RATIO * np.count_nonzero(region) and n * voxel_volume_ml(pet_suv) >= FLOOD_MIN_ML \
                    and value - background < FLOOD_SD * s.local_contrast_sd * noise:
                candidates.append(_candidate(pet_suv, seed, float(suv[tuple(seed)]), FLOODED))
                continue
            shape = compactness(region, spacing)
            # where bowel and ureters lie, outside the prostate: a node, or bowel or urine
            among_bowel = soft and not (prostate is not None and prostate[tuple(seed)]) \
                and bowel_span is not None and bowel_span[0] <= float(zyx_to_lps(pet_suv, seed)[2]) <= bowel_span[1]
            if shape < MIN_COMPACTNESS or (among_bowel and shape < node_compactness(int(np.count_nonzero(region)))):
                candidates.append(_candidate(pet_suv, seed, float(suv[tuple(seed)]), "not focal (a tube or sheet)"))
                continue
            if among_bowel and walled_lumen(detect, seed, background, spacing, no_wall, fat) > WALLED_FRACTION:
                candidates.append(_candidate(pet_suv, seed, float(suv[tuple(seed)]), "physiological: bowel (wall)"))
                continue
        lesions.append(measure_lesion(pet_suv, suv, mask, label=len(lesions) + 1, target_weights=detect))
        labels[mask] = len(lesions)  # provisional, renumbered below
    lesions = number_lesions(lesions)
    final = np.zeros_like(labels)
    for lesion_index, lesion in enumerate(lesions, start=1):
        old = lesion.label
        lesion.label = lesion_index
        final[labels == old] = lesion_index
    label_image = sitk.GetImageFromArray(final)
    label_image.CopyInformation(pet_suv)
    return Segmentation(
        labels=label_image,
        lesions=lesions,
        candidates=sorted(candidates, key=lambda c: -c.suv_max)[: s.max_candidates],
        settings=s,
        thresholds={"soft_tissue_suv": soft_t, "bone_suv": bone_t,
                    "noise_floor_suv": noise_floor_suv(s, references or {})},
        warnings=warnings,
    )


def bowel_span_z_mm(anatomy: Anatomy, with_ct: bool) -> tuple[float, float] | None:
    """LPS z range (mm) where bowel may lie: from the pelvic floor (the symphysis' bottom) to the diaphragm, either
    open when the field does not show it; None without a CT, whose anatomy alone tells the trunk from a limb."""
    if not with_ct:
        return None
    levels = anatomy.levels_z_mm
    return levels.get("symphysis_bottom", -np.inf), levels.get("diaphragm", np.inf)


def section_midline_x_mm(pet_suv: sitk.Image, seed: np.ndarray, body: np.ndarray | None, default_mm: float) -> float:
    """LPS x (mm) midway across the section of ``body`` (bool z, y, x on the grid of ``pet_suv``) that holds the hot
    spot ``seed`` in its axial slice: the head's and neck's own midline, which turn and shift on the trunk's;
    ``default_mm`` where no body mask holds the hot spot."""
    if body is None or not body[tuple(seed)]:
        return default_mm
    sections, _ = ndimage.label(body[seed[0]])
    columns = np.flatnonzero((sections == sections[seed[1], seed[2]]).any(0))
    ends = [float(zyx_to_lps(pet_suv, np.array([seed[0], seed[1], column]))[0]) for column in (columns[0], columns[-1])]
    return sum(ends) / 2.0


def _mirror_index(pet_suv: sitk.Image, seed: np.ndarray, midline_x_mm: float, apex_z_mm: float) -> np.ndarray | None:
    """Continuous (z, y, x) index of the mirror image of hot spot ``seed`` about the LPS x = ``midline_x_mm``
    plane; None below the lung apex (LPS z ``apex_z_mm``) or within PAIR_OFF_MIDLINE_MM of the midline."""
    x, y, z = zyx_to_lps(pet_suv, seed)
    if z <= apex_z_mm or abs(x - midline_x_mm) < PAIR_OFF_MIDLINE_MM:
        return None
    return np.array(pet_suv.TransformPhysicalPointToContinuousIndex((2.0 * midline_x_mm - x, y, z))[::-1])


def lung_apex_z_mm(anatomy: Anatomy) -> float | None:
    """LPS z (mm) of the highest lung voxel; None without lungs."""
    lungs = [mask for name, mask in anatomy.masks.items() if name.startswith("lung") and mask.any()]
    if not lungs:
        return None
    top = np.flatnonzero(np.logical_or.reduce(lungs).any((1, 2)))
    return float(max(zyx_to_lps(anatomy.grid, np.array([k, 0.0, 0.0]))[2] for k in (top[0], top[-1])))


MARROW_CORE_MM = 6.0  # bone at least this deep (>= 12 mm thick: vertebral bodies, pelvis, femora) holds marrow
MARROW_REACH_MM = 8.0  # ... whose uptake the PSF spreads this far through its cortex [REC]


def marrow_bearing(bone: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Bone (bool z, y, x) within ``MARROW_REACH_MM`` of bone at least ``MARROW_CORE_MM`` deep.

    Thin bone (ribs, cortical shells) shows no marrow uptake at PET resolution: a lesion there
    stands against soft tissue, not against the marrow reference [REC].
    """
    out = np.zeros(bone.shape, bool)
    if not bone.any():
        return out
    # on the bone's bounding box, one voxel wider where the image goes on (that voxel holds no bone,
    # as it does in the whole image): the same distances, on a fraction of the voxels
    where = np.argwhere(bone)
    lo, hi = np.maximum(where.min(0) - 1, 0), np.minimum(where.max(0) + 2, bone.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    core = ndimage.distance_transform_edt(bone[box], sampling=spacing) >= MARROW_CORE_MM
    if core.any():
        out[box] = bone[box] & (ndimage.distance_transform_edt(~core, sampling=spacing) <= MARROW_REACH_MM)
    return out


def _hot_spots(suv: np.ndarray, spacing: np.ndarray, s: SegmentationSettings) -> np.ndarray:
    """Local maxima (z, y, x rows) at least ``audit_min_suv``, hottest first, ``min_separation_mm`` apart."""
    detect = suv
    if s.smoothing_fwhm_mm > 0:
        sigma = s.smoothing_fwhm_mm / 2.3548 / spacing  # FWHM = 2 sqrt(2 ln 2) sigma
        detect = ndimage.gaussian_filter(suv, sigma).astype(np.float32)
    hot = detect >= s.audit_min_suv
    peaks = hot & (detect == ndimage.maximum_filter(detect, size=3))
    coords = np.argwhere(peaks)
    order = np.argsort(-suv[tuple(coords.T)], kind="stable")
    coords = coords[order]
    if len(coords) == 0:
        return coords
    tree = cKDTree(coords * spacing)
    taken = np.zeros(len(coords), bool)
    keep = []
    for i, point in enumerate(coords * spacing):
        if taken[i]:
            continue
        keep.append(i)
        taken[tree.query_ball_point(point, s.min_separation_mm)] = True
    return coords[keep]


def _organ_hot_spots(pet_suv: sitk.Image, suv: np.ndarray, physio: Suppression,
                     audit_min_suv: float) -> list[Candidate]:
    """The hottest voxel of each suppressed organ (each connected part) and of each spill-over halo, for the audit
    list."""
    out = []
    for name, (noise, _) in physio.halo.items():
        spill = (noise > 0) & ~physio.significant
        if spill.any():
            at = np.unravel_index(int(np.argmax(np.where(spill, suv, -np.inf))), suv.shape)
            if suv[at] >= audit_min_suv:
                out.append(_candidate(pet_suv, np.array(at), float(suv[at]), f"physiological: {name} spill-over"))
    for name, mask in physio.organ.items():
        labels, n = ndimage.label(mask)
        if n == 0:
            continue
        for index, box in enumerate(ndimage.find_objects(labels), start=1):
            part = np.where(labels[box] == index, suv[box], -np.inf)
            at = tuple(b.start + k for b, k in zip(box, np.unravel_index(int(np.argmax(part)), part.shape)))
            if suv[at] >= audit_min_suv:
                out.append(_candidate(pet_suv, np.array(at), float(suv[at]), f"physiological: {name}"))
    return out


# A hot spot whose hottest voxel lies in the first or last slice of the field is cut off by its edge: its
# maximum, extent and shape lie partly outside. A bowel loop or a vessel leaving the field there looks
# like a ball cut in half, and the end slices of a scan are its noisiest (the axial sensitivity of 3-D
# PET falls towards the ends of the field: Bailey, Townsend, Valk, Maisey (eds), Positron Emission
# Tomography: Basic Sciences, Springer 2005). Such a hot spot is listed for review, not reported as a
# lesion. A half-maximum region whose section in an end slice is FIELD_CUT of its widest or more is cut
# there too: its shape is measured with its mirror image beyond the edge (``focal_region``).
# Training seeds 1-20: 4 of 34 false lesions (bowel loops leaving the field) gone, no lesion lost [REC].
FIELD_EDGE = "at the edge of the field of view (cut off: not measurable)"
FIELD_CUT = 0.5

# A hot spot in a urine organ's spill-over halo whose grown region holds SUV over URINE_EDGE_RATIO x its
# own, and at least URINE_EDGE x the urine's median, is the urine's partial-volume edge that the organ's
# mask left out (its apparent maximum is urine at the wall), not a lesion. So is one that itself reads
# from URINE_EDGE x the urine's median up to URINE_NOISE_Z (``localize.detection.physiology``) robust SD
# of the urine's own voxels above it (the partial-volume slope of the urine, and urine the mask left out,
# up to the noise peaks of the urine's plateau) when the urine is hot enough to make such hot spots (at
# least URINE_HOT x the detection threshold). A lesion against the bladder reads hotter at the wall too,
# but at less than URINE_EDGE of the urine: one that hot and against it cannot be told from the urine's edge
# on PET alone; one hotter than the urine's noise stands out of it. So does one that the PET parts from the
# urine by a dip of the hot spots' prominence: the urine's edge rises into the urine (training seed 32, an
# obturator node of SUV 6 beside urine of SUV 15, a dip to SUV 2 between them).
# Training seeds 5, 7 and 11: such edges at 0.41-0.50 x the urine; the standard phantom's bladder-wall
# lesion at 0.30 x; fluciclovine's faint urine (SUV 2-3) lies below URINE_HOT x the threshold, its lesions
# beside the bladder above the urine. Training seeds 28 and 37 (low-dose CT, the bladder's mask short of
# the urine): four false lesions of urine at 1.1-1.2 x its median, within 4 of its SD [REC].
# On the CT's bone such a hot spot is urine when it is no maximum of the PET at all, whatever its fraction of
# the urine: a voxel next to it is hotter (the slope rising into the urine), as the PET's blur (FWHM 5-7 mm)
# lays the urine's edge over a hip bone a few millimetres from the bladder's wall; a bone lesion there holds a
# maximum of its own [REC: real CT tests/data/totalsegmentator-abdomen with a PET simulated on its labels, the
# urine's edge at 0.39-0.42 x its median on the right hip bone in 7 of 20 noise draws]. Not in soft tissue: a
# node against the bladder has no maximum of its own either (training seed 77: a 9 mm obturator node at 0.12 x
# the urine was lost that way).
URINE_EDGE_RATIO = 2.0
URINE_HOT = 3.0


# The fewest voxels of a lesion: ``min_voxels`` (docs/detection.md#segmentation-pipeline, step 5), but no
# more than a ball of SMALLEST_LESION_MM fills. Three voxels are 60 mm3 on a 2.7 mm grid and 500 mm3 on a
# 5.5 mm one, where a 6 mm lesion, even blurred, often grows to one or two: sampled at a voxel's centre
# (FWHM 6 mm), 1 of 6 noise draws of an SUV 30 lesion was found on 5 mm voxels with three, 6 of 6 with one.
# The hot spot of one voxel that stands out alone is still no lesion (LONE_FRACTION) [REC].
SMALLEST_LESION_MM = 6.0  # the smallest lesion measured (docs/limits.md)


def fewest_voxels(min_voxels: int, spacing: np.ndarray) -> int:
    """The fewest voxels (z, y, x ``spacing`` mm) of a lesion: ``min_voxels``, or fewer where a ball of
    SMALLEST_LESION_MM fills fewer; at least one."""
    ball_mm3 = np.pi / 6.0 * SMALLEST_LESION_MM**3
    return max(1, min(min_voxels, int(np.ceil(ball_mm3 / float(np.prod(spacing))))))


def _urine_edge(seed: np.ndarray, mask: np.ndarray, suv: np.ndarray, physio: Suppression,
                threshold: float, in_bone: bool, prominence: float, spacing: np.ndarray) -> str | None:
    """The urine organ whose edge the hot spot ``seed`` (grown to ``mask``; detection ``threshold``) is, or None.
    A hot spot whose voxel is bone on CT (``in_bone``) is urine only on the urine's slope (a voxel next to it is
    hotter): urine is fluid; one that the PET parts from the urine by a dip of ``prominence`` is none either."""
    at = tuple(seed)
    own = float(suv[at])
    lo, crop = crop_around(seed, PLATEAU_REACH_MM, spacing, suv.shape)
    joined = physio.walls is not None and bool((_summit(suv[crop], seed - lo, prominence) & physio.walls[crop]).any())
    # on bone: the urine's slope (a hotter voxel next to it), at any fraction of the urine; a maximum is a lesion's
    slope = in_bone and float(suv[tuple(slice(max(i - 1, 0), i + 2) for i in seed)].max()) > own
    for name, (noise, _) in physio.halo.items():
        if noise[at] == 0 or not mask.any():
            continue
        urine = physio.urine[name]
        peak = float(suv[mask].max())
        if peak > URINE_EDGE_RATIO * own and peak >= URINE_EDGE * urine:
            return name
        ceiling = urine + URINE_NOISE_Z * physio.urine_sd[name]
        if (slope or (URINE_EDGE * urine <= own and not in_bone)) and own <= ceiling \
                and urine >= URINE_HOT * threshold and joined:
            return name
    return None


def _physiology_reason(seed: np.ndarray, value: float, physio: Suppression, suv: np.ndarray, spacing: np.ndarray,
                       s: SegmentationSettings) -> str | None:
    """Why the hot spot at ``seed`` (detection value ``value`` on ``suv``) is physiological, or None when it may be
    a lesion: inside a suppressed organ, or inside an organ of diffuse uptake below its limit there and below the
    limit of the organ's uptake around it (``limit_away_from``; not for bowel)."""
    at = tuple(seed)
    for name, mask in physio.organ.items():
        if mask[at]:
            return f"physiological: {name}"
    for name, (mask, limit) in physio.excess.items():
        # bowel plateaus differ in uptake from stretch to stretch: each part's own statistics hold there
        if mask[at] and value < limit[at] and (
                name == "bowel" or value < limit_away_from(suv, physio.excess_organs[name], seed, spacing,
                                                            s.excess_sd)):
            return f"physiological: {name}"
    return None


# Local background of a hot spot: an upper quantile of a shell SHELL_MM around its half-maximum region
# above that background (found by iteration, as background-adapted 50 % thresholds are: Daisne et al.
# Radiother Oncol 2003;69:247). A noise peak of a liver, spleen or bowel plateau whose mask is missing or
# too small has that plateau in most of its shell; a node beside a hot ureter or a bowel loop has them in
# a small part only, which the quantile passes over [REC].
SHELL_MM = (10.0, 20.0)
SHELL_QUANTILE = 0.75
MIN_TISSUE_VOXELS = 20  # a hot spot's own tissue is its background when the first shell holds this many of it
# a half-maximum region reaching this far is wider than any lesion grown (the growth cap,
# docs/detection.md#segmentation-pipeline)
PLATEAU_REACH_MM = 30.0

# An organ of even parenchyma (kidneys, salivary glands, pancreas) is background of the noise peaks of its
# edge, which its own uptake runs into. A hot spot that the PET parts from it by a dip of the prominence
# that parts two hot spots is a focus of its own beside it: training seed 9, a 9 mm retroperitoneal node
# of SUV 13 against a kidney of SUV 16, the dip between them 20 % [REC]. Not so for a tube or a sac: the
# boluses along a ureter are parted by dips as well (training seed 48), and urine beside its sac has the
# spill-over rules of ``physiology``.
NOT_SOLID = ("ureters",)

# A lesion of 6 mm or more, blurred by the scanner, spreads over more than its hottest voxel: on training
# phantoms (seeds 1-60, grids of 2.7-5.5 mm) every lesion found had 4 voxels or more above LONE_FRACTION of
# the way from its local background to its SUVmax. A hot spot alone there (its neighbours cold, or residue
# of the urine's spill-over that does not stand out of its model) is a noise peak or a remnant of that
# model, not a lesion; four such false lesions beside the bladder (SUV 4-40) [REC].
LONE_FRACTION = 0.3
LONE_VOXEL = "a lone voxel (noise or urine spill-over)"

# A lesion's delineation (``percent_of_max`` of its SUVmax) is the lesion when that level lies above the
# uptake round it: then it holds the lesion's half-maximum region and the scanner's blur about it, at most
# ~1.5 x as many voxels for a blurred ball (r41 / r50 of a Gaussian, cubed) and up to 4.5 x for the faint
# lesions of the training phantoms. A noise peak on a lukewarm plateau that no mask knows (a collapsed
# bowel loop, a vessel) stands out of its shell, which holds fat, yet 41 % of its SUVmax lies below the
# plateau: its half-maximum region is a few voxels, its delineation floods along the plateau up to the
# growth cap. In soft tissue, a hot spot whose delineation of FLOOD_MIN_ML or more holds FLOOD_RATIO x the
# voxels of its half-maximum region, and which stands less than FLOOD_SD x ``local_contrast_sd`` robust SD
# above its local background, is a noise peak of that plateau (they stand 4-5 SD out of it, LOCAL_CONTRAST);
# a lesion in an organ whose mask is missing floods the organ too, but stands far out of its noise (a liver
# metastasis of 2.5 x its background: 14 SD). Training seeds 1-100: 12 of 54 false lesions (bowel loops and iliac
# vessels, SUVmax 3.1-5.9, 2.5-36 ml at 6-208 x, 4.0-7.4 SD) went, no lesion was lost; lesions reached
# 4.5 x (a bone lesion in warm marrow), in soft tissue 4 x (a half-maximum region of one voxel, under 1 ml) [REC].
FLOOD_RATIO = 5.0
FLOOD_MIN_ML = 1.0
FLOOD_SD = 2.0
FLOODED = "not focal (its delineation floods the uptake round it)"

# A lesion is focal: its half-maximum region (above the local background) is a blob, blurred rounder by
# the scanner's resolution. A tube (ureter, vessel, bowel wall) or a sheet (the rim of the urine) is not.
# Compactness (``compactness``): the region's volume over the ball of its longest semi-axis (1 for a ball,
# 0.25 for a 2:1 ellipsoid, 0.11 for 3:1). Lymph-node metastases are round to oval, their long axis
# rarely over twice the short one (short-to-long axis ratio >= 0.5: Steinkamp et al. Br J Radiol
# 1995;68:266-70); bone and prostatic lesions are no longer. On the training phantoms (seeds 1-20) this
# took false lesions from 4.0 to 2.05 per study and lost no lesion [REC]. A region of a few voxels has no
# shape to measure, so the floor is low; one of RESOLVED_VOXELS or more is sampled finely enough to show
# its shape, and in soft tissue where bowel and ureters lie (``bowel_span_z_mm``), outside the prostate
# (whose own uptake joins a lesion's region), it must be no longer than a 2:1 ellipsoid
# (MIN_NODE_COMPACTNESS): a node's bound. A sarcoma of the thigh, its hot rim round necrosis, is no node.
# Training seeds 1-40: false lesions (bowel loops, ureter boluses) 1.15 -> 0.88 per study, no lesion lost [REC].
# A smaller region, of FEW_VOXELS to RESOLVED_VOXELS, is a small lesion: the scanner's blur (FWHM 5-7 mm)
# leaves a 2:1 node 12 mm long under 1.4:1 in its second moments. Sampled on PET grids of 2-5.5 mm, a 1.5:1
# ellipsoid of 10-19 voxels scores at least 0.21 (any size, orientation and phase; 20 000 draws), so below
# MIN_SAMPLED_NODE_COMPACTNESS such a region is a tube, not a node: a ureter bolus or a stretch of bowel wall.
# Training seeds 1-60: of the hot spots reported with 6-19 voxels, every lesion scored 0.34 or more, 10
# of 25 false lesions 0.10-0.18; false lesions 0.72 -> 0.52 per study, no lesion lost [REC].
# Blurred (PSF 5-7 mm), sampled (2-5.5 mm, any orientation and phase) and with 12 % voxel noise, a node's
# half-maximum region of 20 voxels or more scores at least 0.41 for a ball, at least 0.29 (median 0.41) for
# 1.5:1, and as little as 0.17 (median 0.23-0.26) for 2:1: about half of the nodes twice as long as wide are
# taken for tubes (docs/limits.md). With that noise a 1.5:1 region of 10-19 voxels falls below
# MIN_SAMPLED_NODE_COMPACTNESS in 1 of 89 draws (0.19). The bound is not raised to the
# 0.26-0.48 of the false lesions left among bowel on training seeds 1-100: they lie where oval nodes lie [REC].
MIN_COMPACTNESS = 0.1
RESOLVED_VOXELS = 20
MIN_NODE_COMPACTNESS = 0.25
FEW_VOXELS = 10
MIN_SAMPLED_NODE_COMPACTNESS = 0.2


def node_compactness(n_voxels: int) -> float:
    """Least compactness of a node's half-maximum region of ``n_voxels`` PET voxels (see MIN_NODE_COMPACTNESS):
    0 when it is too small to show a shape."""
    if n_voxels >= RESOLVED_VOXELS:
        return MIN_NODE_COMPACTNESS
    return MIN_SAMPLED_NODE_COMPACTNESS if n_voxels >= FEW_VOXELS else 0.0


def local_background(suv: np.ndarray, seed: np.ndarray, spacing: np.ndarray, exclude: Sequence[np.ndarray] = (),
                     organs: Sequence[np.ndarray] = (), organ_sd: float = 4.0,
                     tissue: np.ndarray | None = None, solid: Sequence[np.ndarray] = (),
                     prominence: float = SegmentationSettings.prominence) -> tuple[float, float]:
    """(local background SUV, its robust SD) around the hot spot ``seed`` of ``suv`` (z, y, x).

    ``exclude`` (bool arrays, same shape): voxels that are no background. ``organs``: recognised
    organs the hot spot is not in; no background of a hot spot above their nearby median +
    ``organ_sd`` x robust SD (a node beside the liver), but background of one that is not (a
    noise peak of a kidney's edge that its mask left out). ``tissue``: the hot spot's own tissue
    (bone on CT), where its background is read when there is enough of it around (marrow, whose
    vertebral bodies stand out of the soft tissue as much as a node does). ``solid``: those of ``organs``
    with an even parenchyma, background only of a hot spot whose region above (1 - ``prominence``) x its
    value reaches into them (a noise peak of their edge); the PET parts a node beside them by a dip. Background:
    ``SHELL_QUANTILE`` of the shell ``SHELL_MM`` around the connected region above half-way
    between the background and the hot spot (three passes, starting from a shell around the hot
    spot itself). A region reaching ``PLATEAU_REACH_MM`` is
    wider than a lesion: the plateau it belongs to (its median in the shell around the hot spot)
    is background too. The SD is 1.4826 x the median absolute deviation of that background.
    """
    lo, crop = crop_around(seed, PLATEAU_REACH_MM + SHELL_MM[1], spacing, suv.shape)
    local = suv[crop]
    at = seed - lo
    value = float(local[tuple(at)])
    apart = np.zeros(local.shape, bool)  # organs beside the hot spot that it stands out of
    for organ in organs:
        inside = organ[crop]
        if inside.any():
            level, spread = robust_mean_sd(local[inside])
            if value > level + organ_sd * spread:
                apart |= inside
    if solid:
        own = _summit(local, at, prominence)
        for organ in solid:
            inside = organ[crop]
            if not (own & inside).any():
                apart |= inside
    valid = ~apart
    for mask in exclude:
        valid &= ~mask[crop]
    shells = [valid]
    if tissue is not None:
        near = ball_mask(at, local.shape, SHELL_MM[1], spacing) & ~ball_mask(at, local.shape, SHELL_MM[0], spacing)
        if (valid & tissue[crop] & near).sum() >= MIN_TISSUE_VOXELS:
            shells.insert(0, valid & tissue[crop])
    for background_voxels in shells:
        found = _shell_background(local, at, valid, background_voxels, spacing)
        if found is not None:
            return found
    return 0.0, 0.0


def focal_region(suv: np.ndarray, seed: np.ndarray, background: float, spacing: np.ndarray,
                 organs: Sequence[np.ndarray] = (), exclude: Sequence[np.ndarray] = (),
                 fraction: float = 0.5) -> np.ndarray:
    """The region (bool, on a crop around it) whose ``compactness`` is the shape of the hot spot ``seed`` of
    ``suv`` (z, y, x): its connected region above ``fraction`` of the way from ``background`` to its value, within
    ``PLATEAU_REACH_MM``, outside ``exclude`` and outside the ``organs`` beside it whose median uptake there
    reaches that level (a node against the liver is measured without it). A region cut by the first or last
    slice of the field (its section there at least ``FIELD_CUT`` of its widest) comes with its mirror image
    beyond that slice: a tube leaving the field stays a tube, a ball cut in half a ball; the cap of a ball
    that just reaches the edge is kept as it is."""
    lo, crop = crop_around(seed, PLATEAU_REACH_MM, spacing, suv.shape)
    local = suv[crop]
    at = seed - lo
    half = background + fraction * (float(local[tuple(at)]) - background)
    free = ball_mask(at, local.shape, PLATEAU_REACH_MM, spacing)
    for organ in organs:
        inside = organ[crop]
        if inside.any() and np.median(local[inside]) >= half:
            free &= ~inside
    for mask in exclude:
        free &= ~mask[crop]
    free[tuple(at)] = True
    region = _component_at((local >= half) & free, at)
    areas = region.sum((1, 2))
    if crop[0].start == 0 and areas[0] >= FIELD_CUT * areas.max():
        region = np.concatenate([region[::-1], region])
    elif crop[0].stop == suv.shape[0] and areas[-1] >= FIELD_CUT * areas.max():
        region = np.concatenate([region, region[::-1]])
    return region


def _shell_background(local: np.ndarray, at: np.ndarray, allowed: np.ndarray, valid: np.ndarray,
                      spacing: np.ndarray) -> tuple[float, float] | None:
    """``local_background`` on the crop ``local`` around index ``at``: the half-maximum region grows from
    the hot spot in ``allowed``, the background is read on ``valid``; None when a shell holds none of it."""
    value = float(local[tuple(at)])
    reach = ball_mask(at, local.shape, PLATEAU_REACH_MM, spacing)
    allowed = allowed.copy()
    allowed[tuple(at)] = True
    region = np.zeros(local.shape, bool)
    region[tuple(at)] = True
    for _ in range(3):
        distance = ndimage.distance_transform_edt(~region, sampling=spacing)
        values = local[(distance > SHELL_MM[0]) & (distance <= SHELL_MM[1]) & valid]
        if values.size == 0:
            return None
        background = float(np.quantile(values, SHELL_QUANTILE))
        region = _component_at((local >= background + 0.5 * (value - background)) & reach & allowed, at)
    if (region & ~ball_mask(at, local.shape, PLATEAU_REACH_MM - float(spacing.max()), spacing)).any():
        near = ball_mask(at, local.shape, SHELL_MM[1], spacing) & ~ball_mask(at, local.shape, SHELL_MM[0], spacing)
        plateau = local[region & near & valid]
        if plateau.size:
            background = max(background, float(np.median(plateau)))
            values = plateau
    return background, robust_mean_sd(values)[1]


def compactness(region: np.ndarray, spacing: np.ndarray) -> float:
    """Volume of ``region`` (bool, z, y, x; ``spacing`` mm) over the ball whose radius is its longest
    semi-axis: that of the ellipsoid with its second moments (a = sqrt(5 x variance), each voxel a
    uniform box). 1 for a ball, (b c) / a^2 for an ellipsoid of semi-axes a >= b >= c, near 0 for a tube."""
    points = np.argwhere(region) * spacing
    if len(points) == 0:
        return 1.0
    covariance = np.cov(points.T, bias=True).reshape(3, 3) + np.diag(spacing**2 / 12.0)
    longest = float(np.sqrt(5.0 * np.linalg.eigvalsh(covariance)[-1]))
    return float(len(points) * np.prod(spacing) / (4.0 / 3.0 * np.pi * longest**3))


def _distinct(
    suv: np.ndarray,
    seed: np.ndarray,
    accepted: list[np.ndarray],
    prominence: float,
    radius_mm: float,
    spacing: np.ndarray,
) -> bool:
    """True unless the region above (1 - prominence) x its SUV around ``seed`` reaches a hotter accepted seed."""
    if not accepted:
        return True
    lo, crop = crop_around(seed, radius_mm, spacing, suv.shape)
    region = _summit(suv[crop], seed - lo, prominence)
    others = np.asarray(accepted) - lo
    inside = ((others >= 0) & (others < region.shape)).all(1)
    return not region[tuple(others[inside].T)].any()


# MARROW_CORE: an osteoporotic vertebral body can read 60-140 HU, its cortex included (Pickhardt et al., Ann Intern Med
# 2013;158:588-95: trabecular L1 of 110 HU or less is over 90 % specific for osteoporosis), so the CT's bone (HU over
# 150) holds its arch and endplates but not its core.
# A lesion there, grown at ``percent_of_max`` of its SUVmax under a marrow-avid tracer, floods the marrow round it: when
# this share of its region or more lies in the CT's bone, it is grown against the marrow as a lesion of the bone is.
# The real CT tests/data/totalsegmentator-abdomen: its bone covers 65 % of L3's reference label and none of a 10 mm
# lesion's core; under fluciclovine that lesion's region at 41 % held 700-790 voxels, 51-56 % of them in the bone, and
# it was missed in 25 of 40 draws, mostly set aside as flooding its marrow (now 16); training seeds 1-100: no lesion
# lost [REC].
MARROW_CORE = 0.5


def _grow(
    suv: np.ndarray,
    seeds: list[np.ndarray],
    organ_any: np.ndarray,
    parenchyma: list[np.ndarray],
    threshold: np.ndarray,
    spacing: np.ndarray,
    s: SegmentationSettings,
    marrow: tuple[np.ndarray, float] | None = None,
    bone: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Per-seed lesion masks: grown regions, split between seeds (and organs) by a watershed on the SUV.

    A lesion does not grow into an organ of diffuse uptake (``parenchyma``: liver, spleen, bowel...)
    it does not start in: a node beside the liver is cooler than 1 / ``percent_of_max`` x the liver.
    One that starts in such an organ (a recurrence in an irradiated gland) is delineated at least
    ``ORGAN_DELINEATION`` of the way from the organ's median uptake to its peak, not over the organ.
    One that starts in ``marrow`` (marrow-bearing bone, its reference SUVmean) is grown at least
    ``percent_of_max`` of the way from that mean to its peak; so is one whose region grown otherwise lies
    mostly in the CT's ``bone``: a lesion in an osteoporotic core, which the CT does not read as bone (see
    MARROW_CORE).
    """
    if not seeds:
        return []
    union = np.zeros(suv.shape, bool)
    regions = []
    for seed in seeds:
        value = float(suv[tuple(seed)])
        level = threshold[tuple(seed)] if s.delineation == "threshold" else s.percent_of_max * value
        level = max(level, s.grow_floor_suv)
        lo, crop = crop_around(seed, s.max_radius_mm, spacing, suv.shape)
        inside = ball_mask(seed - lo, suv[crop].shape, s.max_radius_mm, spacing)
        barrier = organ_any[crop].copy()
        for organ in parenchyma:
            if not organ[tuple(seed)]:
                barrier |= organ[crop]
            elif organ[crop].sum() > 1:  # in an avid organ: half-way from its uptake to the peak
                background = float(np.median(suv[crop][organ[crop]]))
                level = max(level, background + ORGAN_DELINEATION * (value - background))
        region = _component_at((suv[crop] >= level) & inside & ~barrier, seed - lo)
        if marrow is not None and (marrow[0][tuple(seed)] or bone is not None and np.count_nonzero(
                region & bone[crop]) >= MARROW_CORE * np.count_nonzero(region)):
            over_marrow = marrow[1] + s.percent_of_max * (value - marrow[1])
            if over_marrow > level:
                region = _component_at((suv[crop] >= over_marrow) & inside & ~barrier, seed - lo)
        regions.append((crop, region))
        union[crop] |= region
    # watershed per connected component of the union; organs compete as one extra marker
    comp, _ = ndimage.label(union | organ_any, structure=np.ones((3, 3, 3)))
    markers = np.zeros(suv.shape, np.int32)
    organ_marker = len(seeds) + 1
    markers[organ_any] = organ_marker
    for i, seed in enumerate(seeds):
        markers[tuple(seed)] = i + 1
    split = np.zeros(suv.shape, np.int32)
    seed_comps = sorted({int(comp[tuple(seed)]) for seed in seeds})
    objects = ndimage.find_objects(comp)
    for c in seed_comps:
        sl = objects[c - 1]
        in_comp = comp[sl] == c
        split[sl][in_comp] = watershed(-suv[sl], markers[sl] * in_comp, mask=in_comp)[in_comp]
    out = []
    for i, (seed, (crop, region)) in enumerate(zip(seeds, regions)):
        mask = np.zeros(suv.shape, bool)
        mask[crop] = region & (split[crop] == i + 1)
        lo = np.array([c.start for c in crop])
        local = _component_at(mask[crop], seed - lo)
        mask[crop] = local
        out.append(mask)
    return out


def _to_wall(mask: np.ndarray, seed: np.ndarray, suv: np.ndarray, detect: np.ndarray, walls: np.ndarray,
             spacing: np.ndarray, s: SegmentationSettings) -> np.ndarray:
    """A lesion touching a urine-filled organ extends to its wall: add the adjacent wall voxels at its level.

    The spill-over flattening removes most of the lesion's own uptake in the wall voxels; its
    SUVmax is read on the SUV image, so those voxels must belong to it (the target stays
    weighted by the flattened image, not pulled by urine).
    """
    lo, crop = crop_around(seed, s.max_radius_mm, spacing, suv.shape)
    near = ndimage.binary_dilation(mask[crop], structure=np.ones((3, 3, 3))) & walls[crop]
    if not near.any():
        return mask
    level = max(s.percent_of_max * float(detect[tuple(seed)]), s.grow_floor_suv)
    # only the wall the lesion itself covers: within its equivalent-sphere radius of the hot spot
    radius_mm = (3.0 * mask.sum() * float(np.prod(spacing)) / (4.0 * np.pi)) ** (1.0 / 3.0)
    out = mask.copy()
    out[crop] |= near & (suv[crop] >= level) & ball_mask(seed - lo, near.shape, radius_mm, spacing)
    return out


def _component_at(mask: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The 26-connected component of ``mask`` containing index ``at`` (empty if ``at`` is off)."""
    if not mask[tuple(at)]:
        return np.zeros_like(mask)
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    return labels == labels[tuple(at)]


def _summit(suv: np.ndarray, at: np.ndarray, prominence: float) -> np.ndarray:
    """The region around index ``at`` of ``suv`` that no dip of ``prominence`` (a fraction of its SUV) parts from it."""
    return _component_at(suv >= (1.0 - prominence) * float(suv[tuple(at)]), at)


def _candidate(pet_suv: sitk.Image, seed: np.ndarray, value: float, reason: str) -> Candidate:
    p = zyx_to_lps(pet_suv, seed)
    return Candidate(peak_lps_mm=(float(p[0]), float(p[1]), float(p[2])), suv_max=value, reason=reason)


def segment_seeded(pet_suv: sitk.Image, seed_lps_mm, settings: SegmentationSettings, *, threshold_suv: float,
                   exclude: np.ndarray | None = None, search_mm: float = 10.0) -> tuple[np.ndarray, Lesion] | None:
    """One lesion grown from a reader's point (LPS mm) with the run's ``settings``; None where nothing grows.

    The seed is the hottest voxel within ``search_mm`` of the point outside ``exclude`` (z, y, x bool:
    lesions already found, a barrier to growth too); the lesion is delineated as ``_grow`` does
    (``threshold_suv``: the detection threshold, used when the delineation is ``threshold``).
    Returns (mask z, y, x, measured lesion with label 0).
    """
    suv = sitk.GetArrayViewFromImage(pet_suv).astype(np.float32)
    spacing = spacing_zyx_mm(pet_suv)
    index_xyz = pet_suv.TransformPhysicalPointToContinuousIndex([float(v) for v in seed_lps_mm])
    point = np.round(index_xyz[::-1]).astype(int)
    if np.any(point < 0) or np.any(point >= suv.shape):
        return None
    barrier = np.zeros(suv.shape, bool) if exclude is None else exclude
    lo, crop = crop_around(point, search_mm, spacing, suv.shape)
    near = np.where(ball_mask(point - lo, suv[crop].shape, search_mm, spacing) & ~barrier[crop], suv[crop], -np.inf)
    seed = lo + np.array(np.unravel_index(int(np.argmax(near)), near.shape))
    threshold = np.full(suv.shape, threshold_suv, np.float32)
    mask = _grow(suv, [seed], barrier, [], threshold, spacing, settings)[0]
    if mask.sum() < fewest_voxels(settings.min_voxels, spacing):
        return None
    return mask, measure_lesion(pet_suv, suv, mask, label=0)
