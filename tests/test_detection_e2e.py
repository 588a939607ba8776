"""End to end on phantom studies of the four tracers: DICOM -> SUV -> anatomy -> references -> lesions.

The organ map the phantom writes beside its DICOM (truth/organs.nii.gz + organs.json,
TotalSegmentator class names) is imported as a user's TotalSegmentator output would be.
Targets: sensitivity >= 0.95 for lesions >= 8 mm with true SUVmax >= 4 (>= 0.8 for
5-8 mm), no false positive (<= 0.3 per study cannot be met otherwise on one study),
median target error <= 2 mm, SUVmax within 10 % of the noise-free blurred truth
(median over lesions of true SUVmax >= 4; each within 20 %: at SUV 6 the phantom's
voxel noise alone is ~9 %, and the maximum of noisy voxels is biased upwards).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from localize.anatomy import build_anatomy, read_label_map
from localize.detection.reference import reference_regions
from localize.detection.segment import segment_lesions
from localize.load.pet import load_pet
from localize.load.volume import load_series
from localize.sample_data.spec import TRACER_FAMILY

pytestmark = pytest.mark.slow

PHYSIOLOGICAL = ("kidney_left", "kidney_right", "urinary_bladder", "liver", "spleen", "small_bowel", "colon",
                 "parotid_gland_left", "parotid_gland_right", "submandibular_gland_left", "submandibular_gland_right")


def _run(root: Path, truth, family: str, label_map: bool = True, without: tuple[str, ...] = ()):
    """(PET, anatomy, segmentation); ``without``: anatomy masks deleted before segmentation."""
    pet = load_pet(sorted((root / truth.series_dirs["PT"]).iterdir())).image
    ct = load_series(sorted((root / truth.series_dirs["CT"]).iterdir())).image
    labels, names = (read_label_map(root / "truth" / "organs.nii.gz", root / "truth" / "organs.json") if label_map
                     else (None, None))
    anatomy = build_anatomy(ct, pet, label_map=labels, label_names=names)
    for name in without:
        anatomy.masks.pop(name, None)
    references = reference_regions(pet, anatomy, family)
    return pet, anatomy, segment_lesions(pet, anatomy, tracer_family=family, references=references)


def _match(seg, truth):
    """truth lesion -> nearest found lesion within max(8 mm, its diameter), else None."""
    out = {}
    for lesion in truth.lesions:
        dists = [np.linalg.norm(np.subtract(found.target_lps_mm, lesion.center_lps_mm)) for found in seg.lesions]
        k = int(np.argmin(dists)) if dists else -1
        out[lesion.name] = seg.lesions[k] if k >= 0 and dists[k] <= max(8.0, lesion.diameter_mm) else None
    return out


@pytest.mark.parametrize("tracer", list(TRACER_FAMILY))
def test_phantom_lesions_found_measured_and_nothing_physiological(phantom, tracer):
    root, truth = phantom(tracer=tracer)
    pet, anatomy, seg = _run(root, truth, TRACER_FAMILY[tracer])
    matched = _match(seg, truth)

    big = [t for t in truth.lesions if t.diameter_mm >= 8 and t.suv_max >= 4]
    small = [t for t in truth.lesions if 5 <= t.diameter_mm < 8 and t.suv_max >= 4]
    assert len(big) >= 5
    if tracer == "psma1007":  # unspecific marrow uptake: bone at least 1.5 x lumbar marrow mean + 2 SD
        marrow = reference_regions(pet, anatomy, TRACER_FAMILY[tracer])["marrow"]
        assert seg.thresholds["bone_suv"] == pytest.approx(max(3.0, 1.5 * marrow.suv_mean + 2 * marrow.suv_sd))
    assert sum(matched[t.name] is not None for t in big) / len(big) >= 0.95
    if small:
        assert sum(matched[t.name] is not None for t in small) / len(small) >= 0.8

    used = {id(found) for found in matched.values() if found is not None}
    false_positives = [found for found in seg.lesions if id(found) not in used]
    assert false_positives == []

    organs = np.zeros(sitk.GetArrayViewFromImage(pet).shape, bool)
    for name in PHYSIOLOGICAL:
        if name in anatomy.masks:
            organs |= anatomy.masks[name]
    labels = sitk.GetArrayFromImage(seg.labels)
    hit = {t.name for t in truth.lesions if t.site == "liver" or t.touches_bladder}  # lesions allowed to touch organs
    for lesion in seg.lesions:
        if not any(matched[name] is lesion for name in hit):
            assert not (organs & (labels == lesion.label)).any()

    found = [(t, matched[t.name]) for t in truth.lesions if matched[t.name] is not None]
    errors_mm = [np.linalg.norm(np.subtract(f.target_lps_mm, t.center_lps_mm)) for t, f in found]
    assert np.median(errors_mm) <= 2.0
    rel = {t.name: (f.suv_max - t.suv_max) / t.suv_max for t, f in found if t.suv_max >= 4}
    print(tracer, {k: round(v, 3) for k, v in rel.items()}, "target errors mm", np.round(errors_mm, 1))
    assert np.median(np.abs(list(rel.values()))) <= 0.10
    assert max(np.abs(list(rel.values()))) <= 0.20


def test_node_beside_the_bladder_and_ureter_is_found_with_ct_only_anatomy(phantom):
    # seed 11: an 8 mm obturator node (SUVmax 4.4) one PET voxel from urine activity, once lost to a
    # spill-over residue at the bladder wall that took its place among the hot spots
    root, truth = phantom(tracer="psma11", status="post_radiotherapy", seed=11)
    _, _, seg = _run(root, truth, TRACER_FAMILY["psma11"], label_map=False)
    matched = _match(seg, truth)
    node = next(t for t in truth.lesions if t.site == "obturator")
    assert matched[node.name] is not None
    assert all(matched[t.name] is not None for t in truth.lesions if t.suv_max >= 4)
    assert len(seg.lesions) == sum(found is not None for found in matched.values())  # no false positive


def test_fluciclovine_rib_lesion_is_judged_against_soft_tissue_not_marrow(phantom):
    # a rib is too thin to show marrow uptake: the marrow-referenced bone threshold (~5.2 here) does not
    # apply there, and the 9 mm rib lesion (SUVmax ~5) comes out
    root, truth = phantom(tracer="fluciclovine", extent="whole_body", seed=2)
    _, _, seg = _run(root, truth, TRACER_FAMILY["fluciclovine"])
    assert seg.thresholds["bone_suv"] > 5.0
    rib = next(t for t in truth.lesions if t.name.endswith("bone_rib"))
    assert rib.suv_max < seg.thresholds["bone_suv"]
    assert _match(seg, truth)[rib.name] is not None


@pytest.mark.parametrize("tracer", ["dcfpyl", "psma1007"])
def test_bowel_without_its_mask_is_no_flood_of_lesions(phantom, tracer):
    # small-bowel loops (SUV 4-6) and colon with no mask, as when an organ is missed: their noise peaks
    # pass SUV 3 by the handful, but none stands out of its own loop; every lesion is still found
    root, truth = phantom(tracer=tracer)
    _, anatomy, seg = _run(root, truth, TRACER_FAMILY[tracer], without=("small_bowel", "colon", "bowel", "duodenum"))
    assert not {"small_bowel", "colon", "bowel"} & set(anatomy.masks)
    matched = _match(seg, truth)
    assert all(matched[t.name] is not None for t in truth.lesions if t.diameter_mm >= 6 and t.suv_max >= 4)
    assert len(seg.lesions) - len({id(f) for f in matched.values() if f is not None}) == 0
    assert any(c.reason == "low local contrast" for c in seg.candidates)
