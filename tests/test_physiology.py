"""Physiological patterns recognised on the PET itself: ureters as chained narrow runs along z."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from helpers.grid import image_of
from scipy import ndimage
from scipy.spatial import cKDTree

from localize.anatomy.model import Anatomy
from localize.detection.physiology import (
    GAS_REACH_MM,
    WALLED_FRACTION,
    flatten_halo,
    gas_at_maximum,
    ureter_tracks,
    walled_lumen,
)
from localize.detection.segment import bowel_span_z_mm, segment_lesions

SPACING = 4.0  # mm, isotropic
SHAPE = (56, 50, 50)  # z, y, x
ORIGIN = (-100.0, -100.0, -120.0)  # LPS mm of voxel (0, 0, 0)
FWHM_MM = 6.0


def _mm():
    z, y, x = np.indices(SHAPE, dtype=float)
    return ORIGIN[2] + z * SPACING, ORIGIN[1] + y * SPACING, ORIGIN[0] + x * SPACING


def _path_x(z):
    """The ureter's course: x (mm) of its axis at height z (mm), drifting medially on the way down."""
    return -40.0 + 0.12 * z


def _ball(centre, radius: float) -> np.ndarray:
    """Voxels of the test grid within ``radius`` mm of ``centre`` (LPS x, y, z mm)."""
    z, y, x = _mm()
    return np.hypot(np.hypot(x - centre[0], y - centre[1]), z - centre[2]) <= radius


def _as_image(suv: np.ndarray) -> sitk.Image:
    return image_of(suv, SPACING, ORIGIN)


def _blurred_pet(activity: np.ndarray) -> sitk.Image:
    """``activity`` (SUV, z, y, x on the test grid) blurred to ``FWHM_MM``, without noise."""
    return _as_image(ndimage.gaussian_filter(activity, FWHM_MM / 2.3548 / SPACING))


def _noisy_pet(activity: np.ndarray, seed: int) -> sitk.Image:
    """``activity`` (SUV, z, y, x on the test grid) as a PET reads it: blurred to ``FWHM_MM``, with Poisson-like
    noise (variance proportional to the value, correlated over about a voxel)."""
    clean = ndimage.gaussian_filter(activity, FWHM_MM / 2.3548 / SPACING)
    white = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(SHAPE), 0.6)
    return _as_image(np.maximum(clean + 0.1 * np.sqrt(5.0 * clean) * white / white.std(), 0))


def _ureter_scene(with_kidney_mask: bool, seed: int = 0):
    """A kidney, a ureter down to a bladder (a bolus, and an empty stretch), a node touching the ureter.

    Returns (image, anatomy, node centre, bolus centre) in LPS mm.
    """
    z, y, x = _mm()
    activity = np.full(SHAPE, 0.5)
    kidney = ((x + 45) / 25) ** 2 + ((y - 20) / 22) ** 2 + ((z - 95) / 40) ** 2 <= 1
    bladder = (x / 40) ** 2 + ((y + 20) / 30) ** 2 + ((z + 95) / 30) ** 2 <= 1
    tube = (np.hypot(x - _path_x(z), y - 20.0) <= 4.5) & (z > -80) & (z < 70)
    activity[tube] = 9.0
    activity[tube & (z > 0) & (z < 24)] = 22.0  # a bolus of urine
    activity[tube & (z > -40) & (z < -24)] = 0.5  # an empty stretch (peristalsis)
    activity[kidney] = 20.0
    activity[bladder] = 40.0
    node = (_path_x(40.0) + 11.0, 20.0, 40.0)  # 12 mm node touching the ureter laterally
    activity[np.hypot(np.hypot(x - node[0], y - node[1]), z - node[2]) <= 6.0] += 12.0
    image = _noisy_pet(activity, seed)
    masks = {"urinary_bladder": bladder} | ({"kidney_left": kidney} if with_kidney_mask else {})
    return image, Anatomy(grid=image, masks=masks), node, (_path_x(12.0), 20.0, 12.0)


