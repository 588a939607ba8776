"""NIfTI edge: RAS affine written through nibabel, LPS image read back, points converted."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from localize.errors import LocalizeError
from localize.export.nifti import lps_to_ras, ras_to_lps, read_nifti, write_nifti


def rotation(ax_deg: float, az_deg: float) -> np.ndarray:
    ax, az = np.radians(ax_deg), np.radians(az_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ rx


def make_image(direction: np.ndarray, dtype=np.float32) -> sitk.Image:
    values = np.arange(5 * 4 * 3).reshape(5, 4, 3).astype(dtype)  # z, y, x
    image = sitk.GetImageFromArray(values)
    image.SetSpacing((0.7, 1.1, 2.5))
    image.SetOrigin((-12.5, 30.25, -101.0))
    image.SetDirection(tuple(direction.ravel()))
    return image


# axial head-first; feet-first supine (row -> patient right, normal -> feet); double oblique
DIRECTIONS = {
    "axial": np.eye(3),
    "feet_first": np.diag([-1.0, 1.0, -1.0]),
    "oblique": rotation(20, 10),
}


def test_lps_ras_points():
    points = np.array([[1.0, 2.0, 3.0], [-4.0, 0.0, 5.5]])
    np.testing.assert_array_equal(lps_to_ras(points), [[-1.0, -2.0, 3.0], [4.0, 0.0, 5.5]])
    np.testing.assert_array_equal(ras_to_lps(lps_to_ras(points)), points)


@pytest.mark.parametrize("name", list(DIRECTIONS))
def test_voxel_maps_to_same_point_in_simpleitk_and_nibabel(tmp_path, name):
    image = make_image(DIRECTIONS[name])
    path = write_nifti(image, tmp_path / "img.nii.gz")
    nii = nib.load(str(path))
    assert int(nii.header["qform_code"]) == 1 and int(nii.header["sform_code"]) == 1
    np.testing.assert_allclose(nii.get_qform(), nii.get_sform(), atol=1e-5)
    for ijk in [(0, 0, 0), (2, 3, 4), (1, 0, 3)]:
        lps = np.array(image.TransformIndexToPhysicalPoint(ijk))
        ras = nii.affine @ np.array([*ijk, 1.0])
        np.testing.assert_allclose(ras[:3], [-lps[0], -lps[1], lps[2]], atol=1e-4)
        # and the value at that voxel is the same in both arrays
        assert nii.get_fdata()[ijk] == image[ijk]


@pytest.mark.parametrize("name", list(DIRECTIONS))
def test_round_trip_keeps_geometry_and_values(tmp_path, name):
    image = make_image(DIRECTIONS[name])
    back = read_nifti(write_nifti(image, tmp_path / "img.nii.gz"))
    np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(back.GetSpacing(), image.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(back.GetDirection(), image.GetDirection(), atol=1e-5)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    assert back.GetPixelID() == sitk.sitkFloat32


@pytest.mark.parametrize("dtype, pixel_id", [(np.uint8, sitk.sitkUInt8), (np.int16, sitk.sitkInt16),
                                             (np.uint16, sitk.sitkUInt16)])
def test_label_images_keep_their_dtype(tmp_path, dtype, pixel_id):
    image = make_image(DIRECTIONS["oblique"], dtype)
    path = write_nifti(image, tmp_path / "labels.nii.gz")
    assert np.asanyarray(nib.load(str(path)).dataobj).dtype == dtype
    back = read_nifti(path)
    assert back.GetPixelID() == pixel_id
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))


def test_sidecar_beside_image_and_no_temporary_left(tmp_path):
    path = write_nifti(make_image(np.eye(3)), tmp_path / "ct", {"modality": "CT", "units": "HU"})
    assert path.name == "ct.nii.gz"
    assert json.loads((tmp_path / "ct.json").read_text()) == {"modality": "CT", "units": "HU"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.json", "ct.nii.gz"]


def test_read_nifti_written_by_nibabel_in_ras(tmp_path):
    # a RAS-canonical NIfTI made by nibabel alone: voxel (i, j, k) at RAS = diag(2, 3, 4) ijk + t
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    affine[:3, 3] = [10.0, -20.0, 30.0]
    data = np.random.default_rng(0).random((3, 4, 5)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "ras.nii.gz")
    image = read_nifti(tmp_path / "ras.nii.gz")
    # in LPS the same voxel is at (-x, -y, z): direction diag(-1, -1, 1)
    np.testing.assert_allclose(image.TransformIndexToPhysicalPoint((1, 2, 3)), (-12.0, 14.0, 42.0))
    assert image[1, 2, 3] == pytest.approx(float(data[1, 2, 3]))


def test_damaged_or_sheared_nifti_is_a_localize_error(tmp_path):
    (tmp_path / "bad.nii.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(LocalizeError, match="bad.nii.gz"):
        read_nifti(tmp_path / "bad.nii.gz")
    sheared = np.eye(4)
    sheared[0, 1] = 0.5
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), sheared), tmp_path / "shear.nii.gz")
    with pytest.raises(LocalizeError, match="sheared"):
        read_nifti(tmp_path / "shear.nii.gz")
