"""The built-in anatomy on a real CT: ../shared/testdata/ct/totalsegmentator-example.

A contrast-enhanced slab (20 slices of 2 mm) of the upper abdomen: liver and spleen,
T11-T12 with their ribs, arms down, no lung (its reference labels hold none).
TotalSegmentator's labels (a model's output, placed by their NIfTI affine) are the
reference. What the slab shows must be found; what it does not show (lungs, a pelvis,
a sacrum to name vertebrae by) must not be invented: the air around the patient reads
-960 to -900 HU here, in the lungs' band.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from localize.anatomy import build_anatomy
from localize.load.volume import load_series
from localize.sample_data.real_ct import dice, label_names, simulated_pet

pytestmark = pytest.mark.testdata

FOLDER = "ct/totalsegmentator-example"
PELVIS = ("sacrum", "hip_left", "hip_right", "pubic_symphysis", "urinary_bladder", "prostate", "seminal_vesicles")


@pytest.fixture(scope="module")
def slab(testdata):
    ct = load_series(sorted((testdata / FOLDER / "dicom").iterdir())).image
    grid = sitk.Image(125, 125, 20, sitk.sitkFloat32)  # a PET-like grid over the CT: 4 mm in plane, 2 mm slices
    grid.SetSpacing((4.0, 4.0, 2.0))
    grid.SetOrigin(ct.GetOrigin())
    labels = sitk.ReadImage(str(testdata / FOLDER / "labels_total.nii.gz"))  # LPS from the NIfTI affine
    reference = sitk.GetArrayFromImage(sitk.Resample(labels, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
    names = label_names(testdata / FOLDER / "class_map_total.json")
    return build_anatomy(ct, grid), reference, names, ct, grid


def _fraction(mask: np.ndarray, reference: np.ndarray) -> float:
    return float((mask & reference).sum() / reference.sum())


def test_no_pelvis_is_invented_on_a_slab_of_the_upper_abdomen(slab):
    anatomy, *_ = slab
    assert not set(PELVIS) & set(anatomy.masks), sorted(anatomy.masks)
    assert not {"pelvic_inlet", "symphysis_top", "common_iliac_bifurcation"} & set(anatomy.levels_z_mm)
    assert not any(name.startswith("vertebrae_") for name in anatomy.masks)  # nothing to count them from
    assert any("not named" in w for w in anatomy.warnings)


def test_body_and_bones_are_found_and_no_lung_is_invented(slab):
    anatomy, reference, names, *_ = slab
    assert not {"lung_left", "lung_right"} & set(anatomy.masks)  # the air around the patient is no lung
    assert any("no lungs found" in w for w in anatomy.warnings)
    assert "diaphragm" not in anatomy.levels_z_mm
    assert _fraction(anatomy.masks["body"], reference > 0) >= 0.99
    vertebrae = np.isin(reference, [names["vertebrae_T11"], names["vertebrae_T12"]])
    assert _fraction(anatomy.masks["bone"], vertebrae) >= 0.8


def test_liver_and_spleen_on_a_pet_simulated_on_the_real_ct(slab):
    _, reference, names, ct, grid = slab
    pet = simulated_pet(ct, reference, names, grid)
    anatomy = build_anatomy(ct, pet)
    for organ in ("liver", "spleen"):
        assert dice(anatomy.masks[organ], reference == names[organ]) >= 0.8, organ
    assert not set(PELVIS) & set(anatomy.masks)
