"""Benchmark: `localize run` on varied phantom patients (the validation split), scored against their truth.

Each study is a varied patient (``localize.sample_data.VariedSpec``): his own body, organs, bowel,
bladder, ureters, table position, field of view, patient position, CT and PET settings and noise.
Seeds >= ``VALIDATION_SEED_START`` are the validation split: methods are never tuned on them, so the
figures below estimate accuracy on studies the methods were not fitted to. Tune with ``--train``.

Every study runs through ``run_study`` with the default pipeline for its tracer, exactly as
``localize run DICOM --out OUT`` does, and is scored on:

- found: truth lesions >= 6 mm with a detection within max(radius, 1 PET voxel) + 4 mm; and, as ``above
  threshold``, the same over those whose noise-free SUVmax reaches the run's detection threshold for their
  tissue (``thresholds_suv`` in findings.json: bone for bone lesions, soft tissue otherwise): the lesions that
  the study's thresholds let through, whose misses are the method's; ``ceiling``: found, were every one of
  those found (the others count only when noise lifted them over the threshold);
- false lesions per study: detections matching no truth lesion (nearest truth farther than that);
- region and site accuracy over found lesions (``unclassified`` counts as wrong);
- target error (mm, median and 95th centile) and SUVmax error (%) over found lesions, against the lesion's
  maximum on the PET as written (the software's error) and, as ``noise-free``, against the noise-free
  PET (adding the scanner noise's upward bias of a maximum; ``localize.sample_data.scoring``);
- time per study of the run (generation excluded).

With ``--truth-organs`` each study runs with its own organ map imported (``localize run --anatomy``), as a
perfect organ segmentation of the CT would give it (TotalSegmentator's classes, and the ureters): the figures of
the detection rules with anatomy that is right (outputs in ``out-truth-organs``).

Figures are pooled per tracer, per field of view and per clinical situation, then overall; the
issue-level targets (found >= 0.97, false <= 0.2 per study, region >= 0.98, site >= 0.90, target
median <= 2 mm, SUVmax within 10 %) are printed beside them.

Run: python -m benchmarks generalize -- [--n 16] [--train] [--ct-matrix-cap 256] [--extents whole_body pelvis]
         [--keep DIR] [--json OUT.json] [--truth-organs]
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from benchmarks.common import report
from localize.errors import LocalizeError
from localize.pipeline import run_study
from localize.sample_data import VALIDATION_SEED_START, StudyTruth, VariedSpec, make_study
from localize.sample_data.scoring import score

TRACERS = ("psma11", "dcfpyl", "psma1007", "fluciclovine")
STATUSES = ("post_prostatectomy", "post_radiotherapy")
MIN_DIAMETER_MM = 6.0
TARGETS = {"found": 0.97, "false_per_study": 0.2, "region": 0.98, "site": 0.90, "target_median_mm": 2.0,
           "suv_within_10pct": 1.0}


def organs_near(root: Path, truth):
    """A function: LPS point -> the truth organs within 5 mm of it (or "fat/other")."""
    image = sitk.ReadImage(str(root / "truth" / "organs.nii.gz"))
    labels = sitk.GetArrayFromImage(image)
    names = {v: k for k, v in truth.organ_classes.items()}
    spacing_zyx = np.array(image.GetSpacing()[::-1])

    def near(lps_mm) -> str:
        idx = np.round(image.TransformPhysicalPointToContinuousIndex(tuple(map(float, lps_mm)))[::-1]).astype(int)
        r = np.ceil(5.0 / spacing_zyx).astype(int)
        box = labels[tuple(slice(max(i - k, 0), max(i + k + 1, 0)) for i, k in zip(idx, r))]
        found = sorted({names.get(int(v), str(v)) for v in np.unique(box) if v})
        return "+".join(found) or "fat/other"

    return near


def pooled(studies: list[dict]) -> dict:
    rows = [r for s in studies for r in s["lesions"] if r["diameter_mm"] >= MIN_DIAMETER_MM]
    hits = [r for r in rows if r["found"]]
    detectable = [r for r in rows if r.get("above_threshold")]
    dist = np.array([r["distance_mm"] for r in hits]) if hits else np.array([np.nan])
    suv = np.abs([r["suv_error"] for r in hits]) if hits else np.array([np.nan])
    noise_free = np.abs([r["suv_error_noise_free"] for r in hits]) if hits else np.array([np.nan])
    return {"studies": len(studies), "lesions": len(rows),
            "found": len(hits) / len(rows) if rows else np.nan,
            "found_above_threshold": (sum(r["found"] for r in detectable) / len(detectable)) if detectable else np.nan,
            # found, were every lesion that reaches its threshold found: the most these thresholds allow
            "found_ceiling": (sum(r["found"] or bool(r.get("above_threshold")) for r in rows) / len(rows)) if rows
            else np.nan,
            "lesions_above_threshold": len(detectable),
            "false_per_study": sum(len(s["false"]) for s in studies) / max(len(studies), 1),
            "region": np.mean([r["region"] == r["truth_region"] for r in hits]) if hits else np.nan,
            "site": np.mean([r["site"] == r["truth_site"] for r in hits]) if hits else np.nan,
            "target_median_mm": float(np.median(dist)), "target_p95_mm": float(np.percentile(dist, 95)),
            "suv_within_10pct": float(np.mean(suv <= 0.10)), "suv_median_pct": float(np.median(suv) * 100),
            "suv_noise_free_within_10pct": float(np.mean(noise_free <= 0.10)),
            "run_s_median": float(np.median([s["run_s"] for s in studies])) if studies else np.nan}


def line(name: str, p: dict) -> str:
    return (f"{name:<26} n={p['studies']:>3} lesions={p['lesions']:>4} found={p['found']:.3f} "
            f"(above threshold {p['found_above_threshold']:.3f} of {p['lesions_above_threshold']}; "
            f"ceiling {p['found_ceiling']:.3f}) "
            f"false/study={p['false_per_study']:.2f} region={p['region']:.3f} site={p['site']:.3f} "
            f"target med={p['target_median_mm']:.2f} p95={p['target_p95_mm']:.2f} mm "
            f"SUV<=10%={p['suv_within_10pct']:.3f} (med {p['suv_median_pct']:.1f}%, noise-free "
            f"{p['suv_noise_free_within_10pct']:.3f}) run={p['run_s_median']:.1f}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16, help="studies (tracer x extent x status cycled over seeds)")
    ap.add_argument("--train", action="store_true", help="training seeds (1, 2, ...) instead of the validation split")
    ap.add_argument("--first-seed", type=int, default=None)
    ap.add_argument("--extents", nargs="+", default=["whole_body", "pelvis"])
    ap.add_argument("--ct-matrix-cap", type=int, default=256)
    ap.add_argument("--keep", type=Path, help="keep studies and outputs here (and reuse the studies found there)")
    ap.add_argument("--json", type=Path, help="write every study's score here")
    ap.add_argument("--truth-organs", action="store_true",
                    help="import each study's own organ map (``--anatomy``): the figures with anatomy that is right")
    args = ap.parse_args()
    first = args.first_seed if args.first_seed is not None else (1 if args.train else VALIDATION_SEED_START)
    combos = list(itertools.product(TRACERS, args.extents, STATUSES))
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_generalize_"))
    studies = []
    for k in range(args.n):
        tracer, extent, status = combos[k % len(combos)]
        spec = VariedSpec(first + k, tracer=tracer, extent=extent, status=status, ct_matrix_cap=args.ct_matrix_cap)
        root = work / f"seed{spec.seed}"
        built = args.keep and (root / "truth" / "truth.json").is_file()
        truth = StudyTruth.load(root) if built else make_study(root, spec)  # --keep: studies built before are reused
        tracer, extent, status = truth.tracer, truth.extent, truth.status  # as built (a kept study may differ)
        out = root / ("out-truth-organs" if args.truth_organs else "out")
        t0 = time.perf_counter()
        try:
            run_study(root / "dicom", out, anatomy=root / "truth" / "organs.nii.gz" if args.truth_organs else None)
            error = None
        except LocalizeError as exc:
            error = str(exc)
        run_s = time.perf_counter() - t0
        if error and not (out / "findings.json").is_file():
            print(f"seed {spec.seed} {tracer} {extent} {status}: FAILED {error}")
            studies.append({"seed": spec.seed, "tracer": tracer, "extent": extent, "status": status, "run_s": run_s,
                            "lesions": [dict(found=False, diameter_mm=t.diameter_mm) for t in truth.lesions],
                            "false": [], "error": error})
            continue
        doc = json.loads((out / "findings.json").read_text())
        s = score(truth, doc, truth.variation["scan"]["pet_voxel_mm"])
        thresholds = doc["parameters"]["thresholds_suv"]
        for row, t in zip(s["lesions"], truth.lesions):
            row["above_threshold"] = t.suv_max >= thresholds["bone_suv" if t.site == "bone" else "soft_tissue_suv"]
        near = organs_near(root, truth)
        for f in s["false"]:
            f["truth_organs"] = near(f["target_lps_mm"])
        s.update(seed=spec.seed, tracer=tracer, extent=extent, status=status, run_s=run_s, error=error,
                 warnings=doc.get("warnings", []))
        studies.append(s)
        missed = [f"{r['name']}({r['diameter_mm']:.0f}mm)" for r in s["lesions"] if not r["found"]]
        wrong = [f"{r['name']}:{r['site']}" for r in s["lesions"] if r["found"] and r["site"] != r["truth_site"]]
        print(f"seed {spec.seed} {tracer:<12} {extent:<14} {status:<18} lesions={len(truth.lesions):>2} "
              f"missed={missed} false={[(f['truth_organs'], round(f['suv_max'], 1)) for f in s['false']]} "
              f"wrong_site={wrong} run={run_s:.1f}s", flush=True)
    print("\nsplit:", "training" if args.train else "validation", f"seeds {first}..{first + args.n - 1}")
    groups = defaultdict(list)
    for s in studies:
        for key in (s["tracer"], s["extent"], s["status"]):
            groups[key].append(s)
    for name in [*TRACERS, *args.extents, *STATUSES]:
        if groups[name]:
            print(line(name, pooled(groups[name])))
    total = pooled(studies)
    print(line("all", total))
    print("targets:", ", ".join(f"{k} {'<=' if k in ('false_per_study', 'target_median_mm') else '>='} {v}"
                                for k, v in TARGETS.items()))
    for key, target in TARGETS.items():
        lower = key in ("false_per_study", "target_median_mm")
        unit = "mm" if key.endswith("_mm") else "per study" if key == "false_per_study" else "fraction"
        report(f"generalize {key} ({len(studies)} studies)", float(total[key]), unit, target=target,
               higher_is_better=not lower)
    report(f"generalize found_above_threshold ({total['lesions_above_threshold']} lesions)",
           float(total["found_above_threshold"]), "fraction", higher_is_better=True)
    report(f"generalize found_ceiling ({total['lesions']} lesions)", float(total["found_ceiling"]), "fraction",
           higher_is_better=True)
    report(f"generalize suv_noise_free_within_10pct ({len(studies)} studies)",
           float(total["suv_noise_free_within_10pct"]), "fraction", higher_is_better=True)
    if args.json:
        args.json.write_text(json.dumps({"studies": studies, "all": total}, indent=1, default=float))


if __name__ == "__main__":
    main()
