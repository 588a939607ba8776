"""Organs of physiological uptake found on a real whole-body FDG PET with no CT (tcia-sts-001)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from localize.anatomy import pet_organs
from localize.detection.metrics import voxel_volume_ml, zyx_to_lps
from localize.load.pet import load_pet

pytestmark = pytest.mark.testdata


@pytest.fixture(scope="module")
def pet(testdata):
    return load_pet(sorted((testdata / "studies/tcia-sts-001/FDG_PET/image").glob("*.dcm"))).image


@pytest.fixture(scope="module")
def organs(pet):
    return pet_organs(pet)


def _centre(image: sitk.Image, mask: np.ndarray) -> np.ndarray:
    return zyx_to_lps(image, np.argwhere(mask).mean(0))


def test_each_organ_where_anatomy_puts_it(pet, organs):
    assert set(organs) == {"brain", "urinary_bladder", "kidney_left", "kidney_right", "heart", "liver"}
    c = {name: _centre(pet, mask) for name, mask in organs.items()}
    ml = {name: mask.sum() * voxel_volume_ml(pet) for name, mask in organs.items()}
    # head over heart over liver and kidneys over bladder (LPS +z is superior)
    assert c["brain"][2] > c["heart"][2] > c["liver"][2] > c["urinary_bladder"][2]
    assert c["heart"][2] > max(c["kidney_left"][2], c["kidney_right"][2]) > c["urinary_bladder"][2]
    # the left kidney on the patient's left (+x), the liver right of the heart, kidneys behind the liver's centre
    assert c["kidney_left"][0] > c["urinary_bladder"][0] > c["kidney_right"][0]
    assert c["liver"][0] < c["heart"][0]
    assert min(c["kidney_left"][1], c["kidney_right"][1]) > c["liver"][1]
    assert 1000 < ml["liver"] < 3000 and 60 < ml["kidney_left"] < 400 and 60 < ml["kidney_right"] < 400
    assert not np.logical_and(organs["liver"], organs["kidney_right"]).any()


def test_the_same_patient_elsewhere_on_the_table_gives_the_same_organs(pet, organs):
    moved = sitk.Image(pet)
    moved.SetOrigin(tuple(np.add(pet.GetOrigin(), (40.0, -25.0, 1500.0))))
    again = pet_organs(moved)
    assert set(again) == set(organs)
    for name, mask in organs.items():
        assert np.array_equal(again[name], mask), name
