"""What study to generate: ``StudySpec`` (defaults = the demo study) and ``LesionSpec``."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from localize.errors import ConfigError

GENERATOR_VERSION = "3"

TRACERS = ("psma11", "dcfpyl", "psma1007", "fluciclovine")
# the preset (``localize.tracers`` family) that each tracer's radiopharmaceutical code selects
TRACER_FAMILY = {"psma11": "psma_ga68", "dcfpyl": "psma_f18_renal", "psma1007": "psma_f18_hepatobiliary",
                 "fluciclovine": "fluciclovine"}
VENDORS = ("siemens", "ge", "philips")
DEFECTS = (None, "no_radiopharmaceutical_sequence", "truncated_file", "missing_slice", "no_pet")
SITES = ("prostate_bed", "prostate_bed_bladder", "prostate", "obturator", "external_iliac", "internal_iliac",
         "presacral", "common_iliac", "retroperitoneal", "inguinal", "supradiaphragmatic", "bone_pelvis",
         "bone_spine", "bone_rib", "lung", "liver", "prostate_bladder", "bone_sacrum")


@dataclass(frozen=True)
class LesionSpec:
    """One lesion: ``site`` from ``SITES`` (placed by site, jittered by the seed); side "left"/"right"/None."""

    site: str
    diameter_mm: float
    suv_max: float
    side: str | None = None


# The demo set: every site the classifier distinguishes, SUVmax 3-30, 5-25 mm.
DEFAULT_LESIONS: tuple[LesionSpec, ...] = (
    LesionSpec("prostate_bed", 12, 9.0), LesionSpec("prostate_bed_bladder", 10, 7.0),
    LesionSpec("obturator", 8, 6.0, "left"), LesionSpec("external_iliac", 10, 12.0, "right"),
    LesionSpec("internal_iliac", 7, 5.0, "left"), LesionSpec("presacral", 8, 4.0),
    LesionSpec("common_iliac", 9, 8.0, "right"), LesionSpec("retroperitoneal", 12, 14.0, "left"),
    LesionSpec("inguinal", 9, 3.5, "left"), LesionSpec("supradiaphragmatic", 11, 10.0, "left"),
    LesionSpec("bone_pelvis", 16, 18.0, "right"), LesionSpec("bone_spine", 14, 25.0),
    LesionSpec("bone_rib", 9, 6.0, "left"), LesionSpec("lung", 10, 5.0, "right"), LesionSpec("liver", 20, 30.0))


@dataclass(frozen=True)
class StudySpec:
    """A phantom study. Defaults give the demo study (whole body, 512 CT, all lesion sites, MR)."""

    seed: int = 1
    tracer: str = "dcfpyl"
    vendor: str = "siemens"
    patient_position: str = "HFS"
    status: str = "post_prostatectomy"
    extent: str = "whole_body"
    ct_matrix: int = 512
    ct_slice_mm: float = 3.0
    pet_voxel_mm: float = 4.0
    pet_fwhm_mm: float = 6.0
    pet_noise: float = 1.0
    lesions: str | tuple[LesionSpec, ...] = "default"
    with_mr: bool = True
    mr_offset_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    mr_oblique: bool = False
    layout: str = "nested"
    random_names: bool = False
    shuffle: bool = False
    defect: str | None = None

    def __post_init__(self):
        choices = {"tracer": TRACERS, "vendor": VENDORS, "patient_position": ("HFS", "FFS"),
                   "status": ("post_prostatectomy", "post_radiotherapy"), "extent": ("whole_body", "pelvis"),
                   "layout": ("nested", "flat"), "defect": DEFECTS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"StudySpec.{name}={getattr(self, name)!r} is not one of {allowed}")
        if not (self.lesions == "default" or isinstance(self.lesions, tuple)):
            raise ConfigError("StudySpec.lesions must be 'default' or a tuple of LesionSpec")
        for les in self.lesion_specs():
            if les.site not in SITES:
                raise ConfigError(f"LesionSpec.site={les.site!r} is not one of {SITES}")

    def lesion_specs(self) -> tuple[LesionSpec, ...]:
        if self.lesions != "default":
            return self.lesions
        if self.status == "post_radiotherapy":
            swap = {"prostate_bed": "prostate", "prostate_bed_bladder": "prostate"}
            return tuple(LesionSpec(swap.get(s.site, s.site), s.diameter_mm, s.suv_max, s.side)
                         for s in DEFAULT_LESIONS if s.site != "prostate_bed_bladder")
        return DEFAULT_LESIONS

    def key(self) -> str:
        """A stable text key of the spec and generator version (cache key)."""
        d = asdict(self)
        return f"v{GENERATOR_VERSION}:{sorted(d.items())!r}"


EXTENTS = ("pelvis", "abdomen_pelvis", "whole_body", "vertex_to_toes")
HARD_CASES = ("node_beside_ureter", "bladder_wall", "sacral_bone_by_bowel", "ureter_mimic")
# Seeds from here on are the validation split: nobody tunes a method on them (README.md, bench_generalize.py).
VALIDATION_SEED_START = 1000


@dataclass(frozen=True)
class VariedSpec:
    """A varied patient and scan drawn from ``seed``; see ``localize.sample_data.varied``.

    Seeds >= ``VALIDATION_SEED_START`` are the validation split, kept for measuring; tune on smaller ones.
    Fields left None are drawn from the seed; a field that is set overrides its draw and leaves every other
    draw unchanged (so one seed moved on the table or turned feet first is the same man). ``table_shift_mm``
    is added to the drawn table position. ``hard_cases`` (``HARD_CASES``) are added to the drawn lesions.
    ``ct_matrix_cap`` / ``pet_matrix_cap`` cap the in-plane matrices (coarser voxels over the same field of
    view) to keep tests and benchmarks small; ``pet_noise`` 0 gives a noise-free PET (tests).
    """

    seed: int
    tracer: str | None = None
    status: str | None = None
    extent: str | None = None
    patient_position: str | None = None
    vendor: str | None = None
    table_shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    hard_cases: tuple[str, ...] = ()
    ct_matrix_cap: int | None = None
    pet_matrix_cap: int | None = None
    pet_noise: float | None = None
    with_mr: bool = False
    layout: str = "nested"

    def __post_init__(self):
        choices = {"tracer": TRACERS, "vendor": VENDORS, "patient_position": ("HFS", "FFS"),
                   "status": ("post_prostatectomy", "post_radiotherapy"), "extent": EXTENTS}
        for name, allowed in choices.items():
            if getattr(self, name) not in (None, *allowed):
                raise ConfigError(f"VariedSpec.{name}={getattr(self, name)!r} is not one of {allowed}")
        if self.layout not in ("nested", "flat"):
            raise ConfigError(f"VariedSpec.layout={self.layout!r} is not one of ('nested', 'flat')")
        unknown = set(self.hard_cases) - set(HARD_CASES)
        if unknown:
            raise ConfigError(f"VariedSpec.hard_cases: {sorted(unknown)} not among {HARD_CASES}")
        for name in ("ct_matrix_cap", "pet_matrix_cap"):
            if getattr(self, name) is not None and getattr(self, name) < 32:
                raise ConfigError(f"VariedSpec.{name}={getattr(self, name)} is below 32")

    @property
    def validation(self) -> bool:
        return self.seed >= VALIDATION_SEED_START

    def key(self) -> str:
        """A stable text key of the spec and generator version (cache key, UIDs)."""
        return f"v{GENERATOR_VERSION}:varied:{sorted(asdict(self).items())!r}"
