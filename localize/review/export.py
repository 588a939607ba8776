"""``localize export OUT``: the run's exports rewritten from the reviewed lesions.

The automatic result is kept in ``OUT/automatic/`` (copied on the first export, never
overwritten); every export starts from it, applies ``review.json`` (rejected and deleted
lesions out, relabels, added lesions re-grown from their recorded seed) and rewrites
findings.json, the lesion table, the RTSTRUCT(s), the SEG, the label map and the report with
the run's own writers (``localize.pipeline.export_all``: new SOP and Series Instance UIDs).
The review is recorded in findings.json under ``review`` (the schema allows extra keys).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import SimpleITK as sitk

from localize.errors import StudyError
from localize.findings import Findings, Lesion, number_lesions, validate_findings
from localize.review.volumes import LABELS_FILE, PET_FILE, VOLUMES

if TYPE_CHECKING:
    from localize.detection.segment import SegmentationSettings
    from localize.pipeline import Analysis

AUTOMATIC = "automatic"
REWRITTEN = ("csv", "rtstruct", "rtstruct_mr", "seg", "nifti", "report")  # the exports a review changes
_KEPT = ("findings.json", "lesions.csv", "rtstruct_ct.dcm", "rtstruct_pet.dcm", "rtstruct_mr.dcm", "seg_pet.dcm",
         LABELS_FILE, "lesions.json", "report.png", "report.html")


def keep_automatic(out: Path) -> Path:
    """Copy the run's own outputs into ``out/automatic`` unless already there; returns that folder."""
    kept = out / AUTOMATIC
    if not (kept / "findings.json").is_file():
        staging = out / f".{AUTOMATIC}.part"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for name in _KEPT:
            if (out / name).is_file():
                shutil.copy2(out / name, staging / name)
        staging.replace(kept)
    return kept


def _settings(doc: dict[str, Any]) -> SegmentationSettings:
    from localize.detection.segment import SegmentationSettings

    recorded = doc["parameters"]["segmentation"]
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in recorded.items()}  # JSON values
    return SegmentationSettings(**values)


def _labels_and_pet(out: Path) -> tuple[np.ndarray, sitk.Image]:
    """(automatic label array z, y, x, PET SUV image LPS) read from the run's NIfTI files."""
    from localize.export.nifti import read_nifti

    kept = out / AUTOMATIC / LABELS_FILE
    labels = read_nifti(kept if kept.is_file() else out / LABELS_FILE)
    return sitk.GetArrayFromImage(labels).astype(np.uint16), read_nifti(out / VOLUMES / PET_FILE)


def _grow_added(point_lps_mm, taken: np.ndarray, pet: sitk.Image,
                doc: dict[str, Any]) -> tuple[np.ndarray, Lesion] | None:
    """``segment_seeded`` with the run's recorded settings, outside ``taken`` (z, y, x bool)."""
    from localize.detection.segment import segment_seeded

    threshold = float(doc["parameters"].get("thresholds_suv", {}).get("soft_tissue_suv", 0.0))
    return segment_seeded(pet, point_lps_mm, _settings(doc), threshold_suv=threshold, exclude=taken)


def added_lesion(out: Path, review: dict[str, Any], point_lps_mm) -> tuple[np.ndarray, Lesion] | None:
    """A lesion grown from ``point_lps_mm`` outside the automatic and already added lesions."""
    from localize.review.actions import automatic_findings

    doc = automatic_findings(out)
    labels, pet = _labels_and_pet(out)
    taken = labels > 0
    for entry in review["added"]:
        grown = _grow_added(entry["seed_lps_mm"], taken, pet, doc)
        if grown is not None:
            taken |= grown[0]
    return _grow_added(point_lps_mm, taken, pet, doc)


