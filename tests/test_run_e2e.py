"""`localize run` end to end on phantom studies: the contract, the numbers, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from helpers.contract import check_contract
from helpers.data import tree_digest

from localize.config import load_pipeline
from localize.errors import StudyError
from localize.load.index import index_folder
from localize.load.pet import load_pet
from localize.load.plan import single_plan
from localize.load.volume import load_series
from localize.pipeline import analyse

pytestmark = pytest.mark.slow

TARGET_TOLERANCE_MM = 4.0  # about one PET voxel: a detection must sit on its true lesion
MR_TARGET_TOLERANCE_MM = 5.0  # target error plus registration error, both in the MR frame


def run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "localize", *map(str, args)], capture_output=True, text=True)


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


def test_a_failed_export_leaves_the_others_and_says_so(phantom, tmp_path):
    # lesions.csv cannot be written where a folder of that name stands: the CSV export fails for real
    root, _ = phantom(seed=3)
    out = tmp_path / "out"
    (out / "lesions.csv").mkdir(parents=True)
    result = run("run", root / "dicom", "--out", out, "--pipeline", "research")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("localize: error")]
    assert len(errors) == 1 and "csv" in errors[0] and "Traceback" not in result.stderr
    doc = json.loads((out / "findings.json").read_text())
    check_contract(doc)
    assert set(doc["failed_exports"]) == {"csv"} and any("export csv failed" in w for w in doc["warnings"])
    for name in ("rtstruct", "seg", "nifti", "report"):
        assert Path(doc["outputs"][name]).is_file(), name
    assert not list(out.glob("*.part")) and not list(out.glob(".*tmp*"))


@pytest.fixture(scope="module")
def thigh_mr(testdata):
    return load_series(sorted((testdata / "studies/tcia-sts-001/MR_T1/image").glob("*.dcm")))


@pytest.mark.testdata
def test_an_mr_that_cannot_be_registered_degrades_the_run(phantom, thigh_mr):
    # a thigh MR of another patient beside a pelvic PET/CT: the registration cannot be right
    root, _ = phantom(seed=3)
    files = single_plan(index_folder(root / "dicom")).manifest()["files"]
    pet, ct = load_pet([Path(f) for f in files["pet"]]), load_series([Path(f) for f in files["ct"]])
    config = load_pipeline("psma-salvage-rt")
    result = analyse(pet, ct, thigh_mr, [], "psma_f18_renal", config)
    doc = result.findings.to_dict()
    check_contract(doc)
    assert result.registration is None and (doc["registration"]["mr_to_pet"] or {}).get("used", False) is False
    assert any(w.startswith("MR not used") for w in doc["warnings"])
    assert len(doc["lesions"]) >= 5 and all(les["target_mr_lps_mm"] is None for les in doc["lesions"])
    config.registration["require_mr"] = True
    with pytest.raises(StudyError, match="requires the MR") as info:
        analyse(pet, ct, thigh_mr, [], "psma_f18_renal", config)
    assert "\n" not in str(info.value)


def test_pipeline_names_resolve_whatever_the_working_folder_holds(tmp_path, monkeypatch):
    (tmp_path / "research").mkdir()
    (tmp_path / "psma-1007").write_text("not a pipeline")
    result = subprocess.run([sys.executable, "-m", "localize", "pipelines"], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 0 and "research" in result.stdout and "Traceback" not in result.stderr
    monkeypatch.chdir(tmp_path)
    assert load_pipeline("research").name == "research" and load_pipeline("psma-1007").name == "psma-1007"
    result = run("run", tmp_path, "--out", tmp_path.parent / f"{tmp_path.name}_out", "--pipeline", "nope")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "unknown pipeline 'nope'" in result.stderr