def test_a_ureter_is_found_from_kidney_to_bladder_across_an_empty_stretch():
    image, anatomy, node, bolus = _ureter_scene(with_kidney_mask=False)
    suv = sitk.GetArrayFromImage(image)
    tracks = ureter_tracks(suv, anatomy.masks["urinary_bladder"], np.array([SPACING] * 3), threshold_suv=3.0,
                           min_length_mm=60.0, max_area_mm2=400.0, margin_mm=4.0)
    z, y, x = _mm()
    on_path = (np.hypot(x - _path_x(z), y - 20.0) <= 2.0) & (z > -70) & (z < 60)
    assert tracks[on_path].mean() > 0.95  # both sides of the empty stretch, kidney not counted as tube
    node_zyx = np.rint((np.array(node[::-1]) - np.array(ORIGIN[::-1])) / SPACING).astype(int)
    assert not tracks[tuple(node_zyx)]  # the node beside it bulges out of the tube: not ureter
    assert not tracks[(z > 80)].any()  # the kidney's slices (cross-sections far wider than a ureter)


def test_a_very_hot_ureter_is_judged_by_its_width_at_half_its_maximum():
    # urine of SUV 120 in a 6 mm lumen: the scanner's blur spreads it to 144 mm2 at the threshold of 3, wider
    # than a limit of 100 mm2, while at half its maximum it is one or two voxels wide (training seed 82: a
    # juxtavesical ureter of SUV 40 read 390-480 mm2 at the threshold on 5.5 mm voxels against the limit of 400,
    # so its run along z broke into short pieces and its bolus was reported as a node). A node as hot, 12 mm
    # across, is as tall as wide, so no tube, whatever its width.
    z, y, x = _mm()
    activity = np.full(SHAPE, 0.5)
    activity[(np.hypot(x - _path_x(z), y - 20.0) <= 3.0) & (z > -80) & (z < 70)] = 120.0
    node = (_path_x(20.0) + 40.0, 20.0, 20.0)
    activity[_ball(node, 6.0)] = 120.0
    on_path = (np.hypot(x - _path_x(z), y - 20.0) <= 2.0) & (z > -70) & (z < 60)
    node_zyx = np.rint((np.array(node[::-1]) - np.array(ORIGIN[::-1])) / SPACING).astype(int)
    for seed in range(3):
        suv = sitk.GetArrayFromImage(_noisy_pet(activity, seed))
        tracks = ureter_tracks(suv, np.zeros(SHAPE, bool), np.array([SPACING] * 3), threshold_suv=3.0,
                               min_length_mm=60.0, max_area_mm2=100.0, margin_mm=4.0)
        assert tracks[on_path].mean() > 0.95 and not tracks[tuple(node_zyx)], seed


def test_hot_specks_joined_only_across_slices_are_no_ureter():
    # noise at the threshold around a kidney or lesion whose mask stops short: in each slice a 3 x 3 grid of
    # lone hot voxels, shifted one voxel from slice to slice so the specks join diagonally along z into a
    # piece 72 mm tall and 14 mm "wide", taller than 2.5 x its width like a ureter; but no slice holds a lumen
    hot = np.zeros(SHAPE, bool)
    for z in range(10, 28):
        shift = z % 2
        hot[z, 20 + shift:26 + shift:2, 20 + shift:26 + shift:2] = True
    suv = np.where(hot, 9.0, 0.5).astype(np.float32)
    tracks = ureter_tracks(suv, np.zeros(SHAPE, bool), np.array([SPACING] * 3), threshold_suv=3.0,
                           min_length_mm=60.0, max_area_mm2=400.0, margin_mm=4.0)
    assert not tracks.any()


