"""Classification end to end on phantom studies of all four tracers (DICOM written by the phantom generator).

Anatomy: the CT heuristics plus the phantom's TotalSegmentator-style organ label
map (truth/organs.nii.gz), the CT (HU on the PET grid) for the bone density check.
Detections are matched to the truth lesions by distance (<= 15 mm); the expected
staging parts come from the matched truth lesions' contract labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from localize.anatomy import build_anatomy, read_label_map
from localize.classify import classify_lesions, stage
from localize.detection.reference import reference_regions
from localize.detection.segment import segment_lesions
from localize.load.pet import load_pet
from localize.load.volume import load_series
from localize.sample_data import StudySpec

pytestmark = pytest.mark.slow

STUDIES = [
    dict(tracer="dcfpyl", status="post_prostatectomy"),
    dict(tracer="psma1007", status="post_prostatectomy"),
    dict(tracer="psma11", status="post_radiotherapy"),
    dict(tracer="fluciclovine", status="post_radiotherapy"),
    dict(tracer="dcfpyl", status="post_prostatectomy", extent="whole_body"),
]
_M_PARTS = {"common_iliac": "miM1a", "retroperitoneal": "miM1a", "inguinal": "miM1a", "supradiaphragmatic": "miM1a",
            "bone": "miM1b", "lung": "miM1c", "liver": "miM1c"}


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _classified(root: Path, truth, status: str):
    pet = load_pet(_files(root / truth.series_dirs["PT"]))
    ct = load_series(_files(root / truth.series_dirs["CT"]))
    family = pet.calibration.tracer.family
    label_map, names = read_label_map(root / "truth" / "organs.nii.gz", root / "truth" / "organs.json")
    anatomy = build_anatomy(ct.image, pet.image, label_map=label_map, label_names=names)
    refs = reference_regions(pet.image, anatomy, family)
    seg = segment_lesions(pet.image, anatomy, tracer_family=family, references=refs)
    return classify_lesions(seg.lesions, anatomy, status=status, references=refs, tracer_family=family,
                            labels=seg.labels, ct=ct.image).lesions, family


@pytest.fixture(scope="module")
def results(phantom):
    out = []
    for study in STUDIES:
        spec = StudySpec(**{"extent": "pelvis", "ct_matrix": 256, "with_mr": False, **study})
        root, truth = phantom(spec)
        lesions, family = _classified(root, truth, study["status"])
        centres = np.array([t.center_lps_mm for t in truth.lesions])
        pairs = []
        for lesion in lesions:
            d = np.linalg.norm(centres - np.array(lesion.target_lps_mm), axis=1)
            if d.min() <= 15.0:
                pairs.append((lesion, truth.lesions[int(np.argmin(d))]))
        out.append((study, family, lesions, pairs))
    return out


def test_region_and_site_accuracy_on_detected_lesions(results):
    n = regions = sites = 0
    for study, _family, _, pairs in results:
        r = sum(les.region == t.region for les, t in pairs)
        s = sum(les.site == t.site for les, t in pairs)
        print(f"{study['tracer']:12s} {study.get('extent', 'pelvis'):10s} matched {len(pairs)} "
              f"region {r / len(pairs):.2f} site {s / len(pairs):.2f}")
        assert len(pairs) >= 5
        n, regions, sites = n + len(pairs), regions + r, sites + s
    print(f"all: region {regions / n:.3f} site {sites / n:.3f} on {n} lesions")
    assert regions / n >= 0.9
    assert sites / n >= 0.85


def test_whole_body_extrapelvic_sites(results):
    _, _, _, pairs = results[-1]
    found = {t.site: les.site for les, t in pairs}
    for site in ("retroperitoneal", "supradiaphragmatic", "lung", "liver", "common_iliac"):
        assert found.get(site) == site
    bones = {t.bone: les.bone for les, t in pairs if t.site == "bone"}
    assert bones.get("vertebrae_L5") == "vertebrae_L5" and bones.get("hip_right") == "hip_right"


def test_staging_t_and_m_parts(results):
    correct = 0
    for study, _family, lesions, pairs in results:
        matched = [t for _, t in pairs]
        got = stage(lesions, status=study["status"])
        local = [t for t in matched if t.region == "local"]
        want_t = "miT0" if not local else "miTr" if study["status"] == "post_prostatectomy" else (
            "miT2u" if len(local) == 1 else "miT2m")
        want_m = sorted({_M_PARTS[t.site] for t in matched if t.site in _M_PARTS})
        got_m = sorted(part.split(" ")[0] for part in got["mim"].split(") ")) if got["mim"] != "miM0" else []
        ok = got["mit"] == want_t and got_m == want_m
        print(study, got["summary"], "ok" if ok else f"expected {want_t} {want_m}")
        correct += ok
    assert correct / len(results) >= 0.9


@pytest.mark.parametrize("status", ["post_prostatectomy", "post_radiotherapy"])
def test_treatment_status_is_read_from_the_ct_with_its_evidence(phantom, status):
    from localize.anatomy import build_anatomy
    from localize.classify import infer_status
    from localize.load.pet import load_pet
    from localize.load.volume import load_series

    root, truth = phantom(tracer="psma11", status=status, seed=7)
    pet = load_pet(sorted((root / truth.series_dirs["PT"]).iterdir())).image
    ct = load_series(sorted((root / truth.series_dirs["CT"]).iterdir())).image
    found, evidence = infer_status(build_anatomy(ct, pet))
    assert found == status, evidence
    assert "from the anatomy" in evidence and "assumed" not in evidence
    if status == "post_radiotherapy":
        assert " ml centred at LPS (" in evidence and "below the bladder" in evidence