def reviewed_findings(out: Path, review: dict[str, Any]) -> tuple[Findings, np.ndarray, list[str]]:
    """(reviewed findings renumbered 1..n by SUVmax, their label array z, y, x on the PET grid, changes)."""
    from localize.classify import stage
    from localize.review.actions import automatic_findings

    doc = automatic_findings(out)
    labels, pet = _labels_and_pet(out)
    findings = Findings.from_dict(doc)
    dropped = {int(k) for k, v in review["decisions"].items() if v == "reject"} | set(review["deleted"])
    changes, masks = [], []
    for lesion in findings.lesions:
        if lesion.id in dropped:
            how = "rejected" if lesion.id not in review["deleted"] else "deleted"
            changes.append(f"lesion {lesion.id} removed ({how})")
            continue
        relabel = review["relabels"].get(str(lesion.id))
        if relabel:
            changes.append(f"lesion {lesion.id} relabelled {lesion.region}/{lesion.site} -> "
                           f"{relabel['region']}/{relabel['site']}")
            lesion.region, lesion.site, lesion.mitnm = relabel["region"], relabel["site"], relabel["mitnm"]
            lesion.region_uncertain, lesion.region_candidates = False, []
        masks.append((lesion, labels == lesion.label))
    taken = labels > 0
    for entry in review["added"]:
        if entry["id"] in dropped:
            continue
        grown = _grow_added(entry["seed_lps_mm"], taken, pet, doc)
        if grown is None:
            continue
        mask, lesion = grown
        call = review["relabels"].get(str(entry["id"]), entry)
        lesion.region, lesion.site, lesion.mitnm = call["region"], call["site"], call["mitnm"]
        taken = taken | mask
        masks.append((lesion, mask))
        changes.append(f"lesion added at LPS ({', '.join(f'{v:.1f}' for v in entry['seed_lps_mm'])}) mm")
    findings.lesions = number_lesions([lesion for lesion, _ in masks])
    reviewed = np.zeros(labels.shape, np.uint16)
    for lesion, mask in masks:
        lesion.label = lesion.id
        reviewed[mask] = lesion.id
    findings.staging = stage(findings.lesions, status=doc["staging"].get("status")) | {
        k: v for k, v in doc["staging"].items() if k in ("status", "status_evidence")}
    return findings, reviewed, changes


def export_reviewed(out: str | Path, review: dict[str, Any] | None = None) -> dict[str, str]:
    """Rewrite OUT's exports from the reviewed lesions (``review.json`` unless given); returns {export: path}."""
    from localize.atomic import write_json
    from localize.pipeline import export_all
    from localize.review.actions import REVIEW_FILE
    from localize.review.server import check_output

    out = check_output(out)
    if review is None:
        if not (out / REVIEW_FILE).is_file():
            raise StudyError("not found: nothing reviewed yet (run `localize review` first)", out / REVIEW_FILE)
        review = json.loads((out / REVIEW_FILE).read_text())
    keep_automatic(out)
    findings, labels_zyx, changes = reviewed_findings(out, review)
    result = _load_analysis(out, findings, labels_zyx)
    automatic_outputs = findings.outputs
    findings.outputs, findings.failed_exports = export_all(result, [e for e in REWRITTEN if e in automatic_outputs],
                                                           out)
    findings.outputs |= {k: v for k, v in automatic_outputs.items() if k not in REWRITTEN + ("report_png",)}
    doc = findings.to_dict() | {"review": {"reviewer": review.get("reviewer", ""), "time": review.get("updated"),
                                           "changes": changes, "automatic": str(out / AUTOMATIC / "findings.json")}}
    validate_findings(doc)
    write_json(out / "findings.json", doc)
    return findings.outputs


def _load_analysis(out: Path, findings: Findings, labels_zyx: np.ndarray) -> Analysis:
    """The loaded series the writers need (from provenance.json's inputs) around the reviewed findings."""
    from localize.detection.segment import Segmentation
    from localize.load.opened import open_inputs
    from localize.load.plan import StudyInputs
    from localize.pipeline import Analysis
    from localize.registration import check_pet_ct, load_registration

    inputs = json.loads((out / "provenance.json").read_text())["inputs"]
    files = {role: [Path(item["path"]) for item in items] for role, items in inputs.items()}
    missing = [p for items in files.values() for p in items if not p.is_file()]
    if missing:
        raise StudyError("an input of the run is no longer there; the DICOM exports need it", missing[0])
    study_inputs = StudyInputs(pet=files["pet"], ct=files.get("ct", []), mr=files.get("mr", []),
                               rtstruct=files.get("rtstruct", []))
    study = open_inputs(study_inputs, findings.tracer["family_detail"])
    pet, ct, mr = study.pet, study.ct, study.mr
    ct_to_pet = None
    if ct is not None:
        frame = check_pet_ct(pet.image, ct.image, pet.volume.frame_of_reference_uid, ct.frame_of_reference_uid)
        ct_to_pet = None if frame.same_frame_of_reference else frame.transform.GetInverse()
    registration = None
    if mr is not None and (out / "mr_to_pet.tfm").is_file():
        registration = load_registration(out / "mr_to_pet.tfm")
    labels = sitk.GetImageFromArray(labels_zyx)
    labels.CopyInformation(pet.image)
    return Analysis(pet, ct, mr if registration is not None else None, registration, ct_to_pet, None,
                    Segmentation(labels=labels, lesions=findings.lesions), findings)