def test_a_node_apart_from_a_hotter_ureter_but_joined_to_it_at_the_threshold_is_not_ureter():
    # a 9 mm node 13 mm from the axis of a ureter twice as hot: on the 4 mm grid the threshold joins them in
    # the node's slices, whose sections then widen the tube and pull its path towards the node; the valley
    # between their two peaks tells them apart
    z, y, x = _mm()
    on_path = (np.hypot(x - _path_x(z), y - 20.0) <= 2.0) & (z > -70) & (z < 60)
    for seed in range(3):
        activity = np.full(SHAPE, 0.5)
        activity[(np.hypot(x - _path_x(z), y - 20.0) <= 3.0) & (z > -80) & (z < 70)] = 30.0
        node = (_path_x(20.0) + 13.0, 20.0, 20.0)
        activity[np.hypot(np.hypot(x - node[0], y - node[1]), z - node[2]) <= 4.5] += 20.0
        suv = sitk.GetArrayFromImage(_noisy_pet(activity, seed))
        tracks = ureter_tracks(suv, np.zeros(SHAPE, bool), np.array([SPACING] * 3), threshold_suv=3.0,
                               min_length_mm=60.0, max_area_mm2=400.0, margin_mm=4.0)
        node_zyx = np.rint((np.array(node[::-1]) - np.array(ORIGIN[::-1])) / SPACING).astype(int)
        assert tracks[on_path].all() and not tracks[tuple(node_zyx)], seed


def test_a_node_beside_a_hot_ureter_is_found_and_the_bolus_is_not():
    for seed in range(3):
        image, anatomy, node, bolus = _ureter_scene(with_kidney_mask=seed % 2 == 0, seed=seed)
        seg = segment_lesions(image, anatomy, tracer_family="psma_f18_renal")
        near_node = [les for les in seg.lesions if np.linalg.norm(np.subtract(les.peak_lps_mm, node)) <= 6.0]
        assert len(near_node) == 1, seed
        assert np.linalg.norm(np.subtract(near_node[0].target_lps_mm, node)) <= 4.0
        assert len(seg.lesions) == 1, [(round(les.suv_max, 1), les.peak_lps_mm) for les in seg.lesions]
        assert any(c.reason == "physiological: ureters" for c in seg.candidates)


@pytest.mark.parametrize("family", ["psma_ga68", "fluciclovine"])
def test_mirror_image_glands_above_the_lungs_are_glands_and_lone_or_unlike_nodes_are_lesions(family):
    # above the lung apices (z > 0), midline x = 4 mm: a pair of submandibular glands (one masked as an
    # organ, the other not), a cervical node alone, and a node whose mirror image holds a node 3 x cooler;
    # whatever the tracer (fluciclovine's glands are faint, but a gland its preset does not suppress is
    # still a gland)
    z, y, x = _mm()
    activity = np.full(SHAPE, 0.5)
    lungs = (np.hypot(x - 4.0, y) <= 70.0) & (z < 0.0) & (np.abs(x - 4.0) >= 10.0)
    masked_gland, gland = _ball((-30.0, -30.0, 60.0), 10.0), _ball((38.0, -26.0, 62.0), 10.0)
    activity[masked_gland] = 10.0
    activity[gland] = 11.0
    lone, hot, cool = (-60.0, 0.0, 40.0), (64.0, 10.0, 30.0), (-56.0, 10.0, 30.0)
    activity[_ball(lone, 5.0)] = 8.0
    activity[_ball(hot, 5.0)] = 15.0
    activity[_ball(cool, 5.0)] = 5.0
    image = _blurred_pet(activity)
    masks = {"lung_left": lungs & (x > 4.0), "lung_right": lungs & (x < 4.0), "submandibular_gland_right": masked_gland}
    seg = segment_lesions(image, Anatomy(grid=image, masks=masks, midline_x_mm=4.0), tracer_family=family)
    found = sorted(tuple(np.round(les.target_lps_mm)) for les in seg.lesions)
    assert len(found) == 3 and all(min(np.linalg.norm(np.subtract(f, p)) for f in found) < 4.0
                                   for p in (lone, hot, cool)), found
    glands = [c for c in seg.candidates if c.reason == "physiological: salivary glands"]
    # the masked twin is suppressed as an organ where the preset suppresses salivary glands, else a gland too
    twins = [(38.0, -26.0, 62.0)] + ([] if family == "psma_ga68" else [(-30.0, -30.0, 60.0)])
    assert len(glands) == len(twins) and all(min(np.linalg.norm(np.subtract(g.peak_lps_mm, t)) for g in glands) < 6.0
                                             for t in twins), glands


