"""Segmentation on a synthetic SUV scene: blurred spheres, a bladder with urine, a kidney, a liver."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import SimpleITK as sitk
from helpers.grid import image_of
from scipy import ndimage

from localize.anatomy.model import Anatomy
from localize.detection.metrics import lps_to_zyx
from localize.detection.physiology import excess_limits, limit_away_from, with_partial_volume_rim
from localize.detection.reference import ReferenceRegion
from localize.detection.segment import (
    FIELD_EDGE,
    FLOODED,
    LONE_VOXEL,
    MIN_COMPACTNESS,
    SegmentationSettings,
    compactness,
    detection_thresholds,
    fewest_voxels,
    marrow_bearing,
    node_compactness,
    segment_lesions,
    settings_for,
)
from localize.errors import ConfigError

SPACING = 4.0  # mm, isotropic
SHAPE = (50, 60, 60)  # z, y, x
ORIGIN = (-120.0, -120.0, -100.0)  # LPS mm of voxel (0, 0, 0)
FWHM_MM = 6.0


def _grid_mm():
    z, y, x = np.indices(SHAPE, dtype=float)
    return ORIGIN[2] + z * SPACING, ORIGIN[1] + y * SPACING, ORIGIN[0] + x * SPACING


def _as_image(suv: np.ndarray) -> sitk.Image:
    """An SUV array (z, y, x) on the test grid: ``SPACING`` mm voxels, first voxel at ``ORIGIN`` (LPS mm)."""
    return image_of(suv, SPACING, ORIGIN)


def _ellipsoid(centre, radii):
    z, y, x = _grid_mm()
    return (((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2
            + ((z - centre[2]) / radii[2]) ** 2 <= 1)


LESIONS = {  # name: (centre LPS mm, diameter mm, uptake added over background)
    "node": ((60.0, 0.0, 0.0), 12.0, 10.0),
    "touching_a": ((-60.0, 40.0, 20.0), 14.0, 12.0),
    "touching_b": ((-60.0, 40.0, 38.0), 14.0, 8.0),
    "bladder_base": ((0.0, -30.0, -45.0), 12.0, 12.0),
    "faint": ((40.0, 60.0, -60.0), 12.0, 1.6),
}
BLADDER = ((0.0, -30.0, -10.0), (35.0, 28.0, 28.0))
KIDNEY = ((-70.0, 60.0, 100.0), (25.0, 20.0, 35.0))


def _scene(noise: float = 0.0, seed: int = 0):
    """(PET SUV image, anatomy, noise-free blurred SUV array z, y, x)."""
    activity = np.full(SHAPE, 1.0)
    bladder, kidney = _ellipsoid(*BLADDER), _ellipsoid(*KIDNEY)
    activity[bladder] = 40.0
    activity[kidney] = 20.0
    for centre, diameter, uptake in LESIONS.values():
        activity[_ellipsoid(centre, (diameter / 2,) * 3)] += uptake
    clean = ndimage.gaussian_filter(activity, FWHM_MM / 2.3548 / SPACING).astype(np.float32)
    suv = clean
    if noise:
        rng = np.random.default_rng(seed)
        suv = np.maximum(clean + noise * np.sqrt(0.05 * clean) * rng.standard_normal(SHAPE), 0).astype(np.float32)
    image = _as_image(suv)
    anatomy = Anatomy(grid=image, masks={"urinary_bladder": bladder, "kidney_left": kidney})
    return image, anatomy, clean


def _nearest(lesions, point):
    return min(lesions, key=lambda les: np.linalg.norm(np.subtract(les.peak_lps_mm, point)))


def test_finds_every_lesion_and_nothing_physiological():
    image, anatomy, clean = _scene()
    seg = segment_lesions(image, anatomy, tracer_family="psma_f18_renal")
    assert len(seg.lesions) == 4  # node, two touching, bladder base; the faint one stays a candidate
    for name in ("node", "touching_a", "touching_b", "bladder_base"):
        centre = LESIONS[name][0]
        lesion = _nearest(seg.lesions, centre)
        assert np.linalg.norm(np.subtract(lesion.target_lps_mm, centre)) <= SPACING
        truth_max = clean[_ellipsoid(centre, (LESIONS[name][1] / 2,) * 3)].max()
        assert lesion.suv_max == pytest.approx(truth_max, rel=1e-5)
    reasons = {c.reason for c in seg.candidates}
    assert "physiological: kidneys" in reasons and "physiological: urinary_bladder" in reasons
    assert any(c.reason == "below threshold" and np.linalg.norm(np.subtract(c.peak_lps_mm, LESIONS["faint"][0])) <= 8
               for c in seg.candidates)


def test_touching_lesions_are_split_and_label_image_matches():
    image, anatomy, _ = _scene()
    seg = segment_lesions(image, anatomy, tracer_family="psma_ga68")
    labels = sitk.GetArrayFromImage(seg.labels)
    assert seg.labels.GetPixelID() == sitk.sitkUInt16
    a = _nearest(seg.lesions, LESIONS["touching_a"][0])
    b = _nearest(seg.lesions, LESIONS["touching_b"][0])
    assert a.label != b.label
    for lesion in seg.lesions:
        assert int((labels == lesion.label).sum()) == lesion.n_voxels
    assert [les.id for les in seg.lesions] == list(range(1, len(seg.lesions) + 1))
    assert [les.suv_max for les in seg.lesions] == sorted((les.suv_max for les in seg.lesions), reverse=True)
    # nothing of the bladder or kidney is labelled as lesion
    assert not (labels[anatomy.masks["urinary_bladder"]] > 0).any()
    assert not (labels[anatomy.masks["kidney_left"]] > 0).any()


def test_noise_gives_no_false_positive_and_keeps_the_lesions():
    image, anatomy, _ = _scene(noise=1.0, seed=3)
    seg = segment_lesions(image, anatomy, tracer_family="psma_f18_renal")
    found = [any(np.linalg.norm(np.subtract(les.peak_lps_mm, LESIONS[n][0])) <= 8 for les in seg.lesions)
             for n in ("node", "touching_a", "touching_b", "bladder_base")]
    assert all(found)
    assert len(seg.lesions) == 4


def test_settings_are_recorded_and_checked():
    s = settings_for("psma_ga68", {"percent_of_max": 0.5, "detect_suv": 2.5})
    d = s.to_dict()
    assert d["percent_of_max"] == 0.5 and d["detect_suv"] == 2.5 and d["method"] == "fixed_suv"
    assert "urinary_bladder" in d["suppress_organs"]
    with pytest.raises(ConfigError, match="unknown segmentation setting 'thresh'"):
        settings_for("psma_ga68", {"thresh": 3})
    with pytest.raises(ConfigError):
        settings_for("fdg")
    with pytest.raises(ConfigError):
        settings_for("psma_ga68", {"method": "magic"})


def test_higher_percent_of_max_gives_smaller_lesions():
    image, anatomy, _ = _scene()
    small = segment_lesions(image, anatomy, tracer_family="psma_ga68", settings={"percent_of_max": 0.7})
    large = segment_lesions(image, anatomy, tracer_family="psma_ga68", settings={"percent_of_max": 0.3})
    node = LESIONS["node"][0]
    assert _nearest(small.lesions, node).volume_ml < _nearest(large.lesions, node).volume_ml


def test_percist_threshold_uses_the_liver_reference():
    image, anatomy, _ = _scene()
    suv = sitk.GetArrayFromImage(image)
    liver = _ellipsoid((40.0, -60.0, 100.0), (30.0, 30.0, 20.0))
    suv[liver] = 5.0
    image2 = sitk.GetImageFromArray(suv)
    image2.CopyInformation(image)
    anatomy.masks["liver"] = liver
    seg = segment_lesions(image2, anatomy, tracer_family="psma_ga68", settings=SegmentationSettings(method="percist"))
    assert seg.thresholds["soft_tissue_suv"] == pytest.approx(1.5 * 5.0, abs=0.05)  # uniform liver: SD 0
    found = {n for n in LESIONS
             if any(np.linalg.norm(np.subtract(les.peak_lps_mm, LESIONS[n][0])) <= 8 for les in seg.lesions)}
    assert ("node" in found and "touching_b" not in found
            or _nearest(seg.lesions, LESIONS["touching_b"][0]).suv_max >= 7.5)


def test_a_noisy_marrow_sets_the_bone_threshold_above_its_noise_peaks():
    # fluciclovine, marrow SUV 2.2 with a voxel SD of 0.63 (28 %): 1.5 x mean + 2 SD lies 3.8 SD above the
    # marrow, under the largest of its ~10^4 voxels' noise; a quiet marrow (SD 0.2) keeps that threshold
    s = settings_for("fluciclovine")
    blood = ReferenceRegion("blood_pool", 1.5, 0.2, (0.0, 0.0, 0.0), 200)
    for sd, expected in ((0.63, 2.2 + s.blood_noise_z * 0.63), (0.2, 1.5 * 2.2 + 2 * 0.2)):
        marrow = ReferenceRegion("marrow", 2.2, sd, (0.0, 0.0, 0.0), 200)
        assert detection_thresholds(s, {"blood_pool": blood, "marrow": marrow})[1] == pytest.approx(expected)


def _lesion_in_marrow(marrow_suv: float, noise_sd: float, centre: tuple[float, float, float], radius_mm: float,
                      added_suv: float, seed: int) -> tuple[sitk.Image, np.ndarray]:
    """(PET, marrow) of a 48 x 40 x 48 mm block of marrow of ``marrow_suv`` in soft tissue of SUV 0.5 with a ball
    lesion (``centre`` LPS mm, ``radius_mm``) ``added_suv`` above it, blurred (FWHM_MM) with short-range noise of
    ``noise_sd`` at the marrow's level (variance proportional to the SUV)."""
    z, y, x = _grid_mm()
    marrow = (np.abs(x + 20.0) <= 24.0) & (np.abs(y) <= 20.0) & (np.abs(z) <= 24.0)
    activity = np.where(marrow, marrow_suv, 0.5)
    activity[np.hypot(np.hypot(x - centre[0], y - centre[1]), z - centre[2]) <= radius_mm] += added_suv
    clean = ndimage.gaussian_filter(activity, FWHM_MM / 2.3548 / SPACING)
    white = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(SHAPE), 0.5)
    noisy = clean + noise_sd * white / white.std() * np.sqrt(clean / marrow_suv)
    return _as_image(noisy.astype(np.float32)), marrow


