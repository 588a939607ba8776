"""`localize run` end to end on phantom studies: the contract, the numbers, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from localize.findings import validate_findings

from conftest import SHARED_CONTRACT, tree_digest

TARGET_TOLERANCE_MM = 4.0  # about one PET voxel: a detection must sit on its true lesion
MR_TARGET_TOLERANCE_MM = 5.0  # target error plus registration error, both in the MR frame


def run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "localize", *map(str, args)], capture_output=True, text=True)


def check_contract(doc: dict) -> None:
    validate_findings(doc)
    contract = SHARED_CONTRACT / "findings.schema.json"
    if contract.is_file():
        import jsonschema

        jsonschema.validate(doc, json.loads(contract.read_text()))


def match(truth_lesions, lesions, key="target_lps_mm", truth_key="center_lps_mm"):
    """Pairs (truth, lesion, distance mm) of each truth lesion with its nearest detection."""
    pairs = []
    for t in truth_lesions:
        if not lesions:
            break
        d = [np.linalg.norm(np.subtract(l[key], t[truth_key])) for l in lesions]
        i = int(np.argmin(d))
        pairs.append((t, lesions[i], d[i]))
    return pairs


@pytest.fixture(scope="module")
def psma_run(phantom, tmp_path_factory):
    root, truth = phantom(with_mr=True, seed=3)
    out = tmp_path_factory.mktemp("run")
    before = tree_digest(root / "dicom")
    result = run("run", root / "dicom", "--out", out, "--pipeline", "research")
    return root, truth, out, result, before


def test_run_writes_findings_per_contract_and_touches_no_input(psma_run):
    root, truth, out, result, before = psma_run
    assert result.returncode == 0, result.stderr
    doc = json.loads((out / "findings.json").read_text())
    check_contract(doc)
    assert doc["tracer"]["family"] == "psma"
    assert [l["id"] for l in doc["lesions"]] == list(range(1, len(doc["lesions"]) + 1))
    assert all(a["suv_max"] >= b["suv_max"] for a, b in zip(doc["lesions"], doc["lesions"][1:]))
    assert tree_digest(root / "dicom") == before
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["configuration"]["name"] == "research"
    pet_files = provenance["inputs"]["pet"]
    series_dirs = json.loads((root / "truth" / "truth.json").read_text())["series_dirs"]
    pet_dir = root / series_dirs["PT"]
    assert len(pet_files) == len(list(pet_dir.iterdir()))
    assert all(len(f["sha256"]) == 64 for f in pet_files)
    for name in ("csv", "rtstruct", "rtstruct_mr", "seg", "nifti", "report", "registration"):
        assert Path(doc["outputs"][name]).is_file(), name
    assert not list(out.glob("*.part")), "no temporary file may be left behind"


def test_run_finds_the_lesions_where_they_are_in_both_frames(psma_run):
    root, truth, out, result, _ = psma_run
    doc = json.loads((out / "findings.json").read_text())
    visible = [t for t in json.loads((root / "truth" / "truth.json").read_text())["lesions"]
               if t["diameter_mm"] >= 8 and t["suv_max"] >= 4]
    pairs = match(visible, doc["lesions"])
    found = [(t, l, d) for t, l, d in pairs if d <= TARGET_TOLERANCE_MM]
    assert len(found) >= 0.95 * len(visible), [(t["site"], round(d, 1)) for t, _, d in pairs]
    for t, lesion, _ in found:
        assert lesion["region"] == t["region"], (t["site"], lesion["site"])
        assert lesion["suv_max"] == pytest.approx(t["suv_max"], rel=0.15)
        if t.get("center_mr_lps_mm") is not None:
            err = np.linalg.norm(np.subtract(lesion["target_mr_lps_mm"], t["center_mr_lps_mm"]))
            assert err <= MR_TARGET_TOLERANCE_MM, (t["site"], err)


def test_run_rtstruct_references_the_ct(psma_run):
    root, truth, out, result, _ = psma_run
    doc = json.loads((out / "findings.json").read_text())
    rt = pydicom.dcmread(doc["outputs"]["rtstruct"])
    assert rt.Modality == "RTSTRUCT" and rt.ApprovalStatus == "UNAPPROVED"
    assert rt.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID == doc["series"]["ct"]["frame_of_reference_uid"]
    gtvs = [r for r in rt.RTROIObservationsSequence if r.RTROIInterpretedType == "GTV"]
    assert len(gtvs) == len(doc["lesions"])


def test_study_without_lesions_still_writes_valid_findings(phantom, tmp_path):
    root, _ = phantom(lesions=(), seed=4)
    result = run("run", root / "dicom", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    doc = json.loads((tmp_path / "out" / "findings.json").read_text())
    check_contract(doc)
    assert doc["lesions"] == [] and doc["staging"]["summary"]
    assert Path(doc["outputs"]["rtstruct"]).is_file()


@pytest.mark.parametrize(
    "defect, message",
    [("no_pet", "no PET series"), ("no_radiopharmaceutical_sequence", "RadiopharmaceuticalInformationSequence")],
)
def test_bad_study_gives_one_line_error_and_no_findings(phantom, tmp_path, defect, message):
    root, _ = phantom(lesions=(), seed=5, defect=defect)
    result = run("run", root / "dicom", "--out", tmp_path / "out")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "findings.json").exists()


def test_output_inside_the_study_is_refused(phantom):
    root, _ = phantom(lesions=(), seed=4)
    result = run("run", root / "dicom", "--out", root / "dicom" / "out")
    assert result.returncode == 2 and "must not be inside" in result.stderr
    assert not (root / "dicom" / "out").exists()
