"""Benchmark: anatomy + reference regions + segmentation on whole-body phantom studies, four tracers.

Budget: <= 10 s per whole-body study and <= 3 GB peak memory. The baseline,
timed in the same process, is one 3-D Gaussian smoothing of the same SUV volume
(sigma 1 voxel): the ratio says how many such passes the pipeline costs, which
travels between machines better than seconds. Also prints detection figures per
tracer (sensitivity >= 8 mm / 5-8 mm with true SUVmax >= 4, false positives,
median target error, SUVmax error, reference-region errors).

Anatomy is built from the CT and PET alone unless ``--label-map`` adds the phantom's organ labels.
``--without`` deletes masks (names or their prefixes) and ``--erode-mm`` shrinks the diffuse-uptake
organs' masks before segmentation, as a CT rule that misses or under-segments them would. Each false
positive is tallied by the truth organ it lies in (or "other"). ``--seeds`` and ``--extent`` sweep
phantom patients (seeds other than 1 were not used to tune the presets): the last lines pool every
study per tracer into sensitivity and false positives per study.

Run: python -m benchmarks segment -- [--ct-matrix 512] [--label-map] [--seeds 1 11 12] [--extent pelvis]
         [--without liver bowel small_bowel colon spleen] [--erode-mm 8]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from benchmarks.common import report
from localize.anatomy import build_anatomy, read_label_map
from localize.anatomy.imported import masks_from_label_map
from localize.detection.metrics import ball, lps_to_zyx, spacing_zyx_mm
from localize.detection.reference import reference_regions
from localize.detection.segment import segment_lesions
from localize.load.pet import load_pet
from localize.load.volume import load_series
from localize.sample_data import StudySpec, make_study
from localize.sample_data.spec import TRACER_FAMILY

DIFFUSE = ("liver", "spleen", "bowel", "small_bowel", "colon", "duodenum", "stomach", "kidney", "pancreas",
           "parotid", "submandibular")
TRUTH_REFERENCE = {"liver": "liver", "aortic_blood_pool": "blood_pool", "parotid": "parotid", "spleen": "spleen",
                   "l3_marrow": "marrow_l3"}


def imperfect(anatomy, without: tuple[str, ...], erode_mm: float, spacing: np.ndarray) -> None:
    """Delete the masks named (or prefixed) in ``without``; erode the diffuse-uptake organs' by ``erode_mm``."""
    for name in [n for n in anatomy.masks if n.startswith(tuple(without))] if without else []:
        del anatomy.masks[name]
    if erode_mm > 0:
        for name in [n for n in anatomy.masks if n.startswith(DIFFUSE)]:
            anatomy.masks[name] = ndimage.binary_erosion(anatomy.masks[name], structure=ball(erode_mm, spacing))


def organ_at(truth_masks: dict[str, np.ndarray], zyx: np.ndarray) -> str:
    """The truth organ holding voxel ``zyx``, else the nearest within 8 mm ("near ..."), else "other"."""
    at = tuple(np.clip(zyx, 0, np.array(next(iter(truth_masks.values())).shape) - 1))
    for name, mask in truth_masks.items():
        if mask[at]:
            return name
    lo = np.maximum(np.array(at) - 2, 0)
    box = tuple(slice(a, b + 3) for a, b in zip(lo, at))
    near = sorted(name for name, mask in truth_masks.items() if mask[box].any())
    return f"near {near[0]}" if near else "other"


