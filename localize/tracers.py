"""What localize knows about each tracer family, in one table.

One ``TracerProfile`` per family of ``localize.load.tracer.FAMILIES``: the agents
that belong to it, its findings-contract family, its segmentation preset (the
physiological uptake it shows and the thresholds it is detected at), the
plausible SUVmean of its reference organs, the reference organs of its visual
score and its default pipeline. SUVs are body-weight SUV.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

#: A value of a segmentation preset: a ``localize.detection.segment.SegmentationSettings`` field.
SettingValue = str | float | bool | tuple[str, ...] | None


@dataclass(frozen=True)
class TracerProfile:
    """The facts of one tracer family.

    ``preset``/``segmentation``: the name and values (``SegmentationSettings`` fields) of the
    segmentation preset. ``plausible_suv``: reference region -> (low, high) SUVmean, outside
    which the reference carries a warning. ``blood_pool_levels``: the landmark levels (first
    found) the blood-pool VOI is centred at. ``mipsma_organ``: the reference organ of the miPSMA
    score between blood pool and parotid glands, None when the family is not scored so.
    ``default_pipeline``: the pipeline run when none is named, None when none may be assumed.
    """

    family: str
    contract_family: str  # the findings contract's family: "psma", "fluciclovine", "fdg" or "unknown"
    agents: tuple[str, ...]
    preset: str
    segmentation: Mapping[str, SettingValue]
    plausible_suv: Mapping[str, tuple[float, float]]
    blood_pool_levels: tuple[str, ...]
    mipsma_organ: str | None
    default_pipeline: str | None


# Plausible SUVmean of a reference region without a range of its own: wide bounds [REC] that only
# catch gross errors (a wrong weight, dose or time).
GENERIC_PLAUSIBLE_SUV = (0.3, 40.0)

# Descending thoracic aorta (PERCIST, docs/detection.md#reference-regions): beside T8 when the vertebrae are named, else
# the diaphragm.
_THORACIC_BLOOD_POOL = ("T8", "diaphragm")

# Bowel and an intact prostate take up the tracer diffusely (docs/detection.md#physiological-uptake-psma), the heart
# holds the blood pool: a hot spot there is kept when it clearly exceeds the organ's own uptake, so a recurrence in the
# gland or a node against a bowel loop or the heart stays detectable [REC].
_PSMA_RENAL: dict[str, SettingValue] = {
    "method": "fixed_suv",
    "detect_suv": 3.0,
    "bone_suv": 3.0,
    "suppress_organs": ("salivary_glands", "kidneys", "urinary_bladder"),
    "suppress_excess_organs": ("liver", "spleen", "bowel", "prostate", "heart"),
    "halo_organs": ("urinary_bladder",),
    "ureters": True,
    "min_local_contrast": 1.8,  # see LOCAL_CONTRAST in localize.detection.segment
}

# Research use, for tracers without a preset of their own (FDG, choline, others): PERCIST's
# measurability threshold, 1.5 x liver mean + 2 SD, or 2.0 x blood-pool mean + 2 SD without a liver
# (Wahl et al. J Nucl Med 2009;50 Suppl 1:122S, docs/detection.md#percist); urine, brain and myocardium are the
# physiological FDG uptake suppressed, bowel, liver and spleen judged against their own uptake.
_GENERIC: dict[str, SettingValue] = {
    "method": "percist",
    "detect_suv": 2.5,
    "bone_suv": None,
    "reference_region": "liver",
    "fallback_region": "blood_pool",
    "suppress_organs": ("brain", "kidneys", "urinary_bladder", "salivary_glands"),
    "suppress_excess_organs": ("liver", "spleen", "bowel", "heart"),
    "halo_organs": ("urinary_bladder",),
    "ureters": True,
    # focal uptake at least twice its surroundings: a tumour-to-background ratio of 2, so the noise
    # peaks of muscle, marrow and bowel plateaus that pass a fixed floor are not lesions [REC]; no
    # test against the spread of the surroundings: FDG lesions are often large and heterogeneous,
    # their shell straddling tumour and muscle (a sarcoma's hottest spot stands 2.3 x its surroundings
    # but only 3 of their SDs above them)
    "min_local_contrast": 2.0,
    "local_contrast_sd": 0.0,
}

#: The segmentation preset of tracer families without one of their own.
GENERIC_PRESET = "generic"
#: The pipeline of tracer families without one of their own (FDG, choline, ...): research use.
GENERIC_PIPELINE = "generic"


def _profile(*, family: str, contract_family: str, agents: tuple[str, ...], preset: str,
             segmentation: dict[str, SettingValue], plausible_suv: dict[str, tuple[float, float]],
             blood_pool_levels: tuple[str, ...], mipsma_organ: str | None,
             default_pipeline: str | None) -> TracerProfile:
    """A ``TracerProfile`` whose mappings are read-only."""
    return TracerProfile(family, contract_family, agents, preset, MappingProxyType(segmentation),
                         MappingProxyType(plausible_suv), blood_pool_levels, mipsma_organ, default_pipeline)


def _renal_psma(family: str, agents: tuple[str, ...], *, liver_suv: tuple[float, float]) -> TracerProfile:
    """A PSMA ligand of renal clearance: its own preset, the liver the reference organ of the segmentation and of
    miPSMA (blood pool, liver, parotid glands: PROMISE, docs/detection.md#mipsma-expression-score)."""
    return _profile(family=family, contract_family="psma", agents=agents, preset=family,
                    segmentation={**_PSMA_RENAL, "reference_region": "liver"}, plausible_suv={"liver": liver_suv},
                    blood_pool_levels=_THORACIC_BLOOD_POOL, mipsma_organ="liver", default_pipeline="psma-salvage-rt")


# Presets: excretion and organ masks per family (docs/detection.md, physiological uptake and presets).
# Agents: docs/suv.md#tracer-recognition.
# Plausible SUVmean ranges: only the 18F-DCFPyL liver's was found in the literature; the other wide
# bounds [REC] only catch gross errors.
PROFILES: Mapping[str, TracerProfile] = MappingProxyType({p.family: p for p in (
    _renal_psma("psma_ga68", ("PSMA-11", "PSMA-617"), liver_suv=(1.5, 12.0)),  # [REC]
    # liver: mean +- 3 SD of 5.1 +- 0.7 (Li et al. J Nucl Med 2017;58:942-6, PMC5450367;
    # docs/detection.md#reference-regions)
    _renal_psma("psma_f18_renal", ("DCFPyL", "rhPSMA-7.3", "DCFBC"), liver_suv=(2.9, 7.1)),
    # PSMA-1007: hepatobiliary clearance, spleen is the reference organ (PROMISE V2) of the segmentation and of
    # miPSMA; its unspecific marrow uptake (docs/detection.md#physiological-uptake-psma) sets the bone threshold,
    # PERCIST-style against the lumbar marrow [REC].
    _profile(
        family="psma_f18_hepatobiliary",
        contract_family="psma",
        agents=("PSMA-1007",),
        preset="psma_f18_hepatobiliary",
        segmentation={**_PSMA_RENAL, "reference_region": "spleen", "bone_reference_region": "marrow"},
        plausible_suv={"liver": (3.0, 25.0), "spleen": (3.0, 25.0)},  # [REC]
        blood_pool_levels=_THORACIC_BLOOD_POOL,
        mipsma_organ="spleen",
        default_pipeline="psma-1007",
    ),
    # Fluciclovine: liver, pancreas, marrow, muscle; little early urine
    # (docs/detection.md#physiological-uptake-fluciclovine). Soft tissue above the aortic blood pool, bone above the
    # marrow (docs/detection.md#fluciclovine-criteria), PERCIST-style mean x 1.5 + 2 SD [REC]; growth floor above the
    # skeletal-muscle background (docs/detection.md#physiological-uptake-fluciclovine) [REC].
    _profile(
        family="fluciclovine",
        contract_family="fluciclovine",
        agents=("fluciclovine",),
        preset="fluciclovine",
        segmentation={
            "method": "percist",
            "detect_suv": 3.0,
            "bone_suv": 3.0,
            "reference_region": "blood_pool",
            "bone_reference_region": "marrow",
            "grow_floor_suv": 2.0,
            "suppress_organs": ("pancreas",),
            "suppress_excess_organs": ("liver", "spleen", "kidneys", "bowel", "prostate", "heart"),
            "halo_organs": ("urinary_bladder",),
            "ureters": False,
        },
        plausible_suv={"liver": (2.0, 15.0)},  # [REC]
        blood_pool_levels=("L3",),  # abdominal aorta at L3 (Axumin, docs/detection.md#reference-regions)
        mipsma_organ=None,
        default_pipeline="fluciclovine",
    ),
    _profile(
        family="fdg",
        contract_family="fdg",
        agents=("FDG",),
        preset=GENERIC_PRESET,
        segmentation=_GENERIC,
        plausible_suv={},
        blood_pool_levels=_THORACIC_BLOOD_POOL,
        mipsma_organ=None,
        default_pipeline=GENERIC_PIPELINE,
    ),
    # not recognised from the header (e.g. an 18F PSMA agent that is not named): no pipeline is assumed
    _profile(
        family="unknown",
        contract_family="unknown",
        agents=(),
        preset=GENERIC_PRESET,
        segmentation=_GENERIC,
        plausible_suv={},
        blood_pool_levels=_THORACIC_BLOOD_POOL,
        mipsma_organ=None,
        default_pipeline=None,
    ),
)})


# The tracer names a user gives (``localize run --tracer``, a pipeline's ``tracer``): the contract's families.
USER_TRACERS: tuple[str, ...] = tuple(dict.fromkeys(p.contract_family for p in PROFILES.values()
                                                    if p.contract_family != "unknown"))


def tracer_profile(name: str) -> TracerProfile:
    """The profile of a tracer family, of a segmentation preset name or of a contract family (its first family
    in ``PROFILES``: ``psma_ga68`` for "psma"); KeyError for any other name."""
    if name in PROFILES:
        return PROFILES[name]
    for profile in PROFILES.values():
        if name in (profile.preset, profile.contract_family):
            return profile
    raise KeyError(name)
