"""Which series make up one run: a PET, its CT, the patient's MR, RTSTRUCTs.

In archives the MR is usually a separate study of the same patient, often on
another day: each PET study is paired with that patient's MR nearest in date
within a window. ``localize run`` and ``localize batch`` share these rules.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from localize.errors import StudyError
from localize.load.index import Archive, Patient, Series, Study

DEFAULT_MR_WINDOW_DAYS = 90.0
# PET series that are not the attenuation-corrected image volume a run needs.
_NOT_AC_PET = re.compile(r"\bnac\b|non[-_ ]?ac|uncorr|no[-_ ]?ac\b|\bmip\b|screen|fused", re.IGNORECASE)
_T2 = re.compile(r"t2", re.IGNORECASE)


@dataclass
class StudyPlan:
    """One PET study's inputs (or why it cannot run: ``error`` with a short ``reason``)."""

    patient_key: str
    study_uid: str
    study_date: str | None
    pet: Series | None = None
    ct: Series | None = None
    mr: Series | None = None
    mr_days_apart: float | None = None
    rtstructs: list[Series] = field(default_factory=list)
    reason: str | None = None
    error: str | None = None

    @property
    def name(self) -> str:
        """A folder name for this run's outputs that carries no patient identity."""
        digest = hashlib.sha1(self.study_uid.encode()).hexdigest()[:12]
        return f"study-{self.study_date or 'nodate'}-{digest}"

    def manifest(self, pipeline: str | None = None) -> dict[str, Any]:
        """Plain JSON values a worker process needs to run this study."""
        def files(series: Series | None) -> list[str]:
            return list(series.files) if series else []

        return {
            "name": self.name,
            "study_uid": self.study_uid,
            "patient_key": self.patient_key,
            "pet": self.pet.series_instance_uid if self.pet else None,
            "ct": self.ct.series_instance_uid if self.ct else None,
            "mr": self.mr.series_instance_uid if self.mr else None,
            "mr_days_apart": self.mr_days_apart,
            "pipeline": pipeline,
            "files": {
                "pet": files(self.pet),
                "ct": files(self.ct),
                "mr": files(self.mr),
                "rtstruct": [f for s in self.rtstructs for f in s.files],
            },
        }


@dataclass
class StudyInputs:
    """The files of one run, by role (what a plan's manifest carries to a worker). MR and RTSTRUCT are optional."""

    pet: list[Path]
    ct: list[Path] = field(default_factory=list)
    mr: list[Path] = field(default_factory=list)
    rtstruct: list[Path] = field(default_factory=list)
    anatomy: Path | None = None  # imported anatomy: a folder of masks or a NIfTI label map (e.g. TotalSegmentator)
    root: str = ""  # where they were found, for messages

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], *, root: str = "",
                      anatomy: str | Path | None = None) -> StudyInputs:
        """The inputs listed in ``StudyPlan.manifest()``'s ``files``."""
        files = manifest["files"]
        return cls(pet=[Path(f) for f in files["pet"]], ct=[Path(f) for f in files["ct"]],
                   mr=[Path(f) for f in files["mr"]], rtstruct=[Path(f) for f in files["rtstruct"]],
                   anatomy=Path(anatomy) if anatomy else None, root=root)


def plan_studies(archive: Archive, *, mr_window_days: float = DEFAULT_MR_WINDOW_DAYS) -> list[StudyPlan]:
    """A plan per study: runnable for PET studies, a reason for the others.

    A study without PET whose MR serves a PET study of the same patient gets no
    plan of its own; one that serves none is listed with reason ``no PET``.
    """
    plans: list[StudyPlan] = []
    for key, patient in archive.patients.items():
        used_mr_studies: set[str] = set()
        for study in patient.studies.values():
            pet = choose_pet(study)
            if pet is None:
                continue
            mr, days = choose_mr(patient, study, mr_window_days)
            if mr is not None:
                used_mr_studies.add(mr.study_instance_uid)
            ct = study.ct_for(pet)
            plans.append(StudyPlan(key, study.study_instance_uid, study.study_date, pet=pet, ct=ct,
                                   mr=mr, mr_days_apart=days, rtstructs=_rtstructs_for(study, ct or pet)))
        for study in patient.studies.values():
            if not study.pet_series() and study.study_instance_uid not in used_mr_studies:
                modalities = sorted({s.modality or "?" for s in study.series.values()})
                plans.append(StudyPlan(key, study.study_instance_uid, study.study_date, reason="no PET",
                                       error=f"no PET series (only {', '.join(modalities)})"))
    return plans


