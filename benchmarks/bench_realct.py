"""Benchmark: detection and labels on a PET simulated on a real CT (tests/data/totalsegmentator-abdomen).

The real abdomen-pelvis CT in tests/data, with its TotalSegmentator labels, carries a PET simulated on
those labels (``localize.sample_data.real_ct``) with each tracer's biodistribution (the phantom's uptake
table: DCFPyL, PSMA-11, PSMA-1007, fluciclovine) and four 12 mm lesions (SUV + 10) where recurrences are
looked for: beside the left external iliac artery, beside the aorta at L2, in the prostate and in the body
of L3. ``--lesion-mm`` and ``--lesion-suv`` set their diameter and the SUV added: 10 mm and + 5 are
nearer the small, faint nodes that a recurrence at low PSA shows. Each noise draw runs the built-in
anatomy, the reference regions, the tracer's segmentation preset and the classification, as
``localize run`` does after loading, and is scored on:

- found: a lesion's target within 4 mm of the truth centre;
- false lesions per draw: lesions more than 10 mm from every truth centre, tallied by the labels at their
  maximum;
- region and site over found lesions (the L3 body's osteoporotic core lies outside the CT's bone mask on
  this 3 mm CT; its cortex rings it: docs/limits.md#anatomy-on-real-ct);
- target error (median, mm) and time per draw (s).

Real organ shapes, sizes and positions are what the phantom studies of ``generalize`` cannot give; one
patient is what this gives. Figures are printed per tracer, then pooled, beside the issue-level targets.

With ``--import-labels`` the reference labels are imported as the anatomy (as ``localize run --anatomy`` imports
TotalSegmentator's output) instead of the built-in anatomy.

Run: python -m benchmarks realct -- [--draws 10] [--tracers dcfpyl psma11 psma1007 fluciclovine] [--import-labels]
                                    [--lesion-mm 12] [--lesion-suv 10]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from benchmarks.common import report
from localize.anatomy import build_anatomy
from localize.classify import classify_lesions, infer_status
from localize.detection.reference import reference_regions
from localize.detection.segment import segment_lesions
from localize.findings import Lesion
from localize.sample_data.real_ct import label_names, pet_grid, recurrence_sites, simulated_pet, tracer_uptake
from localize.sample_data.spec import TRACER_FAMILY

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "totalsegmentator-abdomen"
TRUTH = {"external_iliac": ("nodal", "external_iliac"), "retroperitoneal": ("distant", "retroperitoneal"),
         "prostate": ("local", None), "bone": ("distant", "bone")}  # the gland's site: prostate or its bed
PET_SPACING_MM = (4.0, 4.0, 3.0)
LESION_MM, LESION_SUV = 12.0, 10.0
FOUND_MM, FALSE_MM = 4.0, 10.0


def find_and_label(ct: sitk.Image, pet: sitk.Image, family: str, label_map: sitk.Image | None = None,
                   classes: dict[int, str] | None = None) -> list[Lesion]:
    """The lesions that the anatomy (built-in, or ``label_map`` with its ``classes`` imported as ``--anatomy``
    does), the reference regions, the ``family`` preset and the classification find and label on ``pet`` (SUV)
    with ``ct`` (HU), as ``localize run`` does after loading."""
    anatomy = build_anatomy(ct, pet, label_map=label_map, label_names=classes)
    references = reference_regions(pet, anatomy, family)
    found = segment_lesions(pet, anatomy, tracer_family=family, references=references)
    status, _ = infer_status(anatomy, sitk.GetArrayViewFromImage(pet))
    return classify_lesions(found.lesions, anatomy, status=status, references=references, tracer_family=family,
                            labels=found.labels, ct=ct).lesions


def one_draw(ct: sitk.Image, reference: np.ndarray, names: dict[str, int], grid: sitk.Image, tracer: str,
             draw: int, label_map: sitk.Image | None = None,
             lesion: tuple[float, float] = (LESION_MM, LESION_SUV)) -> dict:
    """Score one noise draw of ``tracer``'s PET on the real CT, its lesions of ``lesion`` (diameter mm, SUV added);
    with ``label_map`` (the reference labels) imported as the anatomy."""
    inv = {v: k for k, v in names.items()}
    truth = recurrence_sites(reference, names, grid)
    uptake, rest = tracer_uptake(names, tracer)
    pet = simulated_pet(ct, reference, names, grid, uptake, seed=draw, rest=rest,
                        lesions=tuple((c, *lesion) for c in truth.values()))
    t0 = time.perf_counter()
    lesions = find_and_label(ct, pet, TRACER_FAMILY[tracer], label_map, inv if label_map is not None else None)
    seconds = time.perf_counter() - t0
    rows = []
    for name, centre in truth.items():
        distance, lesion = min(((float(np.linalg.norm(np.subtract(les.target_lps_mm, centre))), les)
                                for les in lesions), key=lambda pair: pair[0], default=(np.inf, None))
        region, site = TRUTH[name]
        found = lesion if lesion is not None and distance <= FOUND_MM else None
        rows.append({"name": name, "found": found is not None, "distance_mm": distance,
                     "region_ok": found is not None and found.region == region,
                     "site_ok": found is not None and (site is None or found.site == site)})
    false = []
    for lesion in lesions:
        if min(np.linalg.norm(np.subtract(lesion.target_lps_mm, c)) for c in truth.values()) > FALSE_MM:
            at = np.rint(grid.TransformPhysicalPointToContinuousIndex(lesion.peak_lps_mm)[::-1]).astype(int)
            near = reference[tuple(slice(max(i - 1, 0), i + 2) for i in at)]
            false.append("+".join(sorted({inv[int(v)] for v in np.unique(near) if v})) or "unlabelled")
    return {"rows": rows, "false": false, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--tracers", nargs="+", default=list(TRACER_FAMILY), choices=list(TRACER_FAMILY))
    parser.add_argument("--import-labels", action="store_true",
                        help="import the reference labels as the anatomy (as --anatomy does) instead of the built-in")
    parser.add_argument("--lesion-mm", type=float, default=LESION_MM, help="the lesions' diameter (mm)")
    parser.add_argument("--lesion-suv", type=float, default=LESION_SUV, help="the SUV added in the lesions")
    args = parser.parse_args(argv)
    ct = sitk.ReadImage(str(DATA / "ct.nii.gz"), sitk.sitkFloat32)
    names = label_names(DATA / "labels.json")
    grid = pet_grid(ct, PET_SPACING_MM)
    labels = sitk.ReadImage(str(DATA / "labels.nii.gz"))
    reference = sitk.GetArrayFromImage(sitk.Resample(labels, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
    pooled: list[dict] = []
    for tracer in args.tracers:
        draws = [one_draw(ct, reference, names, grid, tracer, draw, labels if args.import_labels else None,
                          (args.lesion_mm, args.lesion_suv))
                 for draw in range(args.draws)]
        pooled += draws
        summary(f"realct {tracer}", draws)
    summary("realct all", pooled)
    return 0


def summary(name: str, draws: list[dict]) -> None:
    rows = [r for d in draws for r in d["rows"]]
    found = [r for r in rows if r["found"]]
    missed = Counter(r["name"] for r in rows if not r["found"])
    false = Counter(f for d in draws for f in d["false"])
    print(f"{name}: {len(draws)} draws, missed {dict(missed)}, false lesions {dict(false)}", flush=True)
    report(f"{name} found", len(found) / len(rows), "fraction", 0.97, higher_is_better=True)
    report(f"{name} false lesions", sum(false.values()) / len(draws), "per study", 0.2)
    report(f"{name} region", np.mean([r["region_ok"] for r in found]) if found else np.nan, "fraction", 0.98,
           higher_is_better=True)
    report(f"{name} site", np.mean([r["site_ok"] for r in found]) if found else np.nan, "fraction", 0.90,
           higher_is_better=True)
    report(f"{name} target error median", float(np.median([r["distance_mm"] for r in found])) if found else np.nan,
           "mm", 2.0)
    report(f"{name} time per draw", float(np.median([d["seconds"] for d in draws])), "s", 10.0)


if __name__ == "__main__":
    raise SystemExit(main())