def test_a_bone_lesion_in_marrow_is_delineated_against_the_marrow_not_over_it():
    # PSMA-1007, marrow SUV 2.2 (SD 0.45) in a 48 x 40 x 48 mm block of bone with a cortex of two voxels, a
    # 13 mm lesion (1.15 ml) 2.4 SUV above it: at 41 % of its SUVmax (~2.0) it would take the marrow around it
    # (20-60 ml, its target pulled 5-7 mm off); at 41 % of its contrast over the marrow it keeps its own size
    centre = (-12.0, 0.0, 0.0)
    refs = {"spleen": ReferenceRegion("spleen", 8.0, 0.8, (0.0, 0.0, 0.0), 500),
            "marrow": ReferenceRegion("marrow", 2.2, 0.45, (0.0, 0.0, 0.0), 100)}
    for seed in range(3):
        image, marrow = _lesion_in_marrow(2.2, 0.45, centre, 6.5, 2.4, seed)
        anatomy = Anatomy(grid=image, masks={"bone": ndimage.binary_dilation(marrow, iterations=2)})
        seg = segment_lesions(image, anatomy, tracer_family="psma_f18_hepatobiliary", references=refs)
        assert len(seg.lesions) == 1, seed
        assert np.linalg.norm(np.subtract(seg.lesions[0].target_lps_mm, centre)) <= 3.0
        assert 0.5 <= seg.lesions[0].volume_ml <= 2.0


def test_a_bone_lesion_in_an_osteoporotic_core_the_ct_does_not_read_as_bone_is_delineated_against_the_marrow():
    # fluciclovine, marrow SUV 2.8 in a 48 x 40 x 48 mm vertebral body whose core (a 12 mm ball) reads under the
    # CT's bone threshold, as an osteoporotic core does (60-140 HU); a 12 mm lesion 4 SUV above the marrow in
    # that core: at 41 % of its SUVmax it takes the marrow round it (~50 ml, mostly the CT's bone; on real CT such a
    # lesion was set aside as flooding it); grown against the marrow, as in bone, it keeps its own size
    z, y, x = _grid_mm()
    centre = (-20.0, 0.0, 0.0)
    core = np.hypot(np.hypot(x - centre[0], y - centre[1]), z - centre[2]) <= 12.0
    refs = {"blood_pool": ReferenceRegion("blood_pool", 1.5, 0.2, (0.0, 0.0, 0.0), 500),
            "marrow": ReferenceRegion("marrow", 2.8, 0.4, (0.0, 0.0, 0.0), 100)}
    for seed in range(3):
        image, marrow = _lesion_in_marrow(2.8, 0.3, centre, 6.0, 4.0, seed)
        anatomy = Anatomy(grid=image, masks={"bone": ndimage.binary_dilation(marrow, iterations=2) & ~core})
        seg = segment_lesions(image, anatomy, tracer_family="fluciclovine", references=refs)
        assert len(seg.lesions) == 1, (seed, [c.reason for c in seg.candidates][:3])
        assert np.linalg.norm(np.subtract(seg.lesions[0].target_lps_mm, centre)) <= 3.0
        assert 0.2 <= seg.lesions[0].volume_ml <= 1.5


def test_marrow_threshold_holds_in_thick_bone_only():
    spacing = np.array([4.0, 4.0, 4.0])
    bone = np.zeros((30, 30, 30), bool)
    bone[5:25, 5:15, 5:15] = True  # a vertebral body, 40 mm thick
    bone[5:25, 20:22, 5:25] = True  # a rib, 8 mm thick
    zone = marrow_bearing(bone, spacing)
    assert zone[5:25, 5:15, 5:15].all()  # cortex included: the marrow's uptake reaches through it
    assert not zone[:, 20:22, :].any()
    assert not (zone & ~bone).any()