def single_plan(archive: Archive, *, mr_window_days: float = DEFAULT_MR_WINDOW_DAYS) -> StudyPlan:
    """The one PET study of a ``localize run`` folder; StudyError if none or several."""
    runnable = [p for p in plan_studies(archive, mr_window_days=mr_window_days) if p.error is None]
    if not runnable:
        found = sorted({s.modality or "?" for s in archive.all_series()})
        raise StudyError(f"no PET series found (series found: {', '.join(found) or 'none'})", archive.root)
    if len(runnable) > 1:
        raise StudyError(
            f"{len(runnable)} PET studies found; give a folder holding one patient's work-up "
            "(or use `localize batch`)", archive.root)
    return runnable[0]


def choose_pet(study: Study) -> Series | None:
    """The attenuation-corrected PET volume of a study (not NAC, MIP or screenshots)."""
    candidates = [s for s in study.pet_series() if s.instance_count > 1 or s.geometry.n_frames > 1]
    preferred = [s for s in candidates if not _NOT_AC_PET.search(s.description or "")]
    found = preferred or candidates
    return found[0] if found else None


def choose_mr(patient: Patient, pet_study: Study, window_days: float) -> tuple[Series | None, float | None]:
    """The patient's MR series nearest in date to ``pet_study`` (within the window).

    Within the chosen day: a T2-weighted axial volume first, then the largest.
    Returns (series, days apart) or (None, None).
    """
    pet_day = _day(pet_study.study_date)
    best: tuple[tuple, Series, float | None] | None = None
    for study in patient.studies.values():
        for mr in study.mr_series():
            if mr.instance_count < 2 and mr.geometry.n_frames < 2:
                continue
            mr_day = _day(mr.series_date or study.study_date)
            days = abs((mr_day - pet_day).days) if (mr_day and pet_day) else None
            if days is not None and days > window_days:
                continue
            score = (
                days if days is not None else window_days,  # undated: last among those in the window
                0 if _T2.search(mr.description or "") else 1,
                0 if mr.geometry.orientation == "axial" else 1,
                -mr.instance_count * max(mr.geometry.n_frames, 1),
            )
            if best is None or score < best[0]:
                best = (score, mr, float(days) if days is not None else None)
    return (best[1], best[2]) if best else (None, None)


def _rtstructs_for(study: Study, image: Series) -> list[Series]:
    """RTSTRUCTs of the study that reference ``image`` or share its frame of reference."""
    out = []
    for s in study.series_of("RTSTRUCT"):
        if image.series_instance_uid in s.referenced_series_uids or (
            s.frame_of_reference_uid and s.frame_of_reference_uid == image.frame_of_reference_uid
        ):
            out.append(s)
    return out


def _day(value: str | None) -> date | None:
    if not value or len(value) < 8 or not value[:8].isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return None


def catalog_records(archive: Archive) -> tuple[list[dict], list[dict], list[tuple[str, str]]]:
    """The index as rows for ``localize.batch.catalog.Catalog.record_index``."""
    patients, series = [], []
    for key, patient in archive.patients.items():
        studies = []
        for study in patient.studies.values():
            studies.append({
                "study_uid": study.study_instance_uid,
                "study_date": study.study_date,
                "modalities": sorted({s.modality or "?" for s in study.series.values()}),
            })
            for s in study.series.values():
                series.append({
                    "series_uid": s.series_instance_uid,
                    "study_uid": study.study_instance_uid,
                    "modality": s.modality,
                    "description": s.description,
                    "frame_of_reference_uid": s.frame_of_reference_uid,
                    "n_files": s.instance_count,
                    "tracer": s.tracer.family if s.tracer else None,
                })
        patients.append({"patient_key": key, "patient_id": patient.patient_id, "studies": studies})
    return patients, series, list(archive.unreadable)
