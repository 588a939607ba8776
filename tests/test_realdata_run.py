"""``localize run`` on a real patient folder: ../shared/testdata/studies/tcia-sts-001.

A whole-body FDG PET (no CT) with an RTSTRUCT of the thigh sarcoma (GTV_Mass) and a
separate thigh MR study that cannot be registered to the whole body. The run must
degrade, not fail: the generic preset, no MR coordinates, lesions unclassified for
want of anatomy, every export valid, the sarcoma found and the brain left alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from helpers.contract import check_contract
from helpers.tools import dciodvfy_errors
from scipy import ndimage

from localize.detection.metrics import lps_to_zyx
from localize.export.rtstruct import rtstruct_to_masks
from localize.load.pet import load_pet

pytestmark = [pytest.mark.testdata, pytest.mark.slow]

STUDY = "studies/tcia-sts-001"


def _run(study: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "localize", "run", str(study), "--out", str(out), *args],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def default_run(testdata, tmp_path_factory):
    out = tmp_path_factory.mktemp("sts_default")
    result = _run(testdata / STUDY, out)
    return result, out, json.loads((out / "findings.json").read_text())


@pytest.fixture(scope="module")
def pet(testdata):
    return load_pet(sorted((testdata / STUDY / "FDG_PET" / "image").glob("*.dcm")))


def test_default_run_degrades_and_says_why(default_run):
    result, out, doc = default_run
    assert result.returncode == 0, result.stderr
    check_contract(doc)
    warnings = " | ".join(doc["warnings"])
    assert "MR not used" in warnings and "generic preset" in warnings
    assert doc["parameters"]["preset"] == "generic"
    assert doc["registration"]["mr_to_pet"]["used"] is False
    assert doc["lesions"] and all(les["target_mr_lps_mm"] is None for les in doc["lesions"])
    # no CT and no imported anatomy: no nodal or pelvic label can be given, and the staging says so
    assert all(les["region"] in ("unclassified", "distant") for les in doc["lesions"])
    assert any(les["region"] == "unclassified" and les["site"] == "unknown" and les["mitnm"] == ""
               for les in doc["lesions"])
    assert "incomplete" in doc["staging"]["summary"]
    assert not (out / "rtstruct_mr.dcm").exists() and not (out / "registration.dcm").exists()
    for name in ("rtstruct", "seg"):
        assert dciodvfy_errors(Path(doc["outputs"][name])) == [], name


def test_default_run_finds_the_sarcoma_at_its_hottest_voxel(default_run, pet, testdata):
    _, _, doc = default_run
    gtv = rtstruct_to_masks(testdata / STUDY / "FDG_PET" / "mask" / "1-1.dcm", pet.volume)["GTV_Mass"]
    inside = sitk.GetArrayViewFromImage(gtv) > 0
    suv = sitk.GetArrayViewFromImage(pet.image)
    hottest = float(suv[inside].max())
    found = [les for les in doc["lesions"]
             if inside[tuple(np.rint(lps_to_zyx(pet.image, np.array(les["peak_lps_mm"]))).astype(int))]]
    assert found and max(les["suv_max"] for les in found) == pytest.approx(hottest, rel=1e-4)


def test_default_run_reports_no_lesion_in_the_brain(default_run, pet):
    # the brain, independently of the code under test: FDG grey matter (SUV >= 5) connected to the
    # top slice of the field (the head, arms raised beside it), within 100 mm of the body's centre line
    _, _, doc = default_run
    suv = sitk.GetArrayViewFromImage(pet.image)
    labels, _ = ndimage.label(suv >= 5.0)
    top = np.unique(labels[-1][labels[-1] > 0])
    brain = ndimage.binary_dilation(np.isin(labels, top), iterations=1)
    assert brain.sum() * np.prod(pet.image.GetSpacing()) / 1000 > 20.0  # at least 20 ml of it in the field
    for les in doc["lesions"]:
        zyx = tuple(np.rint(lps_to_zyx(pet.image, np.array(les["peak_lps_mm"]))).astype(int))
        assert not brain[zyx], les["peak_lps_mm"]


def test_research_run_writes_every_export(testdata, tmp_path):
    result = _run(testdata / STUDY, tmp_path, "--pipeline", "research")
    assert result.returncode == 0, result.stderr
    doc = json.loads((tmp_path / "findings.json").read_text())
    assert {"csv", "rtstruct", "seg", "nifti", "report"} <= set(doc["outputs"])
    assert doc["failed_exports"] == {}
    assert dciodvfy_errors(Path(doc["outputs"]["seg"])) == []
