"""Each built-in structure checks itself; a failing one is dropped with a warning (synthetic masks, 4 mm grid)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.grid import box as _box
from helpers.grid import coords as _coords
from helpers.grid import grid as _grid
from helpers.grid import lesion as _lesion

from localize.anatomy.checks import check_anatomy, lung_problem
from localize.anatomy.model import Anatomy
from localize.classify import classify_lesions, infer_status, stage

X, Y, Z = _coords()
Z_MM, X_MM = Z[:, 0, 0], X[0, 0, :]


def _ct_anatomy(**masks) -> Anatomy:
    anatomy = Anatomy(grid=_grid(), midline_x_mm=0.0)
    anatomy.masks.update(masks)
    anatomy.sources.update({name: "ct" for name in masks})
    return anatomy


def _lungs(gap_mm: float = 40.0, top: float = 300.0):
    """Two 80 x 120 x 140 mm lungs either side of a mediastinum ``2 * gap_mm`` wide, their top at ``top``."""
    left = _box((gap_mm, -60, top - 140), (gap_mm + 80, 60, top))
    right = _box((-gap_mm - 80, -60, top - 140), (-gap_mm, 60, top))
    return left, right


def test_lungs_are_a_lateral_pair_at_the_top_of_the_trunk():
    left, right = _lungs()
    chest = _box((-150, -100, -120), (150, 100, 300))
    neck = _box((-50, -50, 300), (50, 50, 396))
    assert lung_problem(left, right, chest | neck, Z_MM, X_MM, 0.0) is None
    # the field ends at the apices: nothing above them to judge by, so nothing against them either
    assert lung_problem(left, right, chest & (Z <= 320), Z_MM, X_MM, 0.0) is None
    # gas pockets with the whole trunk above them are not lungs
    why = lung_problem(left, right, _box((-150, -100, -120), (150, 100, 396)), Z_MM, X_MM, 0.0)
    assert why is not None and "top of the trunk" in why
    # one gas pocket across the midline, split in two halves, is no pair of lungs
    pocket = _box((-30, -60, 100), (30, 60, 240))
    why = lung_problem(pocket & (X > 0), pocket & (X < 0), chest | neck, Z_MM, X_MM, 0.0)
    assert why is not None and "midline" in why
    why = lung_problem(left, right & (Z > 280), chest | neck, Z_MM, X_MM, 0.0)
    assert why is not None and "pair" in why
    # a field whose lowest slice cuts the bases may hold one side only
    base = _box((40, -60, -120), (120, 60, 300))
    assert lung_problem(base, np.zeros_like(base), chest | neck, Z_MM, X_MM, 0.0) is None
    why = lung_problem(base & (Z > -100), np.zeros_like(base), chest | neck, Z_MM, X_MM, 0.0)
    assert why is not None and "pair" in why


def test_a_vertebra_of_two_bodies_is_dropped_with_every_name_counted_past_it():
    # L5 and L4 30 mm apart; the next segment is 64 mm tall (a missed disc): it and the names above it go
    spans = {"L5": (140, 164), "L4": (172, 196), "L3": (204, 268), "L2": (276, 300)}
    anatomy = _ct_anatomy(**{f"vertebrae_{n}": _box((-20, 20, z0), (20, 50, z1)) for n, (z0, z1) in spans.items()})
    anatomy.levels_z_mm.update({n: (z0 + z1) / 2 for n, (z0, z1) in spans.items()}, aortic_bifurcation=178.0,
                               common_iliac_bifurcation=132.0)
    check_anatomy(anatomy)
    assert {"vertebrae_L5", "vertebrae_L4"} <= set(anatomy.masks)
    assert not {"vertebrae_L3", "vertebrae_L2"} & set(anatomy.masks)
    assert set(anatomy.levels_z_mm) == {"L5", "L4", "aortic_bifurcation", "common_iliac_bifurcation"}
    assert "tall" in anatomy.dropped["vertebrae_L3"] and "L3" in anatomy.dropped["vertebrae_L2"]
    assert any(w.startswith("vertebrae_L3 dropped:") for w in anatomy.warnings)


@pytest.mark.parametrize("l3, l2, reason", [
    ((204, 216), (220, 232), "tall where the vertebra below it is"),  # one body split in two by a false gap
    ((236, 260), (268, 292), "above the vertebra below it"),  # a body missed: twice the step
])
def test_unevenly_built_vertebrae_are_dropped(l3, l2, reason):
    spans = {"L5": (140, 164), "L4": (172, 196), "L3": l3, "L2": l2}
    anatomy = _ct_anatomy(**{f"vertebrae_{n}": _box((-20, 20, z0), (20, 50, z1)) for n, (z0, z1) in spans.items()})
    check_anatomy(anatomy)
    assert "vertebrae_L4" in anatomy.masks and "vertebrae_L3" not in anatomy.masks
    assert reason in anatomy.dropped["vertebrae_L3"]


def test_the_lowest_vertebra_goes_with_the_second_when_only_it_vouches_for_either():
    # L4 15 mm tall on a 27 mm L5 (an oblique lumbosacral disc blurs both): which one is wrong cannot be told
    spans = {"L5": (247, 274), "L4": (280, 295), "L3": (305, 330)}
    anatomy = _ct_anatomy(**{f"vertebrae_{n}": _box((-20, 20, z0), (20, 50, z1)) for n, (z0, z1) in spans.items()})
    check_anatomy(anatomy)
    assert not {"vertebrae_L5", "vertebrae_L4", "vertebrae_L3"} & set(anatomy.masks)
    assert "L4" in anatomy.dropped["vertebrae_L5"]
    # a 48 mm step between two lumbar centres is no vertebral pitch (body <= 30 mm + disc <= 12 mm)
    spans = {"L5": (140, 164), "L4": (188, 212)}
    anatomy = _ct_anatomy(**{f"vertebrae_{n}": _box((-20, 20, z0), (20, 50, z1)) for n, (z0, z1) in spans.items()})
    check_anatomy(anatomy)
    assert not {"vertebrae_L5", "vertebrae_L4"} & set(anatomy.masks)


def test_a_symphysis_above_the_inlet_is_dropped_with_what_was_built_from_it():
    anatomy = _ct_anatomy(pubic_symphysis=_box((-20, -60, 100), (20, -40, 150)),
                          urinary_bladder=_box((-30, -40, 20), (30, 10, 80)))
    anatomy.masks["prostate"] = _box((-15, -35, -30), (15, -5, 0))
    anatomy.sources["prostate"] = "rtstruct"  # imported: trusted, kept
    anatomy.levels_z_mm.update(pelvic_inlet=120.0, symphysis_top=150.0, symphysis_bottom=100.0)
    check_anatomy(anatomy)
    assert "pubic_symphysis" not in anatomy.masks and "urinary_bladder" not in anatomy.masks
    assert "prostate" in anatomy.masks
    assert "pelvic_inlet" in anatomy.levels_z_mm and "symphysis_top" not in anatomy.levels_z_mm
    assert "pelvic inlet" in anatomy.dropped["pubic_symphysis"]
    assert anatomy.dropped["urinary_bladder"] == "built from the dropped pubic_symphysis"


@pytest.mark.parametrize("name, mask, reason", [
    ("urinary_bladder", _box((40, -40, 20), (100, 10, 80)), "off the midline"),
    ("urinary_bladder", _box((-30, -40, 140), (30, 10, 200)), "above the pelvic inlet"),
    ("liver", _box((20, -80, 250), (140, 80, 350)), "wrong side"),
    ("hip_left", _box((40, -40, -60), (120, 40, 120)), "one side"),
])
def test_misplaced_structures_are_dropped_and_imported_ones_kept(name, mask, reason):
    anatomy = _ct_anatomy(**{name: mask})
    anatomy.levels_z_mm["pelvic_inlet"] = 120.0
    check_anatomy(anatomy)
    assert name not in anatomy.masks and reason in anatomy.dropped[name], anatomy.dropped
    assert any(w.startswith(f"{name} dropped:") and reason in w for w in anatomy.warnings)
    imported = _ct_anatomy(**{name: mask})
    imported.sources[name] = "label_map"
    imported.levels_z_mm["pelvic_inlet"] = 120.0
    check_anatomy(imported)
    assert name in imported.masks and not imported.dropped


def test_kidneys_at_different_heights_are_no_pair_and_lungs_below_the_liver_no_lungs():
    left, right = _lungs(top=250.0)
    anatomy = _ct_anatomy(kidney_left=_box((40, 20, 150), (90, 60, 250)),
                          kidney_right=_box((-90, 20, 20), (-40, 60, 110)),
                          lung_left=left, lung_right=right, heart=_box((-40, -60, 200), (40, 0, 260)))
    anatomy.masks["liver"] = _box((-140, -80, 240), (-20, 80, 390))
    anatomy.sources["liver"] = "label_map"
    anatomy.levels_z_mm.update(diaphragm=110.0, diaphragm_right=110.0)
    check_anatomy(anatomy)
    assert "kidney_left" not in anatomy.masks and "kidney_right" not in anatomy.masks
    assert "not a pair" in anatomy.dropped["kidney_left"]
    assert "lung_left" not in anatomy.masks and "liver" in anatomy.dropped["lung_left"]
    assert "diaphragm" not in anatomy.levels_z_mm and "heart" not in anatomy.masks  # built above that diaphragm


def test_a_kidney_lying_in_bone_is_uptake_of_the_bone():
    # the top of a pelvis field: a hot focus of the right iliac wing taken for a kidney's lower pole; the left
    # kidney touches its hip bone's crest with a sixth of its volume
    ilium_right, ilium_left = _box((-120, 40, 100), (-40, 80, 200)), _box((40, 56, 100), (120, 90, 200))
    anatomy = _ct_anatomy(kidney_right=_box((-90, 48, 150), (-60, 72, 200)),
                          kidney_left=_box((60, 20, 150), (90, 60, 200)))
    anatomy.masks.update(hip_right=ilium_right, hip_left=ilium_left)
    check_anatomy(anatomy)
    assert "kidney_right" not in anatomy.masks and "bones of the skeleton" in anatomy.dropped["kidney_right"]
    assert "kidney_left" in anatomy.masks


def test_a_kidney_in_the_raw_bone_mask_of_a_contrast_ct_stays():
    # nephrographic phase: the cortex enhances to 150-250 HU, so HU > 150 ("bone") covers the kidney itself
    kidney = _box((60, 20, 150), (90, 60, 200))
    anatomy = _ct_anatomy(kidney_left=kidney, kidney_right=_box((-90, 20, 150), (-60, 60, 200)))
    anatomy.masks["bone"] = kidney | _box((-20, 40, 100), (20, 80, 300))
    anatomy.masks["hip_left"] = _box((40, 56, 100), (120, 90, 140))
    check_anatomy(anatomy)
    assert "kidney_left" in anatomy.masks and "kidney_right" in anatomy.masks, anatomy.dropped


def test_plausible_structures_stay():
    left, right = _lungs(top=340.0)
    spans = {"L5": (140, 164), "L4": (172, 196), "L3": (204, 230), "L2": (238, 264)}
    anatomy = _ct_anatomy(lung_left=left, lung_right=right, kidney_left=_box((40, 20, 150), (90, 60, 250)),
                          kidney_right=_box((-90, 20, 140), (-40, 60, 230)),
                          liver=_box((-140, -80, 150), (-10, 80, 160)),
                          hip_left=_box((40, -40, -60), (120, 40, 120)),
                          hip_right=_box((-120, -40, -60), (-40, 40, 120)),
                          pubic_symphysis=_box((-20, -60, -45), (20, -40, 0)),
                          sacrum=_box((-40, 40, 20), (40, 70, 120)),
                          urinary_bladder=_box((-30, -40, 10), (30, 10, 60)),
                          **{f"vertebrae_{n}": _box((-20, 20, z0), (20, 50, z1)) for n, (z0, z1) in spans.items()})
    anatomy.levels_z_mm.update(pelvic_inlet=120.0, symphysis_top=0.0, symphysis_bottom=-45.0)
    kept = set(anatomy.masks)
    check_anatomy(anatomy)
    assert set(anatomy.masks) == kept and not anatomy.dropped and not anatomy.warnings


def _pelvis_without_diaphragm() -> Anatomy:
    anatomy = _ct_anatomy(pubic_symphysis=_box((-20, -62, -45), (20, -42, 0)),
                          sacrum=_box((-40, 40, 20), (40, 70, 120)))
    anatomy.levels_z_mm.update(common_iliac_bifurcation=130.0, aortic_bifurcation=185.0, pelvic_inlet=120.0,
                               symphysis_top=0.0, symphysis_bottom=-45.0, L4=190.0, L3=220.0)
    return anatomy


def test_no_diaphragm_places_only_what_lies_below_a_known_abdominal_level():
    anatomy = _pelvis_without_diaphragm()
    below, above = _lesion(30, 20, 210), _lesion(30, 20, 330)
    warnings = classify_lesions([below, above], anatomy, status="post_prostatectomy").warnings
    assert (below.region, below.site) == ("distant", "retroperitoneal")
    assert (above.region, above.site, above.mitnm) == ("unclassified", "unknown", "")
    assert any("(30.0, 20.0, 330.0)" in w and "diaphragm" in w for w in warnings)
    # a CT field up to z 350 that shows no lung: everything in it lies below the lung bases
    anatomy.levels_z_mm["no_lung_below"] = 350.0
    classify_lesions([above], anatomy, status="post_prostatectomy")
    assert (above.region, above.site) == ("distant", "retroperitoneal")


def test_an_undecided_status_labels_the_bed_local_with_the_gland_as_other_candidate():
    anatomy = _pelvis_without_diaphragm()
    anatomy.masks["urinary_bladder"] = _box((-30, -40, 10), (30, 10, 60))
    anatomy.sources["urinary_bladder"] = "ct"
    assert infer_status(anatomy)[0] == "post_prostatectomy"  # the pelvis seen, no gland-sized tissue
    anatomy.dropped["prostate"] = "the soft-tissue component behind the symphysis is not a gland: flat or long"
    status, evidence = infer_status(anatomy)
    assert status == "unknown" and "flat or long" in evidence
    bed = _lesion(0, -30, -20)
    classify_lesions([bed], anatomy, status=None)
    assert (bed.region, bed.site, bed.mitnm) == ("local", "prostate_bed", "miTr")
    assert bed.region_uncertain and bed.region_candidates[:2] == ["local:prostate_bed", "local:prostate"]
    assert stage([bed], status=status)["mit"] == "miTr"
    del anatomy.masks["urinary_bladder"], anatomy.dropped["prostate"]
    assert infer_status(anatomy)[0] == "unknown"  # no bladder: the pelvis not seen well enough


def test_a_node_low_in_the_thigh_is_neither_pelvic_nor_inguinal():
    anatomy = _pelvis_without_diaphragm()
    medial, lateral, groin = _lesion(10, 0, -200), _lesion(90, -40, -250), _lesion(80, -70, -60)
    classify_lesions([medial, lateral, groin], anatomy, status="post_prostatectomy")
    assert {(les.region, les.site) for les in (medial, lateral)} == {("distant", "other_extrapelvic_node")}
    assert (groin.region, groin.site) == ("distant", "inguinal")


def test_a_gland_is_gland_sized_round_behind_the_pubis_and_at_the_bladder_base():
    from localize.anatomy.checks import gland_problem

    spacing, voxel_ml = np.array([4.0, 4.0, 4.0]), 0.064
    bladder = _box((-30, -40, 10), (30, 10, 60))
    ball = (X**2 + (Y + 25) ** 2 + (Z + 15) ** 2) <= 20**2  # ~34 ml, top at z 5
    assert gland_problem(ball, spacing, voxel_ml, Z_MM, bladder, 27.0) is None
    assert "behind the pubis" in gland_problem(ball, spacing, voxel_ml, Z_MM, bladder, 60.0)
    assert "below the bladder" in gland_problem(ball & (Z < -10), spacing, voxel_ml, Z_MM, bladder, 27.0)
    sheet = _box((-60, -30, -40), (60, -22, 0))  # levator-like: wide and thin
    assert "flat or long" in gland_problem(sheet, spacing, voxel_ml, Z_MM, bladder, 27.0)
    assert "outside 8-120 ml" in gland_problem(ball & (Z > 0), spacing, voxel_ml, Z_MM, bladder, 27.0)
    atrophic = (X**2 + (Y + 25) ** 2 + (Z + 12) ** 2) <= 13.5**2  # ~10 ml: a small gland after radiotherapy
    assert 8.0 < atrophic.sum() * voxel_ml < 12.0
    assert gland_problem(atrophic, spacing, voxel_ml, Z_MM, bladder, 27.0) is None


@pytest.mark.slow
def test_gas_filled_colon_at_the_top_of_a_pelvis_field_is_not_lung(phantom):
    # ascending and descending colon distended with gas (-850 HU, 2 x 200 ml) reaching the field's top: a
    # lateral pair of aerated-looking volumes with nothing above them to judge by, but just above the hips
    import SimpleITK as sitk

    from localize.anatomy import build_anatomy
    from localize.load.pet import load_pet
    from localize.load.volume import load_series

    root, truth = phantom(tracer="dcfpyl")
    pet = load_pet(sorted((root / truth.series_dirs["PT"]).iterdir())).image
    ct = load_series(sorted((root / truth.series_dirs["CT"]).iterdir())).image
    hu = sitk.GetArrayFromImage(ct).astype(np.float32)
    z = np.array([ct.TransformIndexToPhysicalPoint((0, 0, k))[2] for k in range(hu.shape[0])])
    y = np.array([ct.TransformIndexToPhysicalPoint((0, j, 0))[1] for j in range(hu.shape[1])])
    x = np.array([ct.TransformIndexToPhysicalPoint((i, 0, 0))[0] for i in range(hu.shape[2])])
    top, inlet = z.max(), truth.levels_z_mm["pelvic_inlet"]
    for side in (1, -1):
        tube = ((x[None, None, :] - side * 95.0) ** 2 + (y[None, :, None] + 10.0) ** 2 <= 30.0**2) \
            & (z[:, None, None] >= top - 75.0)
        hu[np.broadcast_to(tube, hu.shape)] = -850.0
    assert top - 75.0 > inlet  # above the pelvic inlet, beside the iliac wings
    gassy = sitk.GetImageFromArray(hu)
    gassy.CopyInformation(ct)
    anatomy = build_anatomy(gassy, pet)
    assert "lung_left" not in anatomy.masks and "diaphragm" not in anatomy.levels_z_mm
    assert "iliac crests" in anatomy.dropped["lung_left"], anatomy.dropped
    assert "no_lung_below" not in anatomy.levels_z_mm  # a dropped lung candidate: the field is not shown lung-free
    assert anatomy.levels_z_mm["pelvic_inlet"] == pytest.approx(inlet, abs=10)  # the pelvis is still found