def test_a_ct_bladder_mask_off_the_urine_is_no_source_of_lesions():
    # a CT mask drawn 6 mm off the urine in x and z (near-tissue HU on a low-dose CT): the hot urine left
    # outside it is urine, not a lesion; a wall lesion hotter than the urine still comes out
    activity = np.full(SHAPE, 0.3)
    bladder = _ellipsoid(*BLADDER)
    activity[bladder] = 40.0
    wall = (BLADDER[0][0] - BLADDER[1][0] - 2.0, BLADDER[0][1], BLADDER[0][2])
    activity[_ellipsoid(wall, (4.0, 4.0, 4.0))] = 90.0
    suv = ndimage.gaussian_filter(activity, FWHM_MM / 2.3548 / SPACING).astype(np.float32)
    shift = int(round(6.0 / SPACING))
    off = np.roll(np.roll(bladder, shift, axis=2), shift, axis=0)
    urine = with_partial_volume_rim(suv, off, np.full(3, SPACING))
    assert (urine & bladder).sum() >= 0.97 * bladder.sum()
    image = _as_image(suv)
    seg = segment_lesions(image, Anatomy(grid=image, masks={"urinary_bladder": off}), tracer_family="psma_ga68")
    assert len(seg.lesions) == 1
    assert np.linalg.norm(np.subtract(seg.lesions[0].target_lps_mm, wall)) < 4.0


def test_the_noise_peaks_of_lukewarm_noisy_urine_stay_urine_when_the_ct_mask_is_off_it():
    # urine of SUV 6 with a voxel SD of 1.2 (20 %), its CT mask 8 mm off it: the organ is then the urine
    # itself, up to its noise ceiling; its noise peaks (up to ~4 SD, 1.8 x its median) are no holes in it
    # and no lesions (its troughs may be holes: nothing hot lies there)
    activity = np.full(SHAPE, 0.3)
    bladder = _ellipsoid(*BLADDER)
    activity[bladder] = 6.0
    clean = ndimage.gaussian_filter(activity, FWHM_MM / 2.3548 / SPACING)
    rng = np.random.default_rng(7)
    suv = (clean + 0.2 * clean * rng.standard_normal(SHAPE)).astype(np.float32)
    shift = int(round(8.0 / SPACING))
    off = np.roll(bladder, shift, axis=0)
    urine = with_partial_volume_rim(suv, off, np.full(3, SPACING))
    inner = ndimage.binary_erosion(bladder, iterations=2)
    assert urine[inner & off & (suv >= np.median(suv[bladder]))].all()
    image = _as_image(suv)
    seg = segment_lesions(image, Anatomy(grid=image, masks={"urinary_bladder": off}), tracer_family="psma_ga68")
    assert not [les for les in seg.lesions if bladder[tuple(np.rint(lps_to_zyx(image, les.peak_lps_mm)).astype(int))]]


def _urine_and_node(urine_suv: float, off_wall_mm: float, node_radius_mm: float, node_suv: float):
    """(bladder mask, node centre LPS mm, noise-free blurred SUV z, y, x): urine filling BLADDER on SUV 0.3 and a
    node centred ``off_wall_mm`` beyond its wall in x."""
    activity = np.full(SHAPE, 0.3)
    bladder = _ellipsoid(*BLADDER)
    activity[bladder] = urine_suv
    node_centre = (BLADDER[0][0] + BLADDER[1][0] + off_wall_mm, BLADDER[0][1], BLADDER[0][2])
    activity[_ellipsoid(node_centre, (node_radius_mm,) * 3)] = node_suv
    return bladder, node_centre, ndimage.gaussian_filter(activity, FWHM_MM / 2.3548 / SPACING)


def test_lukewarm_noisy_urine_beyond_a_short_ct_mask_makes_no_lesion_and_a_node_beside_it_is_found():
    # urine of SUV 4 with a voxel SD of 0.6, its CT mask 8 mm short of it all round (a half-water edge
    # drawn inside the urine): the urine's noise peaks outside the mask reach SUV 4.4-5, above the fixed
    # floor of 3, and must not come out as lesions; a node of SUV 14, 16 mm off the wall, must. Taking the
    # voxels that touch the mask, up to the urine's noise ceiling, into the organ leaves such peaks one voxel
    # further out as lesions (the organ's ragged edge stays at or below the urine's median)
    bladder, node_centre, clean = _urine_and_node(4.0, 16.0, 4.0, 14.0)
    suv = (clean * (1.0 + 0.15 * np.random.default_rng(3).standard_normal(SHAPE))).astype(np.float32)
    short = ndimage.binary_erosion(bladder, iterations=2)
    image = _as_image(suv)
    seg = segment_lesions(image, Anatomy(grid=image, masks={"urinary_bladder": short}), tracer_family="psma_ga68")
    near_urine = ndimage.binary_dilation(bladder, iterations=2)
    peaks = [tuple(np.rint(lps_to_zyx(image, les.peak_lps_mm)).astype(int)) for les in seg.lesions]
    assert not [peak for peak in peaks if near_urine[peak]]
    assert len(seg.lesions) == 1
    assert np.linalg.norm(np.subtract(seg.lesions[0].target_lps_mm, node_centre)) < 4.0


def test_a_ragged_urine_edge_is_no_lesion_but_a_node_beside_it_is():
    # a bladder whose CT mask stops short of its PET edge in places: the half-urine voxels left outside
    # stand out of their shell's median; a faint node 9 mm off the wall must still come out
    activity = np.full(SHAPE, 0.3)
    bladder = _ellipsoid(*BLADDER)
    activity[bladder] = 45.0
    node_centre = (BLADDER[0][0] + BLADDER[1][0] + 9.0, BLADDER[0][1], BLADDER[0][2])
    activity[_ellipsoid(node_centre, (4.0, 4.0, 4.0))] += 8.0
    suv = ndimage.gaussian_filter(activity, FWHM_MM / 2.3548 / SPACING).astype(np.float32)
    ragged = bladder & ~(ndimage.binary_dilation(~bladder) & (np.indices(SHAPE).sum(0) % 2 == 0))
    assert (with_partial_volume_rim(suv, ragged, np.full(3, SPACING)) & ~ragged).sum() > 0.5 * (bladder & ~ragged).sum()
    image = _as_image(suv)
    seg = segment_lesions(image, Anatomy(grid=image, masks={"urinary_bladder": ragged}), tracer_family="psma_ga68")
    assert len(seg.lesions) == 1
    assert np.linalg.norm(np.subtract(seg.lesions[0].target_lps_mm, node_centre)) < 4.0
    spill = [c for c in seg.candidates if c.reason == "physiological: urinary_bladder spill-over"]
    assert len(spill) == 1 and spill[0].suv_max < 45.0  # the hottest residue is listed for audit, once