def test_glands_mirrored_about_the_head_s_own_midline_are_glands_and_a_lone_node_is_a_lesion():
    # the head turned and shifted on the trunk: its section's midline at x = 16 mm, the trunk's at 4 mm; a pair of
    # lacrimal-like glands mirrored about the head's midline, one's maximum 16 mm off the other's mirror image
    # (a 20 mm gland, a noisy maximum a voxel off: training seeds 61 and 81), a cervical node whose mirror
    # image is fat, and a 28 mm node 15.5 mm off the head's midline, within 20 mm of its own mirror image: its
    # twin is looked for beyond the midline only. About the trunk's midline the gland's twin lies 35 mm off.
    z, y, x = _mm()
    activity = np.full(SHAPE, 0.5)
    trunk = (np.hypot((x - 4.0) / 90.0, y / 80.0) <= 1.0) & (z < 0.0)
    head = (np.hypot((x - 16.0) / 75.0, (y + 10.0) / 80.0) <= 1.0) & (z >= 0.0)
    lungs = trunk & (np.hypot((x - 4.0) / 70.0, y / 60.0) <= 1.0) & (np.abs(x - 4.0) >= 10.0) & (z < -10.0)

    gland, twin, node, big = (-18.0, -40.0, 50.0), (54.0, -32.0, 62.0), (-30.0, 20.0, 20.0), (31.5, 40.0, 40.0)
    for centre, radius, uptake in ((gland, 6.0, 9.0), (twin, 6.0, 8.5), (node, 5.0, 8.0), (big, 14.0, 6.0)):
        activity[_ball(centre, radius)] = uptake
    image = _blurred_pet(activity)
    masks = {"body": trunk | head, "lung_left": lungs & (x > 4.0), "lung_right": lungs & (x < 4.0)}
    seg = segment_lesions(image, Anatomy(grid=image, masks=masks, midline_x_mm=4.0), tracer_family="psma_ga68")
    assert sorted(min(np.linalg.norm(np.subtract(les.target_lps_mm, p)) for p in (node, big)) < 4.0
                  for les in seg.lesions) == [True, True], [les.target_lps_mm for les in seg.lesions]
    glands = [c.peak_lps_mm for c in seg.candidates if c.reason == "physiological: salivary glands"]
    assert len(glands) == 2 and all(min(np.linalg.norm(np.subtract(g, t)) for g in glands) < 4.0 for t in (gland, twin))


def test_gas_counts_within_its_reach_of_the_maximum_in_mm_and_only_inside_the_hot_spot_s_region():
    # anisotropic voxels (z 4 mm, y 2 mm, x 1 mm): gas 4 or 6 mm from the maximum counts along each axis whose
    # grid holds that distance, gas 7 or 8 mm from it (past GAS_REACH_MM = 6.5) along none, whatever the index
    # distance; gas outside the region never
    spacing = np.array([4.0, 2.0, 1.0])
    seed = np.array([10, 10, 10])
    region = np.ones((21, 21, 21), bool)
    for axis, step in enumerate(spacing):
        for distance_mm, counts in ((4.0, True), (6.0, True), (7.0, False), (8.0, False)):
            offset = int(np.ceil(distance_mm / step - 1e-9))
            if abs(offset * step - distance_mm) > 1e-9:
                continue  # not on this axis's grid
            gas = np.zeros(region.shape, bool)
            at = seed.copy()
            at[axis] -= offset
            gas[tuple(at)] = True
            assert gas_at_maximum(region, seed, gas, spacing) is counts, (axis, distance_mm)
            assert gas_at_maximum(region & ~gas, seed, gas, spacing) is False
    assert 6.0 <= GAS_REACH_MM < 7.0
    corner = np.zeros(region.shape, bool)
    corner[0, 0, 0] = True  # at the grid's edge, far from a maximum at the corner's opposite
    assert gas_at_maximum(region, np.array([20, 20, 20]), corner, spacing) is False
    assert gas_at_maximum(region, np.array([1, 2, 3]), corner, spacing) is True  # 6.4 mm away