def one_study(root: Path, tracer: str, ct_matrix: int, label_map: bool = False, seed: int = 1,
              extent: str = "whole_body", without: tuple[str, ...] = (), erode_mm: float = 0.0) -> dict:
    status = "post_prostatectomy" if extent == "whole_body" else "post_radiotherapy"  # both beds of recurrence
    truth = make_study(root, StudySpec(tracer=tracer, extent=extent, status=status, ct_matrix=ct_matrix,
                                       with_mr=False, seed=seed))
    pet = load_pet(sorted((root / truth.series_dirs["PT"]).iterdir())).image
    ct = load_series(sorted((root / truth.series_dirs["CT"]).iterdir())).image
    labels, names = (read_label_map(root / "truth" / "organs.nii.gz", root / "truth" / "organs.json") if label_map
                     else (None, None))  # default: CT(+PET)-only anatomy
    suv = sitk.GetArrayFromImage(pet)

    t0 = time.perf_counter()
    ndimage.gaussian_filter(suv, 1.0)
    baseline_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    anatomy = build_anatomy(ct, pet, label_map=labels, label_names=names)
    t1 = time.perf_counter()
    imperfect(anatomy, without, erode_mm, spacing_zyx_mm(pet))
    refs = reference_regions(pet, anatomy, TRACER_FAMILY[tracer])
    t2 = time.perf_counter()
    seg = segment_lesions(pet, anatomy, tracer_family=TRACER_FAMILY[tracer], references=refs)
    t3 = time.perf_counter()

    matched, used = {}, set()
    for lesion in truth.lesions:
        dists = [np.linalg.norm(np.subtract(f.target_lps_mm, lesion.center_lps_mm)) for f in seg.lesions]
        k = int(np.argmin(dists)) if dists else -1
        if k >= 0 and dists[k] <= max(8.0, lesion.diameter_mm):
            matched[lesion.name] = seg.lesions[k]
            used.add(k)
    big = [t for t in truth.lesions if t.diameter_mm >= 8 and t.suv_max >= 4]
    small = [t for t in truth.lesions if 5 <= t.diameter_mm < 8 and t.suv_max >= 4]
    found = [(t, matched[t.name]) for t in truth.lesions if t.name in matched]
    organs = masks_from_label_map(*read_label_map(root / "truth" / "organs.nii.gz", root / "truth" / "organs.json"),
                                  pet)
    false = [organ_at(organs, np.rint(lps_to_zyx(pet, np.array(f.peak_lps_mm))).astype(int))
             for k, f in enumerate(seg.lesions) if k not in used]
    return {
        "tracer": tracer,
        "study": f"{extent} seed {seed}",
        "n_8mm": (sum(t.name in matched for t in big), len(big)),
        "n_5_8mm": (sum(t.name in matched for t in small), len(small)),
        "voxels": int(suv.size),
        "baseline_s": baseline_s,
        "anatomy_s": t1 - t0,
        "reference_s": t2 - t1,
        "segment_s": t3 - t2,
        "sens_8mm": f"{sum(t.name in matched for t in big)}/{len(big)}",
        "sens_5_8mm": f"{sum(t.name in matched for t in small)}/{len(small)}",
        "missed": [t.name for t in big + small if t.name not in matched],
        "false_positives": len(seg.lesions) - len(used),
        "false_in": false,
        "target_err_median_mm": float(np.median([np.linalg.norm(np.subtract(f.target_lps_mm, t.center_lps_mm))
                                                 for t, f in found])),
        "suvmax_err_median_pct": float(np.median([100 * abs(f.suv_max - t.suv_max) / t.suv_max
                                                  for t, f in found if t.suv_max >= 4])),
        "reference_err_pct": {name: round(100 * (refs[ours].suv_mean - truth.reference_regions[name]["suv_mean"])
                                          / truth.reference_regions[name]["suv_mean"], 1)
                              for name, ours in TRUTH_REFERENCE.items()
                              if name in truth.reference_regions and ours in refs},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ct-matrix", type=int, default=512)
    parser.add_argument("--label-map", action="store_true", help="add the phantom's organ label map to the CT anatomy")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--extent", nargs="+", default=["whole_body"], choices=["whole_body", "pelvis"])
    parser.add_argument("--without", nargs="*", default=[], help="anatomy masks (names or prefixes) to delete")
    parser.add_argument("--erode-mm", type=float, default=0.0, help="erode the diffuse-uptake organs' masks")
    args = parser.parse_args()
    pooled = {tracer: [] for tracer in TRACER_FAMILY}
    with tempfile.TemporaryDirectory() as tmp:
        for extent, seed, tracer in ((e, s, t) for e in args.extent for s in args.seeds for t in TRACER_FAMILY):
            r = one_study(Path(tmp) / f"{extent}{seed}{tracer}", tracer, args.ct_matrix, args.label_map, seed, extent,
                          tuple(args.without), args.erode_mm)
            pooled[tracer].append(r)
            print(r["study"])
            total = r["anatomy_s"] + r["reference_s"] + r["segment_s"]
            print(f"{tracer:13s} {r['voxels'] / 1e6:.1f} Mvox  anatomy {r['anatomy_s']:.2f} s  reference "
                  f"{r['reference_s']:.2f} s  segment {r['segment_s']:.2f} s  total {total:.2f} s "
                  f"({total / r['baseline_s']:.0f}x baseline {r['baseline_s']:.3f} s)")
            report(f"segment {extent} seed {seed} {tracer} anatomy + reference + segmentation", total, "s",
                   target=10.0 if extent == "whole_body" else None, baseline=r["baseline_s"])
            print(f"{'':13s} sensitivity >=8 mm {r['sens_8mm']}, 5-8 mm {r['sens_5_8mm']}, missed {r['missed']}, "
                  f"FP {r['false_positives']} {dict(Counter(r['false_in']))}, "
                  f"target err median {r['target_err_median_mm']:.2f} mm, "
                  f"SUVmax err median {r['suvmax_err_median_pct']:.1f} %, reference err % {r['reference_err_pct']}")
    if len(args.seeds) * len(args.extent) > 1:
        for tracer, runs in pooled.items():
            found, n = (sum(r["n_8mm"][i] for r in runs) for i in (0, 1))
            found_small, n_small = (sum(r["n_5_8mm"][i] for r in runs) for i in (0, 1))
            fp = sum(r["false_positives"] for r in runs)
            print(f"pooled {tracer:13s} {len(runs)} studies: sensitivity >=8 mm {found}/{n} = {found / n:.3f}, "
                  f"5-8 mm {found_small}/{n_small}, false positives {fp / len(runs):.2f} per study "
                  f"{dict(Counter(o for r in runs for o in r['false_in']))}, SUVmax err median "
                  f"{np.median([r['suvmax_err_median_pct'] for r in runs]):.1f} %, time median "
                  f"{np.median([r['anatomy_s'] + r['reference_s'] + r['segment_s'] for r in runs]):.2f} s")
            errors = {name: [abs(r["reference_err_pct"][name]) for r in runs if name in r["reference_err_pct"]]
                      for name in TRUTH_REFERENCE}
            print(f"{'':20s} reference |error| % median / max / within 5 %: " + ", ".join(
                f"{name} {np.median(e):.1f} / {max(e):.1f} / {sum(v <= 5 for v in e)}/{len(e)}"
                for name, e in errors.items() if e))
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak memory (whole process, incl. phantom generation) {peak_gb:.2f} GB")
    report("segment peak memory (whole process, incl. phantom generation)", peak_gb, "GB", target=3.0)


if __name__ == "__main__":
    main()
