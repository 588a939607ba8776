"""The same patient anywhere on the table, head or feet first, gives the same lesions and labels.

Nothing may depend on the table position or the scanner's column direction: a pelvis
phantom study is moved by +1 m and -1 m along the table (every PET and CT slice's
ImagePositionPatient, one frame of reference, written again with pydicom) and written
feet first (columns to the patient's right); each is analysed with CT-only anatomy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from localize.config import load_pipeline
from localize.load.index import index_folder
from localize.load.pet import load_pet
from localize.load.plan import single_plan
from localize.load.volume import load_series
from localize.pipeline import analyse
from localize.sample_data.dicom_writer import save

pytestmark = pytest.mark.slow

SEED = 3
POSITION_TOLERANCE_MM = 1.0


def _analysed(folder: Path):
    files = single_plan(index_folder(folder)).manifest()["files"]
    pet = load_pet([Path(f) for f in files["pet"]])
    ct = load_series([Path(f) for f in files["ct"]])
    return analyse(pet, ct, None, [], pet.calibration.tracer.family, load_pipeline("psma-salvage-rt")).findings


def _moved(source: Path, target: Path, dz_mm: float) -> Path:
    shutil.copytree(source, target)
    for path in target.rglob("*"):
        if not path.is_file():
            continue
        ds = pydicom.dcmread(path)
        if "ImagePositionPatient" in ds:
            x, y, z = (float(v) for v in ds.ImagePositionPatient)
            ds.ImagePositionPatient = [x, y, z + dz_mm]
            save(ds, path)
    return target


def _summary(findings, dz_mm: float = 0.0):
    return [(les.region, les.site, round(les.suv_max, 3), np.subtract(les.target_lps_mm, (0.0, 0.0, dz_mm)))
            for les in findings.lesions]


@pytest.fixture(scope="module")
def reference(phantom):
    root, _ = phantom(seed=SEED)
    return root, _summary(_analysed(root / "dicom"))


def _assert_same(expected, got):
    assert [e[:2] for e in expected] == [g[:2] for g in got]
    for (_, site, suv, point), (_, _, suv_got, point_got) in zip(expected, got):
        assert suv_got == pytest.approx(suv, rel=1e-3), site
        assert np.linalg.norm(point - point_got) <= POSITION_TOLERANCE_MM, site


@pytest.mark.parametrize("dz_mm", [1000.0, -1000.0])
def test_moved_on_the_table(reference, tmp_path, dz_mm):
    root, expected = reference
    assert len(expected) >= 5 and all(region != "unclassified" for region, *_ in expected)
    moved = _moved(root / "dicom", tmp_path / "moved", dz_mm)
    _assert_same(expected, _summary(_analysed(moved), dz_mm))


def test_feet_first(reference, phantom):
    _, expected = reference
    root, _ = phantom(seed=SEED, patient_position="FFS")
    _assert_same(expected, _summary(_analysed(root / "dicom")))
