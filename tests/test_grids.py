"""The anatomy's working grid: the same field as a fine PET, and masks moved back to the PET's voxels."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from localize.anatomy.grids import WORK_MM, bounding_box, masks_to_grid, mean_index, working_grid


def _pet(spacing_mm, size, origin_lps_mm, direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)) -> sitk.Image:
    image = sitk.Image(list(size), sitk.sitkFloat32)
    image.SetSpacing(spacing_mm)
    image.SetOrigin(origin_lps_mm)
    image.SetDirection(direction)
    return image


def _corners_lps(image: sitk.Image) -> np.ndarray:
    """The outer corners of the first and last voxels, LPS mm."""
    size = np.array(image.GetSize(), float)
    return np.array([image.TransformContinuousIndexToPhysicalPoint(list(c)) for c in (-0.5 * np.ones(3), size - 0.5)])


def test_a_coarse_pet_is_its_own_working_grid():
    pet = _pet((4.07, 4.07, 5.0), (20, 20, 10), (0.0, 0.0, 0.0))
    assert working_grid(pet) is pet


@pytest.mark.parametrize("direction", [(1, 0, 0, 0, 1, 0, 0, 0, 1), (-1, 0, 0, 0, 1, 0, 0, 0, -1)])  # HFS, FFS-like
def test_a_fine_pet_gets_a_coarser_grid_over_the_same_field(direction):
    pet = _pet((2.04, 2.04, 2.73), (250, 250, 393), (-254.0, -254.0, 1600.0), direction)
    work = working_grid(pet)
    assert min(work.GetSpacing()) >= WORK_MM - 0.2 and work.GetDirection() == pet.GetDirection()
    assert np.abs(_corners_lps(work) - _corners_lps(pet)).max() < 1e-3  # the field's edges, LPS mm


def test_masks_keep_their_place_when_moved_to_the_pet_grid():
    pet = _pet((2.0, 2.0, 2.0), (60, 60, 60), (-60.0, -60.0, -60.0))
    work = working_grid(pet)
    shape = sitk.GetArrayViewFromImage(work).shape
    zyx = np.indices(shape)
    masks = {}
    for k in range(70):  # more masks than one packed 64-bit image holds
        centre = np.array([3 + k % 20, 3 + k // 20 * 7, 10])
        masks[f"m{k}"] = (np.abs(zyx - centre[:, None, None, None]) <= 1).all(0)
    moved = masks_to_grid(masks, work, pet)
    assert set(moved) == set(masks)
    for name, mask in masks.items():
        assert moved[name].shape == sitk.GetArrayViewFromImage(pet).shape
        centre_work = np.array(work.TransformContinuousIndexToPhysicalPoint(np.argwhere(mask).mean(0)[::-1].tolist()))
        centre_pet = np.array(pet.TransformContinuousIndexToPhysicalPoint(
            np.argwhere(moved[name]).mean(0)[::-1].tolist()))
        assert np.linalg.norm(centre_pet - centre_work) < 1.0, name  # LPS mm
        volume_work = mask.sum() * np.prod(work.GetSpacing())
        assert moved[name].sum() * np.prod(pet.GetSpacing()) == pytest.approx(volume_work, rel=0.05)


@pytest.mark.parametrize("direction", [(1, 0, 0, 0, 1, 0, 0, 0, 1), (-1, 0, 0, 0, 1, 0, 0, 0, -1)])
def test_moved_masks_equal_each_mask_resampled_on_its_own(direction):
    # the masks are moved within their bounding boxes: voxel for voxel what resampling the whole mask gives
    pet = _pet((2.04, 2.04, 2.73), (70, 60, 50), (-70.0, -60.0, 30.0), direction)
    work = working_grid(pet)
    shape = sitk.GetArrayViewFromImage(work).shape
    rng = np.random.default_rng(0)
    masks = {f"m{k}": np.zeros(shape, bool) for k in range(5)}
    for k, mask in enumerate(masks.values()):
        lo = rng.integers(0, np.array(shape) - 3)
        box = tuple(slice(a, a + 3 + k) for a in lo)
        mask[box] = rng.random(mask[box].shape) > 0.3
    masks["edge"] = np.zeros(shape, bool)
    masks["edge"][-1, 0, :] = True
    masks["empty"] = np.zeros(shape, bool)
    moved = masks_to_grid(masks, work, pet)
    for name, mask in masks.items():
        image = sitk.GetImageFromArray(mask.astype(np.uint8))
        image.CopyInformation(work)
        whole = sitk.GetArrayFromImage(sitk.Resample(image, pet, sitk.Transform(), sitk.sitkNearestNeighbor, 0)) > 0
        assert np.array_equal(moved[name], whole), name


def test_bounding_box_and_mean_index_read_the_mask_within_its_box():
    mask = np.zeros((9, 8, 7), bool)
    assert bounding_box(mask) is None
    mask[2, 3:5, 0] = mask[6, 7, 4] = True
    assert bounding_box(mask) == (slice(2, 7), slice(3, 8), slice(0, 5))
    assert bounding_box(mask, pad=2) == (slice(0, 9), slice(1, 8), slice(0, 7))
    assert np.array_equal(mean_index(mask), np.argwhere(mask).mean(0))
