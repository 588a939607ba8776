"""The phantom's DICOM objects conform to their IODs: dicom3tools' dciodvfy reports no "Error" on one file of each
series it writes (CT, PET, MR), on its planning structures (RTSTRUCT) and on the real-CT study's CT and PET."""

from __future__ import annotations

import pydicom
import pytest
import SimpleITK as sitk
from helpers.tools import dciodvfy_errors

from localize.sample_data import VariedSpec
from localize.sample_data.real_ct import write_dicom_study

SPECS = {
    "standard": dict(ct_matrix=128, with_mr=True),  # the small standard man (tests/test_phantom.py) with his MR
    # a drawn man, feet first, whose pixel spacings need more than a decimal string's 16 characters as floats
    "varied": VariedSpec(41, extent="pelvis", patient_position="FFS", ct_matrix_cap=96, pet_matrix_cap=64),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_object_of_the_phantom_passes_dciodvfy(phantom, name):
    spec = SPECS[name]
    root, truth = phantom(**spec) if isinstance(spec, dict) else phantom(spec)
    files = {modality: sorted((root / folder).glob("*.dcm"))[0] for modality, folder in truth.series_dirs.items()
             if folder}
    files["RTSTRUCT"] = root / "truth" / "planning_structures.dcm"
    assert set(files) == ({"CT", "PT", "MR", "RTSTRUCT"} if name == "standard" else {"CT", "PT", "RTSTRUCT"})
    for modality, path in files.items():
        assert dciodvfy_errors(path) == [], modality


def test_the_real_ct_study_passes_dciodvfy_and_keeps_its_geometry(tmp_path):
    ct = sitk.Image([40, 30, 6], sitk.sitkFloat32)
    ct.SetSpacing((0.9765625, 0.9765625, 4 / 3))  # a slice step whose float repr is longer than a DS allows
    ct.SetOrigin((-19.5, -14.5, 100.0))
    pet = sitk.Image([10, 8, 3], sitk.sitkFloat32) + 1.0
    pet.SetSpacing((4.0, 4.0, 8 / 3))
    write_dicom_study(tmp_path, ct, pet, "psma11")
    for series in ("CT", "PET"):
        path = sorted((tmp_path / series).glob("*.dcm"))[-1]
        assert dciodvfy_errors(path) == [], series
    ds = pydicom.dcmread(sorted((tmp_path / "CT").glob("*.dcm"))[-1], stop_before_pixels=True)
    assert float(ds.SliceThickness) == pytest.approx(4 / 3, rel=1e-12)
    assert float(ds.ImagePositionPatient[2]) == pytest.approx(100.0 + 5 * 4 / 3, abs=1e-4)  # written to 1e-4 mm