def test_a_node_that_a_dip_parts_from_the_urine_is_no_urine_edge():
    # a 12 mm node 4 mm off the wall of urine of SUV 15 (10 % voxel noise): its SUVmax (8-9) lies between
    # 0.4 x the urine and the urine's noise ceiling, as the urine's own partial-volume edge does, but the SUV
    # dips between them (training seed 32: an obturator node of SUV 6 beside urine of SUV 15)
    bladder, node_centre, clean = _urine_and_node(15.0, 10.0, 6.0, 12.0)
    for seed in range(4):
        suv = (clean * (1.0 + 0.1 * np.random.default_rng(seed).standard_normal(SHAPE))).astype(np.float32)
        image = _as_image(suv)
        seg = segment_lesions(image, Anatomy(grid=image, masks={"urinary_bladder": bladder}), tracer_family="psma_ga68")
        assert len(seg.lesions) == 1, (seed, [(c.reason, c.suv_max) for c in seg.candidates])
        assert np.linalg.norm(np.subtract(seg.lesions[0].target_lps_mm, node_centre)) < 4.0
        assert 0.4 * 15.0 < seg.lesions[0].suv_max < 15.0


@pytest.mark.parametrize("tracer", ["fluciclovine", "psma_f18_hepatobiliary"])
def test_a_lesion_that_a_bladder_mask_of_faint_urine_takes_in_is_found(tracer):
    # faint early urine (SUV 1.0 on tissue of 0.8, fluciclovine): the PET cannot tell the urine from what is
    # round it, so the CT's mask is the organ; drawn 12 mm too low, it takes in the gland below the bladder and
    # a 12 mm lesion there (SUV 10). That lesion is no urine and no spill-over of it (real CT
    # tests/data/totalsegmentator-abdomen: the built-in bladder took the prostate in, and its lesion was lost)
    activity = np.full(SHAPE, 0.8)
    bladder = _ellipsoid(*BLADDER)
    activity[bladder] = 1.0
    centre = (BLADDER[0][0], BLADDER[0][1], BLADDER[0][2] - BLADDER[1][2] - 8.0)
    activity[_ellipsoid(centre, (6.0, 6.0, 6.0))] += 10.0
    clean = ndimage.gaussian_filter(activity, FWHM_MM / 2.3548 / SPACING)
    low = np.roll(bladder, -3, axis=0) | bladder  # 12 mm too low
    assert low[tuple(np.rint(lps_to_zyx(_as_image(clean), centre)).astype(int))]
    for seed in range(3):
        suv = (clean * (1.0 + 0.1 * np.random.default_rng(seed).standard_normal(SHAPE))).astype(np.float32)
        image = _as_image(suv)
        seg = segment_lesions(image, Anatomy(grid=image, masks={"urinary_bladder": low}), tracer_family=tracer)
        assert len(seg.lesions) == 1, (seed, [(c.reason, c.suv_max) for c in seg.candidates])
        assert np.linalg.norm(np.subtract(seg.lesions[0].target_lps_mm, centre)) < 3.0


def test_a_preset_without_its_references_falls_back_to_the_floors_and_says_so():
    image, anatomy, _ = _scene()
    seg = segment_lesions(image, anatomy, tracer_family="fluciclovine")
    assert seg.thresholds == {"soft_tissue_suv": 3.0, "bone_suv": 3.0, "noise_floor_suv": 0.0}
    assert any("blood_pool not found" in w for w in seg.warnings)
    assert any("marrow not found" in w for w in seg.warnings)
    seg = segment_lesions(image, anatomy, tracer_family="psma_f18_hepatobiliary")
    assert seg.thresholds["bone_suv"] == 3.0 and [w for w in seg.warnings if "marrow not found" in w]
    with pytest.raises(ConfigError, match="marrow"):  # asked for by name: no silent fallback
        segment_lesions(image, anatomy, tracer_family="psma_f18_hepatobiliary",
                        settings={"bone_reference_region": "marrow"})


def test_a_node_beside_the_liver_does_not_grow_into_it():
    activity = np.full(SHAPE, 0.3)
    liver = _ellipsoid((-40.0, 0.0, 0.0), (50.0, 60.0, 60.0))
    activity[liver] = 5.0
    node_centre = (16.0, 0.0, 0.0)  # touching the liver
    activity[_ellipsoid(node_centre, (5.0, 5.0, 5.0))] += 9.0
    suv = ndimage.gaussian_filter(activity, FWHM_MM / 2.3548 / SPACING).astype(np.float32)
    image = _as_image(suv)
    seg = segment_lesions(image, Anatomy(grid=image, masks={"liver": liver}), tracer_family="psma_f18_renal")
    assert len(seg.lesions) == 1
    node = seg.lesions[0]
    assert np.linalg.norm(np.subtract(node.peak_lps_mm, node_centre)) <= 4.0
    assert not (sitk.GetArrayFromImage(seg.labels)[liver] > 0).any()
    assert node.volume_ml < 2.0  # a 10 mm node, not the liver's rim


def test_each_bowel_plateau_is_judged_on_its_own_uptake():
    # a hot loop (SUV 6) and a lukewarm plateau (SUV 2, vessels read as bowel) with a node in it:
    # against the hot loop's statistics the node would pass for bowel
    activity = np.full(SHAPE, 0.3)
    loop = _ellipsoid((-60.0, -40.0, 0.0), (30.0, 15.0, 40.0))
    plateau = _ellipsoid((50.0, 30.0, 0.0), (15.0, 15.0, 60.0))
    activity[loop] = 6.0
    activity[plateau] = 2.0
    node_centre = (50.0, 30.0, 20.0)
    activity[_ellipsoid(node_centre, (4.5, 4.5, 4.5))] += 7.0
    suv = ndimage.gaussian_filter(activity, FWHM_MM / 2.3548 / SPACING).astype(np.float32)
    image = _as_image(suv)
    seg = segment_lesions(image, Anatomy(grid=image, masks={"bowel": loop | plateau}), tracer_family="psma_f18_renal")
    assert len(seg.lesions) == 1
    assert np.linalg.norm(np.subtract(seg.lesions[0].peak_lps_mm, node_centre)) <= 4.0


def _noisy(activity: np.ndarray, cov_at_5: float, seed: int) -> sitk.Image:
    """Blurred ``activity`` with correlated noise whose variance grows with the SUV (CoV ``cov_at_5`` at SUV 5)."""
    clean = ndimage.gaussian_filter(activity, FWHM_MM / 2.3548 / SPACING)
    white = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(SHAPE), 0.6)
    suv = np.maximum(clean + cov_at_5 * np.sqrt(5.0 * np.maximum(clean, 0)) * white / white.std(), 0)
    return _as_image(suv.astype(np.float32))


