"""NIfTI lesion label map + sidecar: RAS done right, checked against LPS points."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from helpers.images import findings_for, lesion_label_image

from localize.export.labelmap import write_labelmap


def _oblique_feet_first(labels: sitk.Image) -> sitk.Image:
    """The same labels on a grid whose axes run R->L flipped and tilted (non-identity direction)."""
    a = np.deg2rad(15.0)
    direction = np.array([[-1.0, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    grid = sitk.Image((45, 45, 35), sitk.sitkUInt16)
    grid.SetSpacing((3.5, 3.0, 4.0))
    grid.SetDirection(tuple(direction.ravel()))
    grid.SetOrigin((80.0, -90.0, -70.0))
    return sitk.Resample(labels, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0)


def test_target_voxel_found_through_the_affine_carries_the_label(tmp_path):
    labels = _oblique_feet_first(lesion_label_image())
    findings = findings_for(labels)
    labels_zyx = sitk.GetArrayFromImage(labels)
    for lesion in findings.lesions:  # aim at a voxel of the lesion (a ring's centroid is in its hole)
        k, j, i = np.argwhere(labels_zyx == lesion.label)[len(np.argwhere(labels_zyx == lesion.label)) // 2]
        lesion.target_lps_mm = labels.TransformIndexToPhysicalPoint((int(i), int(j), int(k)))
    path = write_labelmap(tmp_path / "out" / "lesions.nii.gz", findings, labels)

    nii = nib.load(path)
    data = np.asarray(nii.dataobj)
    sidecar = json.loads((tmp_path / "out" / "lesions.json").read_text())
    assert sidecar["frame_of_reference_uid"] == findings.frame_of_reference_uid
    for lesion in findings.lesions:
        entry = sidecar["labels"][str(lesion.label)]
        lps = np.asarray(lesion.target_lps_mm)
        ras = lps * [-1, -1, 1]  # docs/coordinates.md#dicom-patient-coordinates
        np.testing.assert_allclose(entry["target_ras_mm"], ras, atol=1e-6)
        np.testing.assert_allclose(entry["target_lps_mm"], lps, atol=1e-6)
        ijk = np.linalg.inv(nii.affine) @ np.append(ras, 1.0)
        i, j, k = np.round(ijk[:3]).astype(int)
        np.testing.assert_allclose(ijk[:3], (i, j, k), atol=1e-4)
        assert data[i, j, k] == lesion.label
        assert (entry["id"], entry["region"]) == (lesion.id, lesion.region)
    assert data.dtype == np.uint16 and set(np.unique(data)) == {0, 1, 2, 3}
