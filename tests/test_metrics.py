"""Per-lesion measurements on synthetic SUV volumes with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from localize.detection.metrics import (
    PEAK_RADIUS_MM,
    ball,
    lps_to_zyx,
    max_diameter_mm,
    measure_lesion,
    suv_peaks,
    zyx_to_lps,
)


def _image(array_zyx: np.ndarray, spacing_xyz, origin=(0.0, 0.0, 0.0), direction=None) -> sitk.Image:
    image = sitk.GetImageFromArray(array_zyx.astype(np.float32))
    image.SetSpacing(spacing_xyz)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    return image


@pytest.mark.parametrize(
    "spacing_zyx, count",
    # kernel sizes of the IBSI 1 cm3 sphere (docs/metrics.md#suvpeak)
    [((3.0, 4.07, 4.07), 21), ((4.0, 4.0, 4.0), 19), ((2.0, 2.0, 2.0), 123), ((3.27, 2.73, 2.73), 39)],
)
def test_peak_sphere_voxel_counts_match_the_computed_kernels(spacing_zyx, count):
    assert abs(PEAK_RADIUS_MM - 6.2035) < 1e-3
    assert int(ball(PEAK_RADIUS_MM, np.array(spacing_zyx)).sum()) == count


def test_single_hot_voxel_peak_is_its_share_of_the_sphere():
    suv = np.zeros((21, 21, 21), np.float32)
    suv[10, 10, 10] = 123.0
    mask = np.zeros(suv.shape, bool)
    mask[10, 10, 10] = True
    global_peak, local_peak = suv_peaks(suv, mask, np.array([2.0, 2.0, 2.0]))
    assert global_peak == pytest.approx(1.0)  # 123 / 123 voxels of the 2 mm kernel
    assert local_peak == pytest.approx(1.0)


def test_global_peak_can_sit_off_the_hottest_voxel():
    # a lone hot voxel beside a broad warm plateau: the plateau gives the higher 1 cm3 mean
    suv = np.zeros((30, 30, 30), np.float32)
    suv[5:25, 5:25, 12:25] = 6.0
    suv[15, 15, 8] = 9.0
    mask = suv > 0
    global_peak, local_peak = suv_peaks(suv, mask, np.array([2.0, 2.0, 2.0]))
    assert global_peak == pytest.approx(6.0)
    assert local_peak < global_peak


def test_voxels_outside_the_image_are_not_counted():
    suv = np.full((8, 8, 8), 5.0, np.float32)
    mask = np.zeros(suv.shape, bool)
    mask[0, 0, 0] = True
    global_peak, _ = suv_peaks(suv, mask, np.array([2.0, 2.0, 2.0]))
    assert global_peak == pytest.approx(5.0)


def test_max_diameter_of_a_ball_and_a_rod():
    z, y, x = np.mgrid[:41, :41, :41]
    sphere = (z - 20) ** 2 + (y - 20) ** 2 + (x - 20) ** 2 <= 10**2  # radius 10 voxels of 1 mm
    assert max_diameter_mm(sphere, np.array([1.0, 1.0, 1.0])) == pytest.approx(21.0, abs=1.0)
    rod = np.zeros((3, 3, 9), bool)
    rod[1, 1, 2:7] = True  # 5 voxels of 2 mm along x: 10 mm end face to end face
    assert max_diameter_mm(rod, np.array([2.0, 2.0, 2.0])) == pytest.approx(10.0)


def test_measure_lesion_values_and_points_in_an_oblique_frame():
    rot = sitk.Euler3DTransform((0, 0, 0), 0.3, -0.2, 0.5).GetMatrix()
    suv = np.full((20, 22, 24), 1.0, np.float32)
    suv[8:12, 9:13, 10:14] = 4.0
    suv[10, 11, 12] = 10.0
    image = _image(suv, (2.0, 2.5, 3.0), origin=(-100.0, 50.0, 20.0), direction=rot)
    mask = suv > 2.0
    lesion = measure_lesion(image, suv, mask, label=7)
    values = suv[mask]
    assert lesion.label == 7 and lesion.n_voxels == 64
    assert lesion.suv_max == 10.0
    assert lesion.suv_mean == pytest.approx(values.mean())
    assert lesion.volume_ml == pytest.approx(64 * 2.0 * 2.5 * 3.0 / 1000)
    assert lesion.total_uptake == pytest.approx(values.mean() * lesion.volume_ml)
    expected_peak = image.TransformIndexToPhysicalPoint((12, 11, 10))  # SimpleITK index order x, y, z
    assert np.allclose(lesion.peak_lps_mm, expected_peak)
    centre = image.TransformContinuousIndexToPhysicalPoint((11.5, 10.5, 9.5))
    assert np.allclose(lesion.centroid_lps_mm, centre)
    # the hot voxel pulls the uptake-weighted target towards itself
    assert (np.linalg.norm(np.subtract(lesion.target_lps_mm, expected_peak))
            < np.linalg.norm(np.subtract(centre, expected_peak)))
    assert np.allclose(lps_to_zyx(image, zyx_to_lps(image, np.array([10.0, 11.0, 12.0]))), [10, 11, 12])
