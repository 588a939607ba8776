"""Whole analyses of small pelvis phantom studies: labels only where the image shows the deciding anatomy.

A pelvis-only field has no lungs, so no lesion in it is supradiaphragmatic; the treatment
status is read from the CT with its evidence in findings.json; a PET without CT gives
unclassified lesions and an incomplete staging; every document follows the contract.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from helpers.contract import check_contract

from localize.config import load_pipeline
from localize.export.rtstruct import roi_names
from localize.export.table import lesion_table_from_doc
from localize.findings import Lesion
from localize.load.index import index_folder
from localize.load.pet import load_pet
from localize.load.plan import single_plan
from localize.load.volume import load_series
from localize.pipeline import analyse

pytestmark = pytest.mark.slow


def _analysed(folder: Path, *, with_ct: bool = True, status: str = "auto"):
    files = single_plan(index_folder(folder)).manifest()["files"]
    pet = load_pet([Path(f) for f in files["pet"]])
    ct = load_series([Path(f) for f in files["ct"]]) if with_ct else None
    config = dataclasses.replace(load_pipeline("psma-salvage-rt"), status=status)
    findings = analyse(pet, ct, None, [], pet.calibration.tracer.family, config).findings
    doc = findings.to_dict()
    check_contract(doc)
    return doc


def _nearest(doc: dict, centre) -> dict:
    return min(doc["lesions"], key=lambda les: np.linalg.norm(np.subtract(les["target_lps_mm"], centre)))


@pytest.mark.parametrize("status", ["post_prostatectomy", "post_radiotherapy"])
def test_pelvis_only_study_labels_and_status_from_its_own_anatomy(phantom, status):
    root, truth = phantom(tracer="psma11", status=status, seed=7)
    doc = _analysed(root / "dicom")
    assert doc["lesions"]
    assert not any(les["site"] == "supradiaphragmatic" for les in doc["lesions"])
    assert not any(les["region"] == "unclassified" for les in doc["lesions"])
    assert "incomplete" not in doc["staging"]["summary"]
    assert "levels not found in the image: diaphragm (none is assumed" in " | ".join(doc["warnings"])
    staging = doc["staging"]
    assert staging["status"] == status, staging["status_evidence"]
    local = [t for t in truth.lesions if t.region == "local"]
    assert local
    for t in local:
        les = _nearest(doc, t.center_lps_mm)
        assert np.linalg.norm(np.subtract(les["target_lps_mm"], t.center_lps_mm)) <= 10.0
        assert (les["region"], les["site"]) == ("local", t.site)
    if status == "post_radiotherapy":
        # the gland's volume, place and uptake: the phantom's prostate is about 28 ml, hotter than muscle
        evidence = staging["status_evidence"]
        volume = float(evidence.split(" ml centred")[0].rsplit(" ", 1)[1])
        assert 20 <= volume <= 36, evidence
        assert "behind the pubis" in evidence and "below the bladder" in evidence
        ratio = float(evidence.split("median uptake ")[1].split(" x")[0])
        assert ratio > 1.5, evidence
    else:
        assert "no soft tissue of gland size" in staging["status_evidence"]


def test_a_given_status_that_the_anatomy_contradicts_is_used_and_questioned(phantom):
    root, _ = phantom(tracer="psma11", status="post_radiotherapy", seed=7)
    doc = _analysed(root / "dicom", status="post_prostatectomy")
    assert doc["staging"]["status"] == "post_prostatectomy" and doc["staging"]["mit"] in ("miT0", "miTr")
    assert doc["staging"]["status_evidence"].startswith("given by the pipeline")
    assert any("disagrees with the anatomy" in w and "intact gland" in w for w in doc["warnings"])


def test_pet_without_ct_gives_unclassified_lesions_and_an_incomplete_staging(phantom):
    root, _ = phantom(tracer="psma11", seed=7)
    doc = _analysed(root / "dicom", with_ct=False)
    lesions = doc["lesions"]
    assert lesions
    assert all((les["region"], les["site"], les["mitnm"]) == ("unclassified", "unknown", "") for les in lesions)
    assert all(les["laterality"] is None for les in lesions)  # no midline seen: no side guessed
    for les in lesions:
        where = ", ".join(f"{v:.1f}" for v in les["target_lps_mm"])
        assert sum(w.startswith(f"lesion {les['id']} at LPS ({where}) mm unclassified: no diaphragm")
                   for w in doc["warnings"]) == 1, les["id"]
    assert doc["staging"]["summary"] == f"miT0 miN0 miM0 (incomplete: {len(lesions)} lesions unclassified)"
    assert doc["staging"]["status"] == "unknown" and "not decided" in doc["staging"]["status_evidence"]
    # the table and the structure names carry the label as it is
    table = lesion_table_from_doc(doc)
    assert set(table["region"]) == {"unclassified"} and set(table["site"]) == {"unknown"}
    lesion = Lesion(**{k: v for k, v in lesions[0].items() if k in Lesion.__dataclass_fields__})
    assert roi_names(lesion) == ("GTV_01_unclassified", "TGT_01_unclassified")
