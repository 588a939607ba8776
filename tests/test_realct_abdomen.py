"""The built-in anatomy on a real abdomen-pelvis CT: tests/data/totalsegmentator-abdomen.

One real patient from the ischia to T11: lung bases at the top, osteoporotic vertebrae (cancellous
cores of about 100 HU, the sacrum's about 20 HU), a metal hip implant, 3 mm voxels, in a NIfTI whose
axes run right-to-left and anterior-to-posterior (placed by its RAS affine). TotalSegmentator's labels
(a model's output) are the reference; a PSMA-like PET is simulated on it by those labels.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from helpers.data import REPO
from scipy import ndimage

from benchmarks.bench_realct import find_and_label
from localize.anatomy import build_anatomy, read_label_map
from localize.anatomy.ct_heuristics import axis_mm
from localize.classify import infer_status
from localize.classify.landmarks import Landmarks
from localize.sample_data.real_ct import (
    PSMA_SUV,
    dice,
    label_names,
    pet_grid,
    recurrence_sites,
    simulated_pet,
    tracer_uptake,
    vertebral_body_centre,
)
from localize.sample_data.spec import TRACER_FAMILY

DATA = REPO / "tests" / "data" / "totalsegmentator-abdomen"
PET_SPACING_MM = (4.0, 4.0, 3.0)
HALF_VERTEBRA_MM = 12.0  # a lumbar body is 25-30 mm tall [R: Gray's Anatomy]
LUMBAR = ("L5", "L4", "L3", "L2", "L1")


@pytest.fixture(scope="module")
def abdomen():
    ct = sitk.ReadImage(str(DATA / "ct.nii.gz"), sitk.sitkFloat32)  # LPS, from the NIfTI's RAS affine
    labels = sitk.ReadImage(str(DATA / "labels.nii.gz"))
    names = label_names(DATA / "labels.json")
    grid = pet_grid(ct, PET_SPACING_MM)
    reference = sitk.GetArrayFromImage(sitk.Resample(labels, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
    pet = simulated_pet(ct, reference, names, grid)
    return build_anatomy(ct, pet), reference, names, grid


def test_the_nifti_is_placed_by_its_affine(abdomen):
    # the array runs right-to-left and anterior-to-posterior; read by its affine, the liver lies on the
    # patient's right (LPS -x) and the vertebrae behind the aorta (LPS +y)
    _, reference, names, grid = abdomen
    z_mm, y_mm, x_mm = axis_mm(grid)
    def centre(name: str) -> np.ndarray:
        points = np.argwhere(reference == names[name])
        return np.array([x_mm[points[:, 2]].mean(), y_mm[points[:, 1]].mean(), z_mm[points[:, 0]].mean()])
    assert centre("liver")[0] < centre("spleen")[0] - 100
    assert centre("vertebrae_L1")[1] > centre("aorta")[1] + 10
    assert centre("urinary_bladder")[2] < centre("kidney_left")[2] - 100


def test_liver_spleen_and_kidneys_on_a_pet_simulated_on_the_real_ct(abdomen):
    anatomy, reference, names, _ = abdomen
    for organ in ("liver", "spleen", "kidney_left", "kidney_right"):
        assert organ in anatomy.masks, (organ, anatomy.warnings)
        assert dice(anatomy.masks[organ], reference == names[organ]) >= 0.8, organ


def test_the_aorta_is_tracked_left_of_the_midline_not_in_the_vena_cava(abdomen):
    # on this non-contrast CT the inferior vena cava (right of the midline) is as round, wide and dense as the
    # aorta (left of it) in front of L3, where the track starts: the aorta was tracked up the vena cava
    anatomy, reference, names, _ = abdomen
    aorta = anatomy.masks["aorta"]
    assert (aorta & ndimage.binary_dilation(reference == names["aorta"])).sum() >= 0.6 * aorta.sum()
    assert (aorta & (reference == names["inferior_vena_cava"])).sum() <= 0.05 * aorta.sum()


def test_the_lung_bases_and_no_air_around_the_patient(abdomen):
    anatomy, reference, names, grid = abdomen
    z_mm, _, _ = axis_mm(grid)
    lungs = np.isin(reference, [v for n, v in names.items() if n.startswith("lung_")])
    found = anatomy.masks["lung_left"] | anatomy.masks["lung_right"]
    assert (found & lungs).sum() >= 0.8 * found.sum()  # the lung bases, not the air around the patient
    lowest = float(z_mm[np.flatnonzero(lungs.any((1, 2)))].min())
    assert abs(anatomy.levels_z_mm["diaphragm"] - lowest) <= HALF_VERTEBRA_MM  # the recess's tip is partial volume


def test_the_lumbar_vertebrae_are_named_right_between_the_discs(abdomen):
    # osteoporotic bodies: cores as dark as the discs, so the bone-area profile's segments are endplates; the
    # discs read as dark bands between them name L4 to L1. A wrong level moves every landmark hung from it.
    anatomy, reference, names, grid = abdomen
    z_mm, _, _ = axis_mm(grid)
    named = [name for name in anatomy.masks if name.startswith("vertebrae_")]
    assert {f"vertebrae_{n}" for n in LUMBAR[1:]} <= set(named), anatomy.warnings
    for name in named:
        ours = float(z_mm[np.flatnonzero(anatomy.masks[name].any((1, 2)))].mean())
        assert abs(ours - vertebral_body_centre(reference, names[name], grid)[2]) <= HALF_VERTEBRA_MM, name
    if "vertebrae_L5" not in named:  # its lumbosacral disc, tilted ~35 degrees, not seen at 3 mm: said
        assert any(w.startswith("vertebrae_L5 not named") for w in anatomy.warnings)
    # the level hung from L4: the aorta's lowest slice is where it divides
    aorta_bottom = float(z_mm[np.flatnonzero((reference == names["aorta"]).any((1, 2)))].min())
    assert abs(anatomy.levels_z_mm["aortic_bifurcation"] - aorta_bottom) <= HALF_VERTEBRA_MM


def test_the_pelvis_and_the_bladder(abdomen):
    anatomy, reference, names, grid = abdomen
    z_mm, _, _ = axis_mm(grid)
    s1_top = float(z_mm[np.flatnonzero((reference == names["vertebrae_S1"]).any((1, 2)))].max())
    assert abs(anatomy.levels_z_mm["pelvic_inlet"] - s1_top) <= HALF_VERTEBRA_MM  # the sacral promontory
    # on this non-contrast CT the 15 ml prostate reads as water (median 10 HU) under the bladder and joined to it;
    # the PET's urine tells them apart: the bladder takes in 2 % of the gland (it took 74 %, Dice 0.83)
    bladder, gland = anatomy.masks["urinary_bladder"], reference == names["prostate"]
    assert dice(bladder, reference == names["urinary_bladder"]) >= 0.9
    assert (bladder & gland).sum() <= 0.1 * gland.sum()
    for side in ("left", "right"):  # the hip bones, each on its own side (LPS +x is the patient's left)
        hip = anatomy.masks[f"hip_{side}"]
        assert (hip & (reference == names[f"hip_{side}"])).sum() >= 0.5 * hip.sum(), side


@pytest.mark.parametrize("tracer", ["dcfpyl", "psma11"])
def test_the_intact_gland_is_parted_from_the_pelvic_floor_by_its_uptake(abdomen, tracer):
    # the CT joins the gland to the pelvic floor's muscles (a 21 ml component, 6.6 : 1, of muscle at SUV 0.6 and the
    # gland at 2.5): too long for a gland, so the status was unknown. The gland's PSMA uptake parts them
    _, reference, names, grid = abdomen
    ct = sitk.ReadImage(str(DATA / "ct.nii.gz"), sitk.sitkFloat32)
    uptake, rest = tracer_uptake(names, tracer)
    pet = simulated_pet(ct, reference, names, grid, uptake, rest=rest)
    anatomy = build_anatomy(ct, pet)
    assert dice(anatomy.masks["prostate"], reference == names["prostate"]) >= 0.6
    assert infer_status(anatomy, sitk.GetArrayViewFromImage(pet))[0] == "post_radiotherapy"  # the gland is in place


def test_a_small_faint_lesion_in_the_gland_is_found_as_local(abdomen):
    # 10 mm, SUV + 5 over a gland of 2.5 under PSMA-11: without the gland's mask its delineation (41 % of its
    # SUVmax) flooded the gland and it was set aside as a noise peak of a plateau no mask knows
    _, reference, names, grid = abdomen
    ct = sitk.ReadImage(str(DATA / "ct.nii.gz"), sitk.sitkFloat32)
    truth = recurrence_sites(reference, names, grid)
    uptake, rest = tracer_uptake(names, "psma11")
    pet = simulated_pet(ct, reference, names, grid, uptake, seed=0, rest=rest,
                        lesions=tuple((c, 10.0, 5.0) for c in truth.values()))
    distance, lesion = _nearest(find_and_label(ct, pet, TRACER_FAMILY["psma11"]), truth["prostate"])
    assert distance <= 4.0 and (lesion.region, lesion.site) == ("local", "prostate")  # within a 4 mm voxel


@pytest.mark.parametrize("draw", [1, 2])
def test_a_lesion_in_the_osteoporotic_l3_core_is_measured_against_the_marrow_under_fluciclovine(abdomen, draw):
    # this CT's L3 body reads 60-140 HU, so its core is no bone on the CT; a 10 mm lesion of SUV + 5 there (0.52 ml),
    # grown at 41 % of its SUVmax, took 700-790 voxels of the marrow round it and was set aside as flooding it in
    # these two noise draws. Grown against the marrow (MARROW_CORE), it is an L3 lesion of its own size. (Draw 3
    # still misses it: it stands under 4 robust SD over the marrow; docs/limits.md#anatomy-on-real-ct)
    _, reference, names, grid = abdomen
    ct = sitk.ReadImage(str(DATA / "ct.nii.gz"), sitk.sitkFloat32)
    truth = recurrence_sites(reference, names, grid)
    uptake, rest = tracer_uptake(names, "fluciclovine")
    pet = simulated_pet(ct, reference, names, grid, uptake, seed=draw, rest=rest,
                        lesions=tuple((c, 10.0, 5.0) for c in truth.values()))
    distance, lesion = _nearest(find_and_label(ct, pet, TRACER_FAMILY["fluciclovine"]), truth["bone"])
    assert distance <= 4.0 and (lesion.site, lesion.bone) == ("bone", "vertebrae_L3")  # target within a voxel, mm
    assert 0.3 <= lesion.volume_ml <= 1.5  # not the marrow round it


@pytest.mark.parametrize("tracer", ["psma1007", "fluciclovine"])
def test_a_gland_the_ct_reads_as_water_is_no_urine_whatever_the_urine_s_activity(abdomen, tracer):
    # the gland (SUV 2.5 under PSMA-1007, 2 under fluciclovine) is neither the urine's activity (5 and 1) nor cooler
    # than its blurred edge: the bladder took in 73 % and 89 % of it, and under fluciclovine the anatomy then said
    # the gland was removed. The urine's activity is even; a body that departs from it is other tissue
    _, reference, names, grid = abdomen
    ct = sitk.ReadImage(str(DATA / "ct.nii.gz"), sitk.sitkFloat32)
    uptake, rest = tracer_uptake(names, tracer)
    anatomy = build_anatomy(ct, simulated_pet(ct, reference, names, grid, uptake, rest=rest))
    bladder, gland = anatomy.masks["urinary_bladder"], reference == names["prostate"]
    assert (bladder & gland).sum() <= 0.25 * gland.sum()
    assert dice(bladder, reference == names["urinary_bladder"]) >= 0.8
    assert infer_status(anatomy)[0] != "post_prostatectomy"


def test_the_anatomy_holds_under_low_dose_noise(abdomen):
    # the real CT with the noise of a low-dose attenuation CT added (30 HU, correlated over about two voxels as
    # filtered back-projection leaves it: the muscles' SD goes from 33 to 42 HU). On this osteoporotic pelvis the
    # sacrum found is the S1 body at the promontory, 50-54 mm behind the symphysis: the symphysis, and the bladder
    # found from it, were dropped as "not 50 mm in front of the sacrum"
    _, reference, names, grid = abdomen
    ct = sitk.ReadImage(str(DATA / "ct.nii.gz"), sitk.sitkFloat32)
    hu = sitk.GetArrayFromImage(ct)
    noise = ndimage.gaussian_filter(np.random.default_rng(0).standard_normal(hu.shape), 0.7)
    noisy = sitk.GetImageFromArray((hu + 30.0 * noise / noise.std() * (hu > -500)).astype(np.float32))
    noisy.CopyInformation(ct)
    anatomy = build_anatomy(noisy, simulated_pet(ct, reference, names, grid))
    assert "pubic_symphysis" not in anatomy.dropped, anatomy.dropped
    for organ in ("liver", "spleen", "kidney_left", "kidney_right", "urinary_bladder"):
        assert dice(anatomy.masks[organ], reference == names[organ]) >= 0.8, organ
    z_mm, _, _ = axis_mm(grid)
    for name in LUMBAR[1:]:
        ours = float(z_mm[np.flatnonzero(anatomy.masks[f"vertebrae_{name}"].any((1, 2)))].mean())
        assert abs(ours - vertebral_body_centre(reference, names[f"vertebrae_{name}"], grid)[2]) <= HALF_VERTEBRA_MM


def _lesions_on_simulated_pet(ct: sitk.Image, reference: np.ndarray, names: dict[str, int], grid: sitk.Image,
                              truth: dict[str, np.ndarray], noise_seed: int, tracer: str | None = None) -> list:
    """The lesions the built-in anatomy and a tracer's preset find and label on a PET simulated on the real CT's
    labels with ``truth``'s lesions (12 mm, SUV + 12) and noise draw ``noise_seed``: ``tracer``'s biodistribution
    (the phantom's) and preset, or by default PSMA-like uptake and the DCFPyL preset."""
    uptake, rest = tracer_uptake(names, tracer) if tracer else (PSMA_SUV, None)
    pet = simulated_pet(ct, reference, names, grid, uptake, seed=noise_seed, rest=rest,
                        lesions=tuple((c, 12.0, 12.0) for c in truth.values()))
    return find_and_label(ct, pet, TRACER_FAMILY[tracer] if tracer else "psma_f18_renal")


def _nearest(lesions: list, centre: np.ndarray) -> tuple[float, object]:
    return min(((float(np.linalg.norm(np.subtract(les.target_lps_mm, centre))), les) for les in lesions),
               key=lambda pair: pair[0])


def test_lesions_in_real_anatomy_are_found_and_placed(abdomen):
    # PSMA-like physiology on the real CT's labels plus 12 mm lesions (SUV + 12) where recurrences are looked for
    _, reference, names, grid = abdomen
    ct = sitk.ReadImage(str(DATA / "ct.nii.gz"), sitk.sitkFloat32)
    truth = recurrence_sites(reference, names, grid)
    lesions = _lesions_on_simulated_pet(ct, reference, names, grid, truth, noise_seed=0)
    nearest = {}
    for name, centre in truth.items():
        distance, nearest[name] = _nearest(lesions, centre)
        assert distance <= 2.0, (name, distance)  # each found, its target within 2 mm
    assert (nearest["external_iliac"].region, nearest["external_iliac"].site) == ("nodal", "external_iliac")
    assert (nearest["retroperitoneal"].region, nearest["retroperitoneal"].site) == ("distant", "retroperitoneal")
    assert nearest["prostate"].region == "local"
    # the L3 body's osteoporotic core (about 100 HU) lies outside the CT bone mask on this 3 mm CT; its cortex rings
    # the lesion on the CT's own voxels, so it is a bone lesion of L3 (a retroperitoneal node before)
    assert (nearest["bone"].region, nearest["bone"].site, nearest["bone"].bone) == ("distant", "bone", "vertebrae_L3")
    assert len(lesions) <= len(truth) + 1  # at most a small-bowel focus is a false lesion besides


@pytest.mark.parametrize("noise_seed", [2, 5])
def test_the_urine_s_slope_over_the_hip_bone_is_no_lesion(abdomen, noise_seed):
    # the PET's blur lays the edge of the urine (SUV 40) over the right hip bone beside the bladder, beyond the
    # built-in bladder mask: at 0.41-0.42 x the urine, on CT bone, it came out as a bone lesion in these noise
    # draws. It is no maximum of the PET (the urine next to it is hotter); the lesions are all still found
    _, reference, names, grid = abdomen
    ct = sitk.ReadImage(str(DATA / "ct.nii.gz"), sitk.sitkFloat32)
    truth = recurrence_sites(reference, names, grid)
    lesions = _lesions_on_simulated_pet(ct, reference, names, grid, truth, noise_seed)
    assert all(_nearest(lesions, centre)[0] <= 2.0 for centre in truth.values())
    near_bladder = ndimage.binary_dilation(reference == names["urinary_bladder"], iterations=3)  # 9-12 mm
    hips = np.isin(reference, [names["hip_left"], names["hip_right"]])
    for lesion in lesions:
        at = tuple(np.rint(grid.TransformPhysicalPointToContinuousIndex(lesion.peak_lps_mm)[::-1]).astype(int))
        assert not (near_bladder[at] and hips[at]), lesion


def test_a_prostate_lesion_under_fluciclovine_s_faint_urine_is_found(abdomen):
    # fluciclovine's early urine (SUV 1) is no hotter than the tissue round it, so the built-in bladder, which
    # takes part of the prostate in on this CT, is the organ; its lesion was wiped out with the urine's spill-over
    _, reference, names, grid = abdomen
    ct = sitk.ReadImage(str(DATA / "ct.nii.gz"), sitk.sitkFloat32)
    truth = recurrence_sites(reference, names, grid)
    lesions = _lesions_on_simulated_pet(ct, reference, names, grid, truth, 0, tracer="fluciclovine")
    distance, lesion = _nearest(lesions, truth["prostate"])
    assert distance <= 2.0 and lesion.region == "local"


@pytest.mark.parametrize(("tracer", "noise_seed"), [("psma11", 3), ("psma1007", 5)])
def test_a_para_aortic_node_among_hot_loops_is_no_bowel_wall(abdomen, tracer, noise_seed):
    # the retroperitoneal node lies in the fat between the aorta, the duodenum and small-bowel loops (SUV 4-7 with
    # these ligands): the hot loops round the cold fat beside it wall that fat in on just over half of the rays, and
    # the node was taken for the wall of a loop round its lumen in these draws. A lumen holds gas, fluid or stool;
    # fat on the CT is no lumen
    _, reference, names, grid = abdomen
    ct = sitk.ReadImage(str(DATA / "ct.nii.gz"), sitk.sitkFloat32)
    truth = recurrence_sites(reference, names, grid)
    lesions = _lesions_on_simulated_pet(ct, reference, names, grid, truth, noise_seed, tracer=tracer)
    distance, lesion = _nearest(lesions, truth["retroperitoneal"])
    assert distance <= 2.0 and (lesion.region, lesion.site) == ("distant", "retroperitoneal")
    assert len(lesions) <= len(truth) + 1


def test_a_lesion_in_an_osteoporotic_vertebra_is_bone_with_imported_vertebrae(abdomen):
    # the L3 body's cancellous core reads about 100 HU, under the CT bone mask's 150 HU: with TotalSegmentator's
    # vertebrae imported (``--anatomy``) the lesion in it is a bone lesion of L3, not a retroperitoneal node
    _, reference, names, grid = abdomen
    ct = sitk.ReadImage(str(DATA / "ct.nii.gz"), sitk.sitkFloat32)
    truth = recurrence_sites(reference, names, grid)
    pet = simulated_pet(ct, reference, names, grid, lesions=tuple((c, 12.0, 12.0) for c in truth.values()))
    labels = sitk.ReadImage(str(DATA / "labels.nii.gz"))
    lesions = find_and_label(ct, pet, "psma_f18_renal", labels, {v: k for k, v in names.items()})
    distance, lesion = _nearest(lesions, truth["bone"])
    assert distance <= 2.0
    assert (lesion.region, lesion.site, lesion.bone) == ("distant", "bone", "vertebrae_L3")
    assert _nearest(lesions, truth["retroperitoneal"])[1].site == "retroperitoneal"


@pytest.mark.parametrize("spacing_mm", [PET_SPACING_MM, (4.0, 4.0, 4.0), (5.0, 5.0, 5.0)])
def test_totalsegmentator_s_one_lumen_iliac_artery_gives_no_false_bifurcation(spacing_mm):
    # TotalSegmentator's iliac_artery is the common and external iliac, one lumen all the way down; imported onto
    # a PET grid it breaks into two sections for one slice where it narrows. No branch is made of that: the
    # common-iliac bifurcation stays the L5/S1 disc level (midway between L5's bottom and the sacrum's top)
    ct = sitk.ReadImage(str(DATA / "ct.nii.gz"), sitk.sitkFloat32)
    extent_mm = np.array(ct.GetSize()) * np.array(ct.GetSpacing())
    grid = sitk.Image([int(n) for n in np.round(extent_mm / spacing_mm)], sitk.sitkFloat32)  # the CT's box
    grid.SetSpacing(spacing_mm)
    grid.SetOrigin(ct.GetOrigin())
    grid.SetDirection(ct.GetDirection())
    label_map, names = read_label_map(DATA / "labels.nii.gz", DATA / "labels.json")
    marks = Landmarks(build_anatomy(None, grid, label_map=label_map, label_names=names))
    disc = marks.anatomy.levels_z_mm["common_iliac_bifurcation"]
    for side in ("left", "right"):
        assert marks.has(f"iliac_artery_{side}")
        assert marks.iliac_branch_points(side) is None, side
        assert marks.ci_bifurcation_z_mm(side) == disc