def test_a_node_that_a_dip_parts_from_a_hotter_kidney_is_found():
    # a 9 mm node 4 mm from a kidney of SUV 16 (its mask the kidney's uptake), the SUV dipping by a third
    # between them, with noise (training seed 9: a retroperitoneal node of SUV 13 against a kidney of SUV 16):
    # the kidney is background of the noise peaks of its edge, not of a focus the PET parts from it
    kidney = _ellipsoid((-40.0, 0.0, 0.0), (20.0, 25.0, 35.0))
    node_centre = (-11.5, 0.0, 0.0)
    activity = np.full(SHAPE, 0.5)
    activity[kidney] = 16.0
    activity[_ellipsoid(node_centre, (4.5, 4.5, 4.5))] = 19.0
    for seed in range(4):
        image = _noisy(activity, 0.12, seed)
        seg = segment_lesions(image, Anatomy(grid=image, masks={"kidney_left": kidney}), tracer_family="psma_f18_renal")
        assert len(seg.lesions) == 1, (seed, [(c.reason, c.suv_max) for c in seg.candidates])
        assert np.linalg.norm(np.subtract(seg.lesions[0].peak_lps_mm, node_centre)) <= 4.0
        assert 10.0 < seg.lesions[0].suv_max < 15.0


@pytest.mark.parametrize("masks", ["none", "eroded"])
def test_a_liver_and_spleen_without_their_masks_are_not_flooded(masks):
    # noise peaks of a liver (SUV 5) and spleen (SUV 4) at 12 % voxel CoV pass the fixed SUV 3 threshold by
    # the dozen; without the organs' masks (or with masks eroded 12 mm) the hot spots must stand out of
    # their own surroundings: a liver metastasis and a node touching the spleen do, the parenchyma does not
    activity = np.full(SHAPE, 0.6)
    liver = _ellipsoid((-40.0, 0.0, 20.0), (55.0, 50.0, 45.0))
    spleen = _ellipsoid((60.0, 30.0, 20.0), (25.0, 30.0, 35.0))
    activity[liver] = 5.0
    activity[spleen] = 4.0
    lesions = {"liver_metastasis": ((-50.0, 0.0, 20.0), 14.0, 9.0), "node_by_spleen": ((60.0, -8.0, 20.0), 10.0, 9.0),
               "node": ((0.0, 60.0, -60.0), 8.0, 6.0)}
    for centre, diameter, uptake in lesions.values():
        activity[_ellipsoid(centre, (diameter / 2,) * 3)] += uptake
    image = _noisy(activity, 0.12, seed=5)
    organ_masks = {}
    if masks == "eroded":
        footprint = ndimage.generate_binary_structure(3, 1)
        organ_masks = {name: ndimage.binary_erosion(mask, footprint, iterations=3) for name, mask in
                       (("liver", liver), ("spleen", spleen))}
    seg = segment_lesions(image, Anatomy(grid=image, masks=organ_masks), tracer_family="psma_f18_renal")
    assert sum(les.suv_max >= 3.0 for les in seg.lesions) == len(seg.lesions)
    found = {name: [les for les in seg.lesions if np.linalg.norm(np.subtract(les.peak_lps_mm, centre)) <= 8.0]
             for name, (centre, _, _) in lesions.items()}
    assert all(len(hits) == 1 for hits in found.values()), {k: len(v) for k, v in found.items()}
    assert len(seg.lesions) == len(lesions)  # no noise peak of either organ
    assert any(c.reason == "low local contrast" for c in seg.candidates)  # they were examined, and listed for audit


def test_fluciclovine_marrow_without_named_vertebrae_is_not_flooded():
    # a column of vertebral bodies (CT bone) whose marrow takes up fluciclovine (SUV 3) with no vertebra
    # named, so no marrow reference: at the fixed bone floor (SUV 3) each body's noise peaks pass, and a
    # body stands out of the soft tissue around it like a node; a hot spot in bone is judged against the
    # bone around it, so only the metastasis (SUV 9) comes out
    z, y, x = _grid_mm()
    activity = np.full(SHAPE, 1.0)
    bodies = (np.hypot(x - 0.0, y - 40.0) <= 16.0) & (np.mod(z + 100.0, 28.0) < 22.0) & (z > -90) & (z < 90)
    activity[bodies] = 3.0
    metastasis = (0.0, 40.0, 8.0)
    activity[_ellipsoid(metastasis, (7.0, 7.0, 7.0))] += 7.0
    image = _noisy(activity, 0.12, seed=2)
    seg = segment_lesions(image, Anatomy(grid=image, masks={"bone": bodies}), tracer_family="fluciclovine")
    assert any("marrow not found" in w for w in seg.warnings)
    assert len(seg.lesions) == 1, [(round(les.suv_max, 1), les.peak_lps_mm) for les in seg.lesions]
    assert np.linalg.norm(np.subtract(seg.lesions[0].peak_lps_mm, metastasis)) <= 8.0


def test_compactness_of_a_ball_an_ellipsoid_and_a_tube():
    spacing = np.full(3, SPACING)
    assert compactness(_ellipsoid((0.0, 0.0, 0.0), (12.0, 12.0, 12.0)), spacing) == pytest.approx(1.0, abs=0.15)
    two_to_one = compactness(_ellipsoid((0.0, 0.0, 0.0), (8.0, 8.0, 16.0)), spacing)
    assert 0.17 <= two_to_one <= 0.35  # 0.25 for a smooth 2:1 ellipsoid
    tube = compactness(_ellipsoid((0.0, 0.0, 0.0), (5.0, 5.0, 40.0)), spacing)
    assert tube < MIN_COMPACTNESS < two_to_one


