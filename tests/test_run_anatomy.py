"""`localize run --anatomy`: imported organ labels (TotalSegmentator-style) drive the whole pipeline."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from localize.findings import validate_findings

pytestmark = pytest.mark.slow

NEAR_MM = 4.0  # a detection sits on its true lesion
FAR_MM = 15.0  # farther than this from every true lesion: a false positive


@pytest.fixture(scope="module")
def imported_run(phantom, tmp_path_factory):
    root, _ = phantom(seed=3)
    out = tmp_path_factory.mktemp("run-anatomy")
    result = subprocess.run([sys.executable, "-m", "localize", "run", str(root / "dicom"), "--out", str(out),
                             "--anatomy", str(root / "truth" / "organs.nii.gz")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    doc = json.loads((out / "findings.json").read_text())
    validate_findings(doc)
    truth = json.loads((root / "truth" / "truth.json").read_text())["lesions"]
    return doc, truth


def distances(doc, truth):
    """Matrix [detection, truth lesion] of target-to-centre distances (mm)."""
    return np.array([[np.linalg.norm(np.subtract(l["target_lps_mm"], t["center_lps_mm"])) for t in truth]
                     for l in doc["lesions"]]).reshape(len(doc["lesions"]), len(truth))


def test_every_visible_lesion_is_found_on_its_site(imported_run):
    doc, truth = imported_run
    d = distances(doc, truth)
    for j, t in enumerate(truth):
        if t["diameter_mm"] < 8 or t["suv_max"] < 4:
            continue
        i = int(np.argmin(d[:, j]))
        assert d[i, j] <= NEAR_MM, (t["site"], d[i, j])
        assert doc["lesions"][i]["region"] == t["region"], (t["site"], doc["lesions"][i]["site"])


def test_no_false_positive_with_imported_anatomy(imported_run):
    doc, truth = imported_run
    d = distances(doc, truth)
    strays = [(l["site"], l["suv_max"]) for l, row in zip(doc["lesions"], d) if row.min() > FAR_MM]
    assert strays == []
