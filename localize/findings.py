"""Result types shared by segmentation, classification and the exports.

``Lesion`` is filled in two steps: ``segment`` measures it (PET frame, LPS mm,
body-weight SUV), ``classify`` labels it. ``Findings`` is the whole result of a
study and serialises to findings.json per the contract
(``localize/schema/findings.schema.json``, schema ``localize.findings/1``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from typing import Any, NotRequired, TypedDict

SCHEMA_ID = "localize.findings/1"

Point = tuple[float, float, float]  # LPS mm unless the field name says otherwise


class StudyIdentity(TypedDict):
    """findings.json ``study``."""

    study_instance_uid: str
    patient_id: str | None
    study_date: str | None


class TracerRecord(TypedDict):
    """findings.json ``tracer``: the contract's family, the detailed one, the agent and the SUV calibration."""

    family: str  # psma / fluciclovine / fdg / unknown
    family_detail: str  # e.g. psma_f18_renal
    agent: str | None
    radiopharmaceutical: str | None
    radionuclide: str | None
    half_life_s: float | None
    injected_activity_bq: float | None
    suv: dict[str, Any]  # the SUV calibration's provenance (``SuvCalibration.to_dict`` without factors)


class SeriesRecord(TypedDict):
    """One series of findings.json ``series``."""

    series_instance_uid: str
    modality: str
    description: str | None
    frame_of_reference_uid: str | None


class SeriesRecords(TypedDict):
    """findings.json ``series``: the PET and, when used, the CT and MR."""

    pet: SeriesRecord
    ct: SeriesRecord | None
    mr: SeriesRecord | None


class MrToPetRecord(TypedDict):
    """findings.json ``registration.mr_to_pet`` (``Registration.to_dict``, with ``used`` in a run)."""

    matrix_lps: list[list[float]]  # 4x4, MR LPS -> PET/CT LPS
    metric: float
    method: str
    quality: str
    reasons: list[str]
    iterations: list[int]
    body_dice: float
    used: NotRequired[bool]  # whether it passed its check and gave MR coordinates


class RegistrationRecord(TypedDict):
    """findings.json ``registration`` (null without an MR; ``mr_to_pet`` null when the registration failed)."""

    mr_to_pet: MrToPetRecord | None


class ParametersRecord(TypedDict, total=False):
    """findings.json ``parameters``: the effective segmentation settings, the preset and its thresholds."""

    segmentation: dict[str, Any]  # ``SegmentationSettings.to_dict``
    preset: str
    thresholds_suv: dict[str, float]


@dataclass
class Lesion:
    """One segmented lesion. SUVs are SUVbw (g/ml); points are LPS mm in the PET frame."""

    label: int  # value of this lesion in the lesion label image (PET grid)
    suv_max: float
    suv_peak: float
    suv_mean: float
    volume_ml: float
    total_uptake: float  # suv_mean x volume_ml
    max_diameter_mm: float
    peak_lps_mm: Point
    centroid_lps_mm: Point
    target_lps_mm: Point  # uptake-weighted centroid: where a planner aims
    n_voxels: int = 0
    id: int = 0  # 1..n by suv_max descending, set by ``number_lesions``
    region: str | None = None  # local / nodal / distant, or unclassified (site unknown, mitnm "")
    site: str | None = None
    mitnm: str | None = None
    laterality: str | None = None  # left / right / midline; None without a patient midline
    bone: str | None = None  # named bone for bone lesions
    region_uncertain: bool = False
    region_candidates: list[str] = field(default_factory=list)
    mipsma: int | None = None
    fluciclovine_suspicious: bool | None = None
    target_mr_lps_mm: Point | None = None


@dataclass
class Candidate:
    """A hot spot that did not become a lesion, kept for audit."""

    peak_lps_mm: Point
    suv_max: float
    reason: str  # e.g. "below threshold", "physiological: bladder", "too small"


@dataclass
class Findings:
    """Everything ``localize run`` reports for one study (see the contract)."""

    study: StudyIdentity
    frame_of_reference_uid: str
    tracer: TracerRecord
    series: SeriesRecords
    lesions: list[Lesion] = field(default_factory=list)
    staging: dict[str, Any] = field(default_factory=lambda: {"summary": "no lesion"})  # ``classify.stage`` + status
    registration: RegistrationRecord | None = None
    reference_regions: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> ``ReferenceRegion.to_dict``
    candidates: list[Candidate] = field(default_factory=list)
    parameters: ParametersRecord = field(default_factory=lambda: ParametersRecord())
    outputs: dict[str, str] = field(default_factory=dict)
    failed_exports: dict[str, str] = field(default_factory=dict)  # export name -> why it was not written
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The findings.json document (schema ``localize.findings/1``)."""
        from localize import __version__

        doc: dict[str, Any] = {
            "schema": SCHEMA_ID,
            "software": {"name": "localize", "version": __version__},
            **{k: v for k, v in asdict(self).items() if k != "lesions"},
            "lesions": [_lesion_dict(lesion) for lesion in self.lesions],
        }
        return doc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Findings:
        """The findings back from their findings.json document (``to_dict``'s inverse; points as tuples)."""
        lesion_fields = {f.name for f in fields(Lesion)}
        lesions, candidates = [], []
        for lesion in doc["lesions"]:  # JSON values of every kind, by field name
            values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) and k.endswith("_mm") else v
                                      for k, v in lesion.items() if k in lesion_fields}
            lesions.append(Lesion(**values))
        for c in doc.get("candidates", []):
            values = {k: tuple(v) if isinstance(v, list) else v for k, v in c.items()}
            candidates.append(Candidate(**values))
        names = {f.name for f in fields(cls)} - {"lesions", "candidates"}
        return cls(**{k: doc[k] for k in names if k in doc}, lesions=lesions, candidates=candidates)


def _lesion_dict(lesion: Lesion) -> dict[str, Any]:
    d = asdict(lesion)
    for key, value in d.items():
        if isinstance(value, tuple):
            d[key] = [float(v) for v in value]
    return d


def number_lesions(lesions: list[Lesion]) -> list[Lesion]:
    """Sort by SUVmax descending and set ``id`` 1..n (the contract's order)."""
    ordered = sorted(lesions, key=lambda lesion: -lesion.suv_max)
    for i, lesion in enumerate(ordered, start=1):
        lesion.id = i
    return ordered


def findings_schema() -> dict[str, Any]:
    """The findings.json JSON Schema shipped with the package."""
    text = resources.files("localize").joinpath("schema/findings.schema.json").read_text()
    return json.loads(text)


def validate_findings(doc: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if ``doc`` breaks the contract."""
    import jsonschema

    jsonschema.validate(doc, findings_schema())
