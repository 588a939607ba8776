"""The built-in anatomy on a real CT: ../shared/testdata/ct/totalsegmentator-example.

A contrast-enhanced slab (20 slices of 2 mm) at the thoraco-abdominal junction: lung
bases, liver and spleen, T11-T12 with their ribs, arms down. TotalSegmentator's labels
(a model's output, placed by their NIfTI affine) are the reference. What the slab
shows must be found; what it does not show (a pelvis, a sacrum to name vertebrae by)
must not be invented.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from localize.anatomy import build_anatomy
from localize.load.volume import load_series

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
    names = {name: int(value)
             for value, name in json.loads((testdata / FOLDER / "class_map_total.json").read_text()).items()}
    return build_anatomy(ct, grid), reference, names, ct, grid


def _fraction(mask: np.ndarray, reference: np.ndarray) -> float:
    return float((mask & reference).sum() / reference.sum())


def test_no_pelvis_is_invented_on_a_slab_of_the_upper_abdomen(slab):
    anatomy, *_ = slab
    assert not set(PELVIS) & set(anatomy.masks), sorted(anatomy.masks)
    assert not {"pelvic_inlet", "symphysis_top", "common_iliac_bifurcation"} & set(anatomy.levels_z_mm)
    assert not any(name.startswith("vertebrae_") for name in anatomy.masks)  # nothing to count them from
    assert any("not named" in w for w in anatomy.warnings)


def test_lung_bases_body_and_bones_are_found(slab):
    anatomy, reference, names, *_ = slab
    assert {"lung_left", "lung_right"} <= set(anatomy.masks)
    # the lungs reach the slab's lowest slice: their bases, the diaphragm, lie below the field
    assert "diaphragm" not in anatomy.levels_z_mm and any("no diaphragm level" in w for w in anatomy.warnings)
    assert _fraction(anatomy.masks["body"], reference > 0) >= 0.99
    vertebrae = np.isin(reference, [names["vertebrae_T11"], names["vertebrae_T12"]])
    assert _fraction(anatomy.masks["bone"], vertebrae) >= 0.8
    # the lungs lie outside the liver and spleen
    organs = np.isin(reference, [names["liver"], names["spleen"]])
    lungs = anatomy.masks["lung_left"] | anatomy.masks["lung_right"]
    assert (lungs & organs).sum() <= 0.02 * lungs.sum()


# PSMA-like SUVs of a PET simulated on this CT [REC: DCFPyL liver ~5, spleen ~6, blood pool ~1.8,
# muscle ~0.8, bone ~1, other soft tissue ~0.5], blurred to 6 mm FWHM with 15 % correlated noise.
SIMULATED_SUV = {"liver": 5.0, "spleen": 6.0, "stomach": 1.5, "pancreas": 2.0, "aorta": 1.8,
                 "inferior_vena_cava": 1.8, "autochthon_left": 0.8, "autochthon_right": 0.8}


def test_liver_and_spleen_on_a_pet_simulated_on_the_real_ct(slab):
    # the uptake is placed by the reference labels, so this measures the organ rules given a PET whose
    # organs have their real shapes, as a PET simulated on real CT has (not the labels' accuracy)
    _, reference, names, ct, grid = slab
    hu = sitk.GetArrayFromImage(sitk.Resample(ct, grid, sitk.Transform(), sitk.sitkLinear, -1000.0))
    suv = np.where(hu > -500, 0.5, 0.0)
    suv[np.isin(reference, [v for n, v in names.items() if n.startswith(("vertebrae", "rib"))])] = 1.0
    for name, value in SIMULATED_SUV.items():
        suv[reference == names[name]] = value
    spacing = np.array(grid.GetSpacing()[::-1])
    suv = ndimage.gaussian_filter(suv, 6.0 / 2.3548 / spacing)
    noise = ndimage.gaussian_filter(np.random.default_rng(0).standard_normal(suv.shape), 1.0) * 2.5
    pet = sitk.GetImageFromArray(np.maximum(suv * (1 + 0.15 * noise), 0).astype(np.float32))
    pet.CopyInformation(grid)
    anatomy = build_anatomy(ct, pet)
    for organ in ("liver", "spleen"):
        truth = reference == names[organ]
        found = anatomy.masks[organ]
        dice = 2 * (found & truth).sum() / (found.sum() + truth.sum())
        assert dice >= 0.8, (organ, dice)
    assert not set(PELVIS) & set(anatomy.masks)