def test_the_halo_s_spill_over_is_the_median_of_each_voxel_s_patch_of_its_shell():
    # the vectorised patch medians equal numpy's median over each voxel's neighbours, voxel for voxel
    rng = np.random.default_rng(5)
    z, y, x = _mm()
    bladder = np.hypot(np.hypot(x, y), z) <= 24.0
    suv = ndimage.gaussian_filter(np.where(bladder, 40.0, 0.5), 1.2) * rng.uniform(0.8, 1.2, SHAPE)
    suv = suv.astype(np.float32)
    spacing = np.full(3, SPACING)
    detection = suv.copy()
    noise, background = flatten_halo(suv, detection, bladder, spacing, 12.0, patch_mm=15.0)
    distance = ndimage.distance_transform_edt(~bladder, sampling=spacing)
    bins = np.rint(distance / SPACING).astype(int)
    for b in (1, 3):
        shell = np.argwhere(bins == b)
        values = suv[tuple(shell.T)]
        near = cKDTree(shell * spacing).query_ball_point(shell * spacing, 15.0)
        median = np.array([np.median(values[i]) for i in near])
        spread = np.array([1.4826 * np.median(np.abs((values - median)[i])) for i in near])
        assert np.array_equal(detection[tuple(shell.T)], (background + (values - median)).astype(np.float32))
        assert np.array_equal(noise[tuple(shell.T)], np.maximum(spread, 1e-3).astype(np.float32))


def test_uptake_around_bowel_gas_is_bowel_and_a_node_against_the_loop_is_a_lesion():
    # a small-bowel loop: gas (8 mm radius) in a 3 mm wall, one side of it avid (PSMA ligands, SUV 12) and
    # the rest at SUV 2; a 14 mm node (SUV 12) against the wall's cooler side. The avid wall's hottest voxel
    # lies against the gas, inside its own region; the node's maximum, at its centre, lies its radius and
    # the wall (10 mm) away from it
    z, y, x = _mm()
    r = np.hypot(np.hypot(x, y), z)
    gas, wall = r <= 8.0, (r > 8.0) & (r <= 11.0)
    node = (-4.0, 0.0, -18.0)
    for seed in range(3):
        activity = np.full(SHAPE, 0.5)
        activity[wall] = 2.0
        activity[wall & (x > 3.0)] = 12.0
        activity[gas] = 0.0
        activity[np.hypot(np.hypot(x - node[0], y - node[1]), z - node[2]) <= 7.0] = 12.0
        image = _noisy_pet(activity, seed)
        seg = segment_lesions(image, Anatomy(grid=image, masks={"bowel_gas": gas}), tracer_family="psma_f18_renal")
        assert [np.linalg.norm(np.subtract(les.target_lps_mm, node)) <= 4.0 for les in seg.lesions] == [True], seed
        assert any(c.reason == "physiological: bowel (gas)" and np.linalg.norm(c.peak_lps_mm) <= 14.0
                   for c in seg.candidates), seed


def _hollow_organ_scene(seed: int):
    """A bowel loop with a hot stretch and a ureter with a bolus (SUV 10 and 15), each with a node (10 mm, SUV 10)
    against it, on SUV 0.5. Returns (image, the loop's and the ureter's masks, nodes, stretch and bolus centres in
    LPS mm): the masks as an organ segmentation of the CT would give them."""
    z, y, x = _mm()
    loop = np.hypot(y - 30.0, z) <= 12.0  # a loop 24 mm wide, along x
    ureter = np.hypot(x + 50.0, y + 30.0) <= 3.0  # a ureter 6 mm wide, along z
    activity = np.full(SHAPE, 0.5)
    activity[loop] = 3.0
    activity[loop & (x >= -20.0) & (x <= 0.0)] = 10.0
    activity[ureter & (z >= -20.0) & (z <= -5.0)] = 15.0
    nodes = [(30.0, 13.0, 0.0), (-41.0, -30.0, 40.0)]  # against the loop's wall, against the ureter
    for c in nodes:
        activity[np.hypot(np.hypot(x - c[0], y - c[1]), z - c[2]) <= 5.0] = 10.0
    return _noisy_pet(activity, seed), loop, ureter, nodes, [(-10.0, 30.0, 0.0), (-50.0, -30.0, -12.5)]


