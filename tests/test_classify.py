"""Classification rules on synthetic anatomies (LPS mm, 4 mm PET grid) and the staging string."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from helpers.grid import SIZE
from helpers.grid import box as _box
from helpers.grid import coords as _coords
from helpers.grid import grid as _grid
from helpers.grid import lesion as _lesion
from scipy import ndimage

from localize.anatomy.model import Anatomy
from localize.classify import classify_lesions, expression_scores, stage
from localize.classify.landmarks import Landmarks
from localize.findings import Lesion


def _anatomy(**extra_masks) -> Anatomy:
    """Pelvis landmarks: CI bifurcation 130, aortic bifurcation 185, inlet 120, symphysis 0 / -45, midline x 0."""
    anatomy = Anatomy(grid=_grid())
    anatomy.levels_z_mm.update(common_iliac_bifurcation=130.0, aortic_bifurcation=185.0, pelvic_inlet=120.0,
                               symphysis_top=0.0, symphysis_bottom=-45.0, diaphragm=380.0)
    anatomy.midline_x_mm = 0.0
    pubis = _box((-20, -62, -45), (20, -42, 0))
    sacrum = _box((-40, 40, 20), (40, 70, 120))
    bone = pubis | sacrum
    anatomy.masks.update(pubic_symphysis=pubis, sacrum=sacrum, bone=bone)
    anatomy.sources.update(pubic_symphysis="ct", sacrum="ct", bone="ct")
    for name, mask in extra_masks.items():
        anatomy.masks[name] = mask
        anatomy.sources[name] = "label_map"
        if name.startswith(("vertebrae_", "hip_", "rib_", "sacrum")):
            anatomy.masks["bone"] = anatomy.masks["bone"] | mask
    return anatomy


def _ct(hu_zyx: np.ndarray) -> sitk.Image:
    """A CT in HU on the test grid."""
    image = sitk.GetImageFromArray(hu_zyx)
    image.CopyInformation(_grid())
    return image


def _one(lesion, anatomy=None, status="post_prostatectomy", **kw) -> Lesion:
    return classify_lesions([lesion], anatomy or _anatomy(), status=status, **kw).lesions[0]


def test_just_above_the_common_iliac_bifurcation_is_uncertain_between_nodal_and_distant():
    les = _one(_lesion(-40, 10, 135))  # 5 mm above z 130, patient's right
    assert (les.region, les.site, les.mitnm) == ("distant", "common_iliac", "miM1a")
    assert les.region_uncertain
    assert {c.split(":")[0] for c in les.region_candidates} == {"nodal", "distant"}
    assert les.laterality == "right"


def test_just_below_the_bifurcation_is_nodal_and_uncertain():
    les = _one(_lesion(50, 10, 125))
    assert les.region == "nodal" and les.mitnm == "miN"
    assert les.region_uncertain and "distant:common_iliac" in les.region_candidates
    assert les.laterality == "left"  # LPS +x is the patient's left


def test_common_iliac_is_distant_in_promise_v2_and_regional_in_v1():
    v2 = _one(_lesion(35, 10, 158))
    assert (v2.region, v2.site, v2.mitnm, v2.region_uncertain) == ("distant", "common_iliac", "miM1a", False)
    v1 = _one(_lesion(35, 10, 158), promise_version=1)
    assert (v1.region, v1.site, v1.mitnm) == ("nodal", "common_iliac", "miN")


def test_levels_above_the_aortic_bifurcation_and_the_diaphragm():
    rp = _one(_lesion(25, 10, 250))
    assert (rp.region, rp.site, rp.mitnm, rp.region_uncertain) == ("distant", "retroperitoneal", "miM1a", False)
    near = _one(_lesion(25, 10, 190))  # 5 mm above the aortic bifurcation
    assert near.site == "retroperitoneal" and near.region_uncertain
    assert set(near.region_candidates) == {"distant:retroperitoneal", "distant:common_iliac"}
    sd = _one(_lesion(40, 0, 392))
    assert (sd.region, sd.site) == ("distant", "supradiaphragmatic")


def test_above_the_pelvic_inlet_without_bifurcation_levels_is_no_pelvic_node():
    # vertebrae not named (an oblique lumbosacral disc): no aortic or common-iliac bifurcation level
    anatomy = _anatomy()
    del anatomy.levels_z_mm["common_iliac_bifurcation"], anatomy.levels_z_mm["aortic_bifurcation"]
    low = _one(_lesion(40, 10, 150), anatomy)  # 30 mm above the inlet: along the common iliac vessels
    assert (low.region, low.site, low.mitnm) == ("distant", "common_iliac", "miM1a")
    assert low.region_uncertain and "distant:retroperitoneal" in low.region_candidates
    high = _one(_lesion(20, 10, 240), anatomy)  # 120 mm above it: beside the aorta
    assert (high.region, high.site) == ("distant", "retroperitoneal")
    pelvic = _one(_lesion(50, 10, 100), anatomy)  # below the inlet: a pelvic node still
    assert pelvic.region == "nodal"


def test_bones_are_named_from_their_masks():
    anatomy = _anatomy(vertebrae_L3=_box((-20, 20, 250), (20, 50, 275)), hip_left=_box((70, -20, 40), (110, 40, 110)),
                       rib_left_8=_box((100, -10, 350), (108, 40, 358)), sacrum=_box((-40, 40, 20), (40, 70, 120)))
    l3 = _one(_lesion(0, 35, 262), anatomy)
    assert (l3.region, l3.site, l3.mitnm, l3.bone) == ("distant", "bone", "miM1b", "vertebrae_L3")
    assert _one(_lesion(90, 10, 75), anatomy).bone == "hip_left"
    assert _one(_lesion(0, 55, 80), anatomy).bone == "sacrum"
    rib = _one(_lesion(111, 10, 354, diameter=8), anatomy)  # beside the thin rib, within one voxel
    assert (rib.site, rib.bone) == ("bone", "rib_left_8")


def test_soft_tissue_density_in_the_bone_mask_is_a_node_flagged_with_bone():
    anatomy = _anatomy(hip_left=_box((50, -20, 40), (110, 40, 110)))
    hu = np.full(SIZE[::-1], 40.0, np.float32)  # soft tissue everywhere
    les = _one(_lesion(52, 10, 75), anatomy, ct=_ct(hu))  # in the imported bone's edge voxel: a node abutting it
    assert les.region == "nodal" and les.region_uncertain
    assert les.region_candidates[-1] == "distant:bone"
    hu[:] = 700.0  # sclerotic: bone it is
    assert _one(_lesion(52, 10, 75), anatomy, ct=_ct(hu)).site == "bone"
    # the CT's own bone mask (its filled rings hold soft tissue): soft-tissue density deep in it is no bone either
    hu[:] = 40.0
    assert _one(_lesion(0, 56, 70), _anatomy(), ct=_ct(hu)).region_candidates[-1] == "distant:bone"


def test_soft_tissue_density_deep_in_an_imported_bone_is_bone():
    # an osteoporotic core (50-120 HU) or a lytic lesion a whole voxel or more inside an imported bone mask
    anatomy = _anatomy(vertebrae_L3=_box((-20, 20, 200), (20, 50, 230)))
    hu = np.full(SIZE[::-1], 100.0, np.float32)
    les = _one(_lesion(0, 36, 216), anatomy, ct=_ct(hu))
    assert (les.region, les.site, les.bone, les.region_uncertain) == ("distant", "bone", "vertebrae_L3", False)


def _vertebra_ct(centre_lps_mm, core_hu: float = 100.0) -> sitk.Image:
    """A 1 mm CT (HU) whose columns run to the patient's right and rows to the front (direction -x, -y, as a
    NIfTI stored in RAS order reads in LPS) of an osteoporotic lumbar body: a 44 x 34 mm ellipse of cortex (1-1.5 mm
    of 400 HU, open behind where the basivertebral veins leave) round a ``core_hu`` core, in 40 HU soft tissue."""
    n = (121, 121, 21)  # x, y, z voxels
    x = centre_lps_mm[0] + 60.0 - np.arange(n[0])  # LPS mm of the columns and rows
    y = centre_lps_mm[1] + 60.0 - np.arange(n[1])
    r = np.hypot((x[None, :] - centre_lps_mm[0]) / 22.0, (y[:, None] - centre_lps_mm[1]) / 17.0)
    section = np.where(r <= 1.0, core_hu, 40.0)
    cortex = (r > 0.93) & (r <= 1.0) & ~((y[:, None] > centre_lps_mm[1]) & (np.abs(x[None, :] - centre_lps_mm[0]) < 4))
    section[cortex] = 400.0
    image = sitk.GetImageFromArray(np.repeat(section[None].astype(np.float32), n[2], axis=0))
    image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    image.SetOrigin(tuple(np.add(centre_lps_mm, (60.0, 60.0, -10.0))))
    return image


def test_soft_tissue_density_ringed_by_bone_on_the_ct_is_bone():
    # an osteoporotic core reads as soft tissue and lies outside the bone mask; the CT's cortex rings it round
    anatomy = _anatomy()
    ct = _vertebra_ct((0.0, 40.0, 262.0))
    core = _one(_lesion(4, 38, 262, diameter=12), anatomy, ct=ct)
    assert (core.region, core.site, core.mitnm) == ("distant", "bone", "miM1b")
    assert core.region_uncertain and core.region_candidates[0] == "distant:bone"
    assert _one(_lesion(4, 38, 262, diameter=12), anatomy).site != "bone"  # no CT: nothing to ring it
    beside = _one(_lesion(36, 40, 262, diameter=12), anatomy, ct=ct)  # a node 14 mm beside the body
    assert beside.site != "bone" and "distant:bone" not in beside.region_candidates
    # fat ringed by bone (a node deep in the pelvis, the hip bones and sacrum round it): no medulla
    in_fat = _one(_lesion(4, 38, 262, diameter=12), anatomy, ct=_vertebra_ct((0.0, 40.0, 262.0), core_hu=-100.0))
    assert in_fat.site != "bone" and "distant:bone" not in in_fat.region_candidates


def test_lung_nodule_in_a_hole_of_the_air_mask_and_liver():
    lung = _box((40, -60, 250), (140, 60, 390)) & ~_box((83, 1, 323), (93, 11, 333))  # a 10 mm nodule punched out
    liver = _box((-140, -60, 200), (-20, 60, 300))
    anatomy = _anatomy(lung_left=lung, liver=liver)
    assert (_one(_lesion(88, 6, 328), anatomy).site, _one(_lesion(88, 6, 328), anatomy).mitnm) == ("lung", "miM1c")
    assert _one(_lesion(-80, 0, 250), anatomy).site == "liver"


def test_prostate_bed_and_intact_gland():
    bed = _one(_lesion(0, -20, -10))  # behind the pubis, between the symphysis levels
    assert (bed.region, bed.site, bed.mitnm, bed.laterality) == ("local", "prostate_bed", "miTr", "midline")
    edge = _one(_lesion(0, -20, 35))  # 5 mm under the envelope top (symphysis top + 40 mm)
    assert edge.region == "local" and set(edge.region_candidates) == {"local:prostate_bed", "nodal:other_pelvic"}
    prostate = _box((-20, -40, -40), (20, -5, -5))
    classified = classify_lesions([_lesion(8, -20, -20)], _anatomy(prostate=prostate), status=None)
    intact, warnings = classified.lesions[0], classified.warnings
    assert (intact.region, intact.site, intact.mitnm) == ("local", "prostate", "miT2")
    assert warnings and "intact gland" in warnings[0]


def test_a_recurrence_carved_out_of_the_edge_of_a_ct_gland_mask_is_in_the_prostate():
    # an irradiated gland (box 40 x 35 x 35 mm) whose CT mask lost a 24 mm ball at its left edge: the lesion's
    # density differs from the enhanced gland; its centre lies > 5 mm from the mask but inside the gland's hull
    x, y, z = _coords()
    gland = _box((-20, -40, -40), (20, -5, -5))
    notch = (x - 14) ** 2 + (y + 22) ** 2 + (z + 22) ** 2 <= 12.0**2
    anatomy = _anatomy(prostate=gland & ~notch)
    les = _one(_lesion(14, -22, -22), anatomy, status="post_radiotherapy")
    assert (les.region, les.site, les.mitnm) == ("local", "prostate", "miT2")
    outside = _one(_lesion(34, -22, -22), anatomy, status="post_radiotherapy")  # 14 mm beside the gland
    assert outside.site != "prostate"


def test_pelvic_node_sites_from_bone_landmarks():
    assert _one(_lesion(0, 28, 90)).site == "presacral"  # 12 mm in front of the sacrum
    assert _one(_lesion(80, -62, -35)).site == "inguinal"
    anatomy = _anatomy(hip_left=_box((70, -20, -20), (110, 40, 110)), femur_left=_box((70, -20, -120), (110, 20, 35)))
    assert _one(_lesion(60, 55, 90), anatomy).site == "internal_iliac"  # behind the hip bone's middle
    assert _one(_lesion(58, 0, 25), anatomy).site == "obturator"  # below the femoral-head top
    assert _one(_lesion(65, -10, 60), anatomy).site == "external_iliac"


def test_pelvic_node_sites_by_nearest_iliac_branch():
    x, y, z = _coords()
    # left common iliac from (8, 8, 185) to (40, 15, 130); external runs anterior-lateral, internal posterior
    artery = np.zeros(x.shape, bool)
    for a, b in (((8, 8, 185), (40, 15, 130)), ((40, 15, 130), (70, -20, 20)), ((40, 15, 130), (50, 55, 70))):
        for t in np.linspace(0, 1, 200):
            c = np.array(a) + t * (np.array(b) - a)
            artery |= (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= 4.5**2
    anatomy = _anatomy(iliac_artery_left=artery)
    assert _one(_lesion(62, 58, 80), anatomy).site == "internal_iliac"
    assert _one(_lesion(72, -22, 60), anatomy).site == "external_iliac"  # lateral to the external iliac
    assert _one(_lesion(42, -5, 40), anatomy).site == "obturator"  # medial to it
    # nearer the internal iliac than the external, but 30 mm from it: not along it, and medial to the external
    assert _one(_lesion(44, 35, 48), anatomy).site == "obturator"


def test_an_artery_mask_parted_for_one_slice_is_no_bifurcation():
    # one lumen (common and external iliac, as TotalSegmentator's iliac_artery) from (8, 8, 185) to (70, -20, 20),
    # cut in two for one 4 mm slice as a thin mask breaks up on the PET grid: no branches, the level stands
    x, y, z = _coords()
    artery = np.zeros(x.shape, bool)
    a, b = np.array((8, 8, 185)), np.array((70, -20, 20))
    for t in np.linspace(0, 1, 300):
        c = a + t * (b - a)
        artery |= (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= 6.0**2  # 12 mm wide
    k = int(np.argmin(np.abs(z[:, 0, 0] - 150.0)))
    columns = np.flatnonzero(artery[k].any(0))
    artery[k][:, columns[len(columns) // 2]] = False
    marks = Landmarks(_anatomy(iliac_artery_left=artery))
    assert ndimage.label(artery[k])[1] == 2
    assert marks.iliac_branch_points("left") is None
    assert marks.ci_bifurcation_z_mm("left") == 130.0


def test_mipsma_v2_boundaries_and_spleen_for_psma_1007():
    refs = {"blood_pool": {"suv_mean": 2.0}, "liver": {"suv_mean": 5.0}, "spleen": {"suv_mean": 8.0},
            "parotid": {"suv_mean": 12.0}}
    lesions = [_lesion(0, 0, 0, suv_max=v) for v in (2.0, 2.01, 5.0, 6.0, 12.0, 12.5)]
    assert [les.mipsma for les in expression_scores(lesions, refs, "psma_f18_renal")] == [0, 1, 1, 2, 2, 3]
    assert [les.mipsma for les in expression_scores(lesions, refs, "psma_f18_hepatobiliary")] == [0, 1, 1, 1, 2, 3]
    assert ([les.mipsma for les in expression_scores(lesions, refs, "psma_ga68", promise_version=1)]
            == [1, 1, 2, 2, 3, 3])
    no_parotid = expression_scores([_lesion(0, 0, 0, suv_max=20.0)], {k: refs[k] for k in ("blood_pool", "liver")},
                                   "psma_ga68")
    assert no_parotid[0].mipsma is None
    assert expression_scores([_lesion(0, 0, 0)], refs, "fluciclovine")[0].mipsma is None


def test_fluciclovine_suspicion_by_size():
    refs = {"blood_pool": {"suv_mean": 1.5}, "marrow_l3": {"suv_mean": 4.0}}
    big_low, big_high = _lesion(0, 0, 0, 3.9, 12.0), _lesion(0, 0, 0, 4.0, 12.0)
    small_low, small_high = _lesion(0, 0, 0, 1.5, 6.0), _lesion(0, 0, 0, 1.6, 6.0)
    out = expression_scores([big_low, big_high, small_low, small_high], refs, "fluciclovine")
    assert [les.fluciclovine_suspicious for les in out] == [False, True, False, True]


def _labelled(region, site, mitnm, laterality=None, mipsma=None) -> Lesion:
    les = _lesion(0, 0, 0)
    les.region, les.site, les.mitnm, les.laterality, les.mipsma = region, site, mitnm, laterality, mipsma
    return les


def test_stage_strings():
    assert stage([], status="post_prostatectomy")["summary"] == "miT0 miN0 miM0"
    lesions = [_labelled("local", "prostate_bed", "miTr", "midline", 3),
               _labelled("nodal", "obturator", "miN", "left", 2),
               _labelled("distant", "bone", "miM1b", "right", 1), _labelled("distant", "bone", "miM1b", "midline", 2)]
    out = stage(lesions, status="post_prostatectomy")
    assert out["summary"] == "miTr miN1 (OB-L) miM1b (oligo) / PSMA expression score highest 3 lowest 1"
    assert (out["mit"], out["min"], out["mim"]) == ("miTr", "miN1 (OB-L)", "miM1b (oligo)")
    both_sides = [_labelled("nodal", "external_iliac", "miN", "left"),
                  _labelled("nodal", "external_iliac", "miN", "right")]
    assert stage(both_sides, status="post_prostatectomy")["min"] == "miN1 (EI-L EI-R)"  # one region
    two = both_sides + [_labelled("nodal", "presacral", "miN", "midline")]
    assert stage(two, status="post_prostatectomy")["min"] == "miN2 (EI-L EI-R PS)"
    assert stage(two, status="post_prostatectomy", promise_version=1)["min"] == "miN1b (EI-L EI-R PS)"
    distant = [_labelled("distant", "common_iliac", "miM1a", "right"),
               _labelled("distant", "retroperitoneal", "miM1a", "left"),
               _labelled("distant", "lung", "miM1c", "left"), _labelled("distant", "liver", "miM1c", "right")]
    assert stage(distant, status="post_prostatectomy")["mim"] == "miM1a (CI-R RP) miM1c (pul hep)"
    intact = [_labelled("local", "prostate", "miT2"), _labelled("local", "prostate", "miT2")]
    assert stage(intact, status="post_radiotherapy")["mit"] == "miT2m"
    assert stage(intact[:1], status="post_radiotherapy")["mit"] == "miT2u"
    bones = [_labelled("distant", "bone", "miM1b") for _ in range(4)]
    assert stage(bones, status=None)["mim"] == "miM1b (diss)"


def test_unknown_status_is_refused():
    with pytest.raises(ValueError):
        _one(_lesion(0, 0, 0), status="primary")


def test_no_anatomy_gives_unclassified_lesions_with_a_warning_and_an_incomplete_staging():
    # a PET alone: no level and no bone to place a node by; a thigh or pelvic lesion is not guessed
    anatomy = Anatomy(grid=_grid())
    lesions = [_lesion(60, 20, -200), _lesion(-50, 10, 60)]
    warnings = classify_lesions(lesions, anatomy, status="post_prostatectomy").warnings
    assert [(les.region, les.site, les.mitnm) for les in lesions] == [("unclassified", "unknown", "")] * 2
    assert sum("unclassified" in w and "(60.0, 20.0, -200.0)" in w for w in warnings) == 1
    staging = stage(lesions, status="post_prostatectomy")
    assert staging["summary"].endswith("(incomplete: 2 lesions unclassified)")
    assert staging["min"] == "miN0" and staging["mim"] == "miM0"


def test_pelvic_node_below_the_found_levels_needs_the_symphysis():
    # the lumbar levels are found but the pelvis is not: a node below them is unclassified, one above is not
    anatomy = _anatomy()
    del anatomy.masks["pubic_symphysis"]
    for level in ("symphysis_top", "symphysis_bottom", "pelvic_inlet", "common_iliac_bifurcation"):
        del anatomy.levels_z_mm[level]
    low, high = _lesion(-60, 20, 60), _lesion(30, 20, 250)
    classify_lesions([low, high], anatomy, status="post_prostatectomy")
    assert (low.region, low.site) == ("unclassified", "unknown")
    assert (high.region, high.site) == ("distant", "retroperitoneal")