def _blurred_region(axes_mm, rotation, spacing_zyx, fwhm_mm, phase, fine=4):
    """Half-maximum region (bool z, y, x) of a uniform ellipsoid centred on the grid: semi-axes ``axes_mm`` (mm,
    along z, y, x before the 3 x 3 ``rotation``), blurred by a Gaussian PSF of ``fwhm_mm`` (FWHM, mm) on a grid
    ``fine`` times finer, then averaged into voxels of ``spacing_zyx`` (mm) shifted by ``phase`` (fractions of a
    voxel, z, y, x)."""
    step = spacing_zyx / fine
    n = 2 * np.ceil((max(axes_mm) + 2 * fwhm_mm) / spacing_zyx).astype(int) * fine + fine
    z, y, x = np.meshgrid(*[(np.arange(n[i]) - n[i] / 2 + 0.5) * step[i] + phase[i] * spacing_zyx[i]
                            for i in range(3)], indexing="ij")
    turned = np.stack([z, y, x], -1) @ rotation
    inside = ((turned / np.asarray(axes_mm)) ** 2).sum(-1) <= 1.0
    blurred = ndimage.gaussian_filter(inside.astype(float), fwhm_mm / 2.3548 / step)
    voxels = blurred.reshape(n[0] // fine, fine, n[1] // fine, fine, n[2] // fine, fine).mean((1, 3, 5))
    labels, _ = ndimage.label(voxels >= 0.5 * voxels.max())
    return labels == labels[np.unravel_index(np.argmax(voxels), voxels.shape)]


def test_an_oval_node_scores_above_the_node_bound_on_any_clinical_grid():
    # a node 1.5 times as long as wide (within the short-to-long axis ratio of metastatic nodes), 10-30 mm
    # long, any orientation, blurred by a PSF of 5-7 mm and sampled on voxels of 2-5.5 mm at any phase: its
    # half-maximum region must pass the bound set for its size (see MIN_NODE_COMPACTNESS)
    rng = np.random.default_rng(5)
    scored = []
    for _ in range(30):
        half_length = rng.uniform(5.0, 15.0)
        spacing = np.array([rng.uniform(2.0, 5.5), *[rng.uniform(2.0, 5.5)] * 2])
        rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
        region = _blurred_region((half_length, half_length / 1.5, half_length / 1.5), rotation, spacing,
                                 rng.uniform(5.0, 7.0), rng.uniform(-0.5, 0.5, 3))
        n = int(region.sum())
        scored.append((n, compactness(region, spacing), node_compactness(n)))
    assert sum(n >= 20 for n, _, _ in scored) >= 10  # the resolved sizes, where the bound is the 2:1 one
    assert all(score >= bound for _, score, bound in scored), [s for s in scored if s[1] < s[2]]


def test_a_hot_loop_of_bowel_is_no_lesion_but_a_node_as_hot_beside_it_is():
    # a curved loop of bowel wall that no mask knows, too short and bent for a ureter, its uptake rising
    # from 2 to 12 along it (on 0.5; SUVmax ~7 once blurred), with noise; a node 25 mm from it, a little
    # hotter, must come out, the loop must not
    activity = np.full(SHAPE, 0.5)
    z, y, x = _grid_mm()
    ring = (np.hypot(x, y) - 30.0) ** 2 + z**2 <= 4.0**2  # an 8 mm tube bent round 30 mm in the axial plane
    arc_mm = 30.0 * np.arctan2(x, -y)  # along the loop from its hottest point, at (0, -30, 0)
    loop = ring & (y < 20.0)  # a C open towards the node
    activity[loop] = (2.0 + 10.0 * np.exp(-0.5 * (arc_mm / 20.0) ** 2))[loop]
    node = (0.0, 55.0, 0.0)
    activity[_ellipsoid(node, (5.0, 5.0, 5.0))] = 10.4  # SUVmax ~9 once blurred
    clean = ndimage.gaussian_filter(activity, FWHM_MM / 2.3548 / SPACING)
    rng = np.random.default_rng(3)
    suv = np.maximum(clean + 0.8 * np.sqrt(0.05 * clean) * rng.standard_normal(SHAPE), 0).astype(np.float32)
    image = _as_image(suv)
    seg = segment_lesions(image, Anatomy(grid=image, masks={}), tracer_family="psma_f18_renal")
    found = [np.linalg.norm(np.subtract(les.target_lps_mm, node)) for les in seg.lesions]
    assert len(seg.lesions) == 1 and found[0] < 4.0, [(les.target_lps_mm, les.suv_max) for les in seg.lesions]
    assert any(c.reason == "not focal (a tube or sheet)" for c in seg.candidates)


def test_the_noise_peaks_of_unmasked_bowel_loops_are_no_lesions_but_a_faint_node_is():
    # a packet of collapsed bowel loops that no mask knows (nine 18 mm tubes of SUV 2, 4 mm of fat of SUV 0.3
    # between them) at 12 % noise, and a node of SUVmax ~3.8 in the fat: the loops' noise peaks pass SUV 3
    # and stand 4-4.5 SD out of their shells, which hold fat, but 41 % of their SUVmax lies below the loops'
    # uptake, so their delineation floods along the loops (9-20 ml, 3 of these 6 draws) while their
    # half-maximum region is a few voxels (training seeds 5, 14, 26, 34, 56: false lesions of 5-36 ml on
    # bowel, SUVmax 3.4-5.9); the node's delineation is the node
    z, y, x = _grid_mm()
    activity = np.full(SHAPE, 0.3)
    for cx in (-62.0, -40.0, -18.0):
        for cy in (-22.0, 0.0, 22.0):
            activity[(np.hypot(x - cx, y - cy) <= 9.0) & (np.abs(z) <= 60.0)] = 2.0
    node = (40.0, 0.0, 0.0)
    bump = 3.5 * np.exp(-((x - node[0]) ** 2 + (y - node[1]) ** 2 + (z - node[2]) ** 2) / (2 * 4.0**2))
    flooded = 0
    for seed in range(6):
        image = _as_image((sitk.GetArrayFromImage(_noisy(activity, 0.12, seed)) + bump).astype(np.float32))
        seg = segment_lesions(image, Anatomy(grid=image, masks={}), tracer_family="psma_f18_renal")
        assert [np.linalg.norm(np.subtract(les.peak_lps_mm, node)) <= 4.0 for les in seg.lesions] == [True], \
            (seed, [(round(les.suv_max, 1), round(les.volume_ml, 1), les.peak_lps_mm) for les in seg.lesions])
        assert seg.lesions[0].volume_ml < 1.5
        flooded += any(c.reason == FLOODED for c in seg.candidates)
    assert flooded >= 3


def test_a_lesion_filling_much_of_an_avid_gland_does_not_raise_the_gland_s_own_limit():
    # an intact prostate of 24 ml and SUV 5 (post-radiotherapy) holding a 16 mm recurrence of twice its
    # uptake: the gland's limit (mean + 4 SD) must come from its normal part, else the recurrence hides itself
    activity = np.full(SHAPE, 0.5)
    gland = _ellipsoid((0.0, 0.0, 0.0), (20.0, 16.0, 18.0))
    activity[gland] = 5.0
    recurrence = (6.0, 0.0, 0.0)
    activity[_ellipsoid(recurrence, (8.0, 8.0, 8.0))] = 10.0
    clean = ndimage.gaussian_filter(activity, FWHM_MM / 2.3548 / SPACING)
    rng = np.random.default_rng(5)
    suv = np.maximum(clean + 0.5 * np.sqrt(0.05 * clean) * rng.standard_normal(SHAPE), 0).astype(np.float32)
    image = _as_image(suv)
    seg = segment_lesions(image, Anatomy(grid=image, masks={"prostate": gland}), tracer_family="psma_f18_renal")
    assert len(seg.lesions) == 1, [(les.target_lps_mm, les.suv_max) for les in seg.lesions]
    assert np.linalg.norm(np.subtract(seg.lesions[0].target_lps_mm, recurrence)) < 4.0


def test_loops_leaving_the_field_are_no_lesions_and_a_node_near_its_edge_is_one():
    # hot bowel loops leaving the field through its top slice look like nodes cut in half: one is hottest in
    # the end slice (listed as cut off), one two slices inside, where it bends (measured with its mirror
    # image beyond the edge: a tube). A node whose centre lies two voxels inside the field is a lesion.
    activity = np.full(SHAPE, 0.5)
    z, y, x = _grid_mm()
    top = ORIGIN[2] + (SHAPE[0] - 1) * SPACING
    activity[(np.hypot(x + 40.0, y + 40.0) <= 6.0) & (z >= top - 14.0)] = 9.0
    bend = np.hypot(x + 40.0, y - 50.0) <= 6.0
    activity[bend & (z >= top - 24.0)] = 9.0
    activity[bend & (z >= top - 12.0) & (z <= top - 4.0)] = 12.0
    node = (40.0, 0.0, top - 2 * SPACING)
    activity[_ellipsoid(node, (6.0, 6.0, 6.0))] = 9.0
    suv = ndimage.gaussian_filter(activity, FWHM_MM / 2.3548 / SPACING, mode="nearest").astype(np.float32)
    seg = segment_lesions(_as_image(suv), Anatomy(grid=_as_image(suv), masks={}), tracer_family="psma_f18_renal")
    assert [float(np.linalg.norm(np.subtract(les.target_lps_mm, node))) < 4.0 for les in seg.lesions] == [True]
    edge = [c.peak_lps_mm for c in seg.candidates if c.reason == FIELD_EDGE]
    assert len(edge) == 1 and abs(edge[0][1] + 40.0) < 4.0 and edge[0][2] == pytest.approx(top), seg.candidates
    tube = [c.peak_lps_mm for c in seg.candidates if c.reason == "not focal (a tube or sheet)"]
    assert len(tube) == 1 and abs(tube[0][1] - 50.0) < 4.0 and top - 16.0 < tube[0][2] < top - 2.0, seg.candidates


def test_noise_peaks_of_vessels_on_a_low_count_pet_stay_below_the_blood_pool_noise_floor():
    # two iliac-like vessels of blood SUV 2 at 30 % voxel noise (a low-count Ga-68 scan) beside a node of SUV ~14:
    # the vessels' noise peaks pass the fixed floor of 3 but not blood-pool mean + 4.5 SD
    z, y, x = _grid_mm()
    activity = np.full(SHAPE, 0.8)
    vessel = ((x - 30) ** 2 + (y + 20) ** 2 <= 8.0**2) | ((x + 30) ** 2 + (y + 20) ** 2 <= 8.0**2)
    activity[vessel] = 2.0
    node = (0.0, 40.0, 0.0)
    activity[_ellipsoid(node, (6.0,) * 3)] += 12.0
    clean = ndimage.gaussian_filter(activity, FWHM_MM / 2.3548 / SPACING)
    rng = np.random.default_rng(0)
    suv = np.maximum(clean * (1 + 0.3 * rng.standard_normal(SHAPE)), 0).astype(np.float32)
    image, anatomy = _as_image(suv), Anatomy(grid=_as_image(suv), masks={})
    core = ndimage.binary_erosion(vessel, iterations=1)
    blood = ReferenceRegion("blood_pool", float(suv[core].mean()), float(suv[core].std()), (0.0, 0.0, 0.0),
                            int(core.sum()))
    seg = segment_lesions(image, anatomy, tracer_family="psma_ga68", references={"blood_pool": blood})
    assert seg.thresholds["noise_floor_suv"] == pytest.approx(blood.suv_mean + 4.5 * blood.suv_sd)
    assert seg.thresholds["soft_tissue_suv"] == seg.thresholds["noise_floor_suv"] > 4.0
    assert len(seg.lesions) == 1 and np.linalg.norm(np.subtract(seg.lesions[0].peak_lps_mm, node)) <= 2 * SPACING
    without = segment_lesions(image, anatomy, tracer_family="psma_ga68", settings={"blood_noise_z": 0.0},
                              references={"blood_pool": blood})
    assert len(without.lesions) == 2  # the node and a vessel's noise peak
    implausible = dataclasses.replace(blood, warning="blood_pool SUVmean outside the plausible range")
    seg = segment_lesions(image, anatomy, tracer_family="psma_ga68", references={"blood_pool": implausible})
    assert seg.thresholds["noise_floor_suv"] == 0.0 and seg.thresholds["soft_tissue_suv"] == 3.0


def test_a_recurrence_filling_a_third_of_an_irradiated_gland_is_judged_against_the_rest_of_it():
    # a 24 mm recurrence in a 27 ml gland of SUV 2.5 (25 % voxel noise) lifts the whole gland's median and
    # spread so far that a limit read on the whole gland hides it; the gland's uptake away from it does not
    activity = np.full(SHAPE, 0.6)
    gland = _ellipsoid((0.0, 0.0, 0.0), (22.0, 17.0, 17.0))
    activity[gland] = 2.5
    centre = (6.0, 4.0, 2.0)
    activity[_ellipsoid(centre, (12.0,) * 3)] = 7.0
    clean = ndimage.gaussian_filter(activity, FWHM_MM / 2.3548 / SPACING)
    suv = np.maximum(clean * (1 + 0.25 * np.random.default_rng(0).standard_normal(SHAPE)), 0).astype(np.float32)
    image = _as_image(suv)
    seg = segment_lesions(image, Anatomy(grid=image, masks={"prostate": gland}), tracer_family="psma_ga68")
    assert len(seg.lesions) == 1
    lesion = seg.lesions[0]
    assert np.linalg.norm(np.subtract(lesion.peak_lps_mm, centre)) <= 12.0
    peak = np.array(image.TransformPhysicalPointToIndex(lesion.peak_lps_mm)[::-1])
    _, whole_gland_limit = excess_limits(suv, gland, np.full(3, SPACING), 4.0, 4.0)
    assert whole_gland_limit[tuple(peak)] > lesion.suv_max  # what the whole gland's statistics would have hidden
    assert limit_away_from(suv, gland, peak, np.full(3, SPACING), 4.0) < lesion.suv_max


TUBE_AT, NODE_AT = (-50.0, 0.0, 0.0), (50.0, 0.0, 0.0)
TRUNK_BONE = ((0.0, 80.0, 0.0), (20.0, 15.0, 90.0))  # the CT's bone: a trunk, where bowel and ureters lie


def _tube_beside_node(tube_radii, tube_suv, node_radii, node_suv) -> sitk.Image:
    """Test PET: hot ellipsoids at TUBE_AT and NODE_AT (radii mm, x y z) on SUV 0.5, blurred, with noise."""
    activity = np.full(SHAPE, 0.5)
    activity[_ellipsoid(TUBE_AT, tube_radii)] = tube_suv
    activity[_ellipsoid(NODE_AT, node_radii)] = node_suv
    clean = ndimage.gaussian_filter(activity, FWHM_MM / 2.3548 / SPACING)
    noise = 0.8 * np.sqrt(0.05 * clean) * np.random.default_rng(7).standard_normal(SHAPE)
    return _as_image(np.maximum(clean + noise, 0).astype(np.float32))


def test_a_sausage_of_bowel_whose_hottest_voxel_the_bones_edge_takes_in_is_still_no_node():
    # the sausage of the test below, its hottest voxel inside a patch of CT bone of 9 voxels (the edge of an
    # iliac wing reaching into it): the hot spot lies mostly outside bone, so it is judged as soft tissue
    image = _tube_beside_node((6.0, 6.0, 16.0), 12.0, (7.0, 7.0, 5.0), 12.0)
    suv = sitk.GetArrayViewFromImage(image)
    hottest = np.unravel_index(np.argmax(np.where(_ellipsoid(TUBE_AT, (10.0, 10.0, 20.0)), suv, 0)), SHAPE)
    edge = np.zeros(SHAPE, bool)
    edge[hottest[0], hottest[1] - 1:hottest[1] + 2, hottest[2] - 2:hottest[2] + 1] = True
    seg = segment_lesions(image, Anatomy(grid=image, masks={"bone": edge | _ellipsoid(*TRUNK_BONE)}),
                          tracer_family="psma_f18_renal")
    assert [np.linalg.norm(np.subtract(les.target_lps_mm, NODE_AT)) < 4.0 for les in seg.lesions] == [True]
    assert any(c.reason == "not focal (a tube or sheet)" for c in seg.candidates)


def test_the_fewest_voxels_of_a_lesion_follow_the_grid():
    # three voxels, or as many as a 6 mm ball fills (113 mm3) where that is fewer; at least one
    assert [fewest_voxels(3, np.full(3, mm)) for mm in (2.0, 3.3, 4.0, 4.8, 4.9, 5.5)] == [3, 3, 2, 2, 1, 1]
    assert fewest_voxels(3, np.array([5.0, 2.7, 2.7])) == 3 and fewest_voxels(3, np.array([5.0, 4.0, 4.0])) == 2
    assert fewest_voxels(1, np.full(3, 2.0)) == 1 and fewest_voxels(0, np.full(3, 5.0)) == 1


@pytest.mark.parametrize("voxel_mm", [4.0, 5.0])
def test_a_6_mm_lesion_centred_in_a_coarse_voxel_is_found_and_no_lone_voxel(voxel_mm):
    # a 6 mm sphere of SUV 30 on 0.5, blurred by 6 mm and sampled onto 4 or 5 mm voxels with the sphere at a
    # voxel's centre (15 % voxel noise): its half-maximum region is often that voxel alone, but at 30 % of its
    # contrast it spreads wider, so it is no lone voxel (tested at half-way instead, some would be lost); on
    # 5 mm voxels its region at 41 % of SUVmax is 1-2 voxels, fewer than the 3 of a finer grid
    fine = 4  # sub-voxels per voxel and axis
    shape = (20, 20, 20)
    z, y, x = (np.indices([n * fine for n in shape]) + 0.5) * (voxel_mm / fine) - (np.array(shape) / 2 + 0.5) \
        .reshape(3, 1, 1, 1) * voxel_mm
    activity = np.where(np.sqrt(z**2 + y**2 + x**2) <= 3.0, 30.0, 0.5)
    blurred = ndimage.gaussian_filter(activity, FWHM_MM / 2.3548 / (voxel_mm / fine))
    clean = blurred.reshape(shape[0], fine, shape[1], fine, shape[2], fine).mean((1, 3, 5))
    found = 0
    for seed in range(6):
        suv = np.maximum(clean * (1 + 0.15 * np.random.default_rng(seed).standard_normal(shape)), 0)
        image = sitk.GetImageFromArray(suv.astype(np.float32))
        image.SetSpacing((voxel_mm,) * 3)
        seg = segment_lesions(image, Anatomy(grid=image, masks={"bone": np.zeros(shape, bool)}),
                              tracer_family="psma_f18_renal")
        assert not [c for c in seg.candidates if c.reason == LONE_VOXEL], seed
        found += len(seg.lesions)
    assert found >= 5


def test_a_hot_voxel_alone_is_a_lone_voxel_not_a_lesion():
    # one 5 mm voxel of SUV 12 on a background of 0.5 (10 % noise), its six neighbours at SUV 2 (under 30 % of the
    # way up): a noise peak or a remnant of the urine's spill-over model, not a 6 mm lesion, which the scanner's
    # blur spreads over several voxels (test above); on 5 mm voxels one voxel is enough to pass "too small"
    shape = (20, 20, 20)
    for seed in range(3):
        suv = 0.5 * (1 + 0.1 * np.random.default_rng(seed).standard_normal(shape))
        suv[9:12, 10, 10] = suv[10, 9:12, 10] = suv[10, 10, 9:12] = 2.0
        suv[10, 10, 10] = 12.0
        image = sitk.GetImageFromArray(suv.astype(np.float32))
        image.SetSpacing((5.0,) * 3)
        seg = segment_lesions(image, Anatomy(grid=image, masks={"bone": np.zeros(shape, bool)}),
                              tracer_family="psma_f18_renal")
        assert not seg.lesions, seed
        assert [c.reason for c in seg.candidates if c.suv_max > 10.0] == [LONE_VOXEL], seed


def test_a_small_ureter_bolus_is_no_node_but_a_small_node_is():
    # a bolus of urine 9 mm wide and 22 mm tall (2.4:1) in a ureter, SUV 30 on 0.5 with noise: its half-maximum
    # region holds only ~14 voxels of 4 mm, too few for the resolved-shape bound, but no node blurred by 6 mm
    # is that long; a 10 mm node beside it is one
    image = _tube_beside_node((4.5, 4.5, 11.0), 30.0, (5.0, 5.0, 5.0), 16.0)
    seg = segment_lesions(image, Anatomy(grid=image, masks={"bone": _ellipsoid(*TRUNK_BONE)}),
                          tracer_family="psma_f18_renal")
    assert [np.linalg.norm(np.subtract(les.target_lps_mm, NODE_AT)) < 4.0 for les in seg.lesions] == [True]
    tubes = [c for c in seg.candidates if c.reason == "not focal (a tube or sheet)"]
    assert len(tubes) == 1 and np.linalg.norm(np.subtract(tubes[0].peak_lps_mm, TUBE_AT)) < 12.0


@pytest.mark.parametrize("with_ct", [True, False])
def test_a_resolved_hot_sausage_of_bowel_is_no_node_but_an_oval_node_as_hot_is(with_ct):
    # a straight stretch of collapsed bowel 12 mm wide and 32 mm long (2.7:1; its half-maximum region holds ~40
    # voxels of 4 mm) and an oval node 14 x 14 x 10 mm (1.4:1), both at SUV 12 on 0.5 with noise, no mask for
    # either, in a trunk on CT: a node is no longer than twice its width, the sausage is
    image = _tube_beside_node((6.0, 6.0, 16.0), 12.0, (7.0, 7.0, 5.0), 12.0)
    sausage, node = TUBE_AT, NODE_AT
    masks = {"bone": _ellipsoid(*TRUNK_BONE)} if with_ct else {}
    seg = segment_lesions(image, Anatomy(grid=image, masks=masks), tracer_family="psma_f18_renal")
    near = [[np.linalg.norm(np.subtract(les.target_lps_mm, point)) < 4.0 for point in (node, sausage)]
            for les in seg.lesions]
    if with_ct:
        assert near == [[True, False]], [(les.target_lps_mm, les.suv_max) for les in seg.lesions]
        tubes = [c for c in seg.candidates if c.reason == "not focal (a tube or sheet)"]
        assert tubes and np.linalg.norm(np.subtract(tubes[0].peak_lps_mm, sausage)) < 12.0
    else:  # without a CT nothing tells the trunk from a limb, where a lesion need not be a node
        assert sorted(near) == [[False, True], [True, False]], [les.target_lps_mm for les in seg.lesions]