def test_a_hot_loop_or_ureter_segmented_on_the_ct_is_physiological_and_a_node_against_it_is_a_lesion():
    # loops differ in uptake, so a hot stretch stands out of the bowel's own distribution as a lesion would; where an
    # organ segmentation of the CT (imported anatomy) names the loop and the ureter, what lies in them is theirs
    for seed in range(3):
        image, loop, ureter, nodes, physiological = _hollow_organ_scene(seed)
        masks = {"small_bowel": loop, "ureter_left": ureter}
        seg = segment_lesions(image, Anatomy(grid=image, masks=masks), tracer_family="psma_f18_renal")
        found = sorted(min(range(2), key=lambda k: np.linalg.norm(np.subtract(les.target_lps_mm, nodes[k])))
                       for les in seg.lesions)
        assert found == [0, 1], (seed, [les.target_lps_mm for les in seg.lesions])
        assert all(min(np.linalg.norm(np.subtract(les.target_lps_mm, c)) for c in nodes) <= 4.0 for les in seg.lesions)
        for organ, centre in zip(("bowel", "ureter"), physiological):
            assert any(c.reason == f"physiological: {organ} (CT)" and np.linalg.norm(
                np.subtract(c.peak_lps_mm, centre)) <= 12.0 for c in seg.candidates), (seed, organ)
        # without the organ segmentation both stand out as lesions: the masks decide, not their shape or SUV
        bare = segment_lesions(image, Anatomy(grid=image, masks={}), tracer_family="psma_f18_renal")
        assert all(any(np.linalg.norm(np.subtract(les.target_lps_mm, c)) <= 12.0 for les in bare.lesions)
                   for c in physiological), seed


def test_the_wall_round_a_loop_s_fluid_walls_it_in_and_a_solid_node_beside_a_tube_does_not():
    # a loop of bowel crossing the field along z: 28 mm wide, its 4 mm wall at SUV 6 round fluid at 0.2; a solid
    # node (12 mm, SUV 10) touching a solid tube as hot as that wall (a collapsed loop, 10 mm wide); on 0.5
    z, y, x = _mm()
    activity = np.full(SHAPE, 0.5)
    loop_r = np.hypot(x + 48.0, y)
    activity[loop_r <= 14.0] = 6.0
    activity[loop_r <= 10.0] = 0.2
    activity[np.hypot(x - 32.0, y) <= 5.0] = 6.0
    activity[np.hypot(np.hypot(x - 44.0, y), z) <= 6.0] = 10.0
    suv = sitk.GetArrayFromImage(_noisy_pet(activity, seed=2))
    spacing = np.full(3, SPACING)

    def index(x_mm, y_mm, z_mm):
        return np.array([round((z_mm - ORIGIN[2]) / SPACING), round((y_mm - ORIGIN[1]) / SPACING),
                         round((x_mm - ORIGIN[0]) / SPACING)])

    wall, node = index(-60.0, 0.0, 0.0), index(44.0, 0.0, 0.0)
    assert walled_lumen(suv, wall, 0.5, spacing) > WALLED_FRACTION
    assert walled_lumen(suv, node, 0.5, spacing) < WALLED_FRACTION
    assert walled_lumen(suv, wall, 0.5, spacing, exclude=loop_r <= 16.0) < WALLED_FRACTION  # no wall to wall it in


def test_bowel_is_looked_for_from_the_pelvic_floor_to_the_diaphragm_of_a_study_with_ct():
    grid = sitk.Image(4, 4, 4, sitk.sitkFloat32)
    levels = {"symphysis_bottom": -420.0, "diaphragm": 35.0}
    assert bowel_span_z_mm(Anatomy(grid=grid, masks={}, levels_z_mm=levels), with_ct=True) == (-420.0, 35.0)
    assert bowel_span_z_mm(Anatomy(grid=grid, masks={}, levels_z_mm={"diaphragm": 35.0}), with_ct=True) \
        == (-np.inf, 35.0)  # a field above the pelvis: open below
    assert bowel_span_z_mm(Anatomy(grid=grid, masks={}, levels_z_mm=levels), with_ct=False) is None
