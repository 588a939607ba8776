"""One whole-body PET/CT/MR study end to end, and a batch of studies on 1 and 2 workers.

Targets (issue "Pipelines"): one study (load, register, segment, classify, every
export) <= 30 s and peak memory <= 4 GB; a batch of >= 8 studies runs >= 1.7x
faster on 2 workers than on 1; a resumed batch redoes no finished study.

Run: python -m benchmarks pipeline -- [--studies 8]. The in-process baseline
for the single study is loading its series (the unavoidable I/O), so the ratio
pipeline / load is comparable between machines.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import report
from localize.batch.catalog import Catalog
from localize.batch.run import BatchSettings, run_batch
from localize.sample_data import LesionSpec, StudySpec, make_study

SMALL_LESIONS = (LesionSpec("obturator", 12, 8.0, "left"), LesionSpec("bone_pelvis", 14, 12.0, "right"))


def single_study(root: Path) -> None:
    study = root / "wb"
    make_study(study, StudySpec(seed=7))  # the demo study: whole body, 512 CT, MR
    code = (
        "import json, resource, sys, time; from pathlib import Path\n"
        "from localize.load.pet import load_pet; from localize.load.volume import load_series\n"
        "from localize.load.index import index_folder; from localize.load.plan import single_plan\n"
        "from localize.pipeline import run_study\n"
        "m = single_plan(index_folder(sys.argv[1])).manifest()\n"
        "t = time.perf_counter(); load_pet([Path(f) for f in m['files']['pet']]);"
        " load_series([Path(f) for f in m['files']['ct']]); load_series([Path(f) for f in m['files']['mr']])\n"
        "load_s = time.perf_counter() - t\n"
        "t = time.perf_counter(); f = run_study(sys.argv[1], sys.argv[2], pipeline='research')\n"
        "run_s = time.perf_counter() - t\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20\n"
        "print(json.dumps({'load_s': load_s, 'run_s': run_s, 'peak_gb': peak, 'lesions': len(f.lesions),"
        " 'timings': json.loads((Path(sys.argv[2]) / 'provenance.json').read_text())['timings_s']}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(study / "dicom"), str(root / "wb-out")],
                         capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"whole-body study end to end: {r['run_s']:.1f} s (target <= 30 s), peak RSS {r['peak_gb']:.2f} GB "
          f"(target <= 4 GB), {r['lesions']} lesions")
    print(f"  steps: {r['timings']}")
    print(f"  baseline (load the three series): {r['load_s']:.1f} s; "
          f"ratio pipeline / load {r['run_s'] / r['load_s']:.1f}")
    report("whole-body study end to end", r["run_s"], "s", target=30.0, baseline=r["load_s"])
    report("whole-body study peak RSS", r["peak_gb"], "GB", target=4.0)


def batch(root: Path, n: int) -> None:
    archive = root / "archive"
    for seed in range(100, 100 + n):
        make_study(root / f"s{seed}", StudySpec(seed=seed, extent="pelvis", ct_matrix=256, lesions=SMALL_LESIONS))
        shutil.copytree(root / f"s{seed}" / "dicom", archive / f"p{seed}")
    for label, threads in (("default threads (cores // workers)", None), ("one thread per study", 1)):
        times = {}
        for workers in (1, 2):
            out = root / f"batch{workers}-{threads}"
            t = time.perf_counter()
            summary = run_batch(archive, out, BatchSettings(workers=workers, progress=False,
                                                            threads_per_study=threads))
            times[workers] = time.perf_counter() - t
            assert summary["runs"].get("done") == n, summary
        print(f"batch of {n} studies, {label}: 1 worker {times[1]:.1f} s, 2 workers {times[2]:.1f} s, "
              f"speed-up {times[1] / times[2]:.2f}x (target >= 1.7x)")
        report(f"batch of {n} on 2 workers, {label}", times[2], "s", target=times[1] / 1.7, baseline=times[1])
    finished = {r["study_uid"]: r["finished"] for r in Catalog(root / "batch2-None" / "catalog.sqlite").runs()}
    t = time.perf_counter()
    run_batch(archive, root / "batch2-None", BatchSettings(workers=2, progress=False))
    again = {r["study_uid"]: r["finished"] for r in Catalog(root / "batch2-None" / "catalog.sqlite").runs()}
    redone = sum(again[uid] != when for uid, when in finished.items())
    print(f"resume of the finished batch: {time.perf_counter() - t:.1f} s, studies redone: {redone} of {n}")
    report("studies redone by resuming a finished batch", redone, "studies", target=0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--studies", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        single_study(Path(tmp))
        batch(Path(tmp), args.studies)


if __name__ == "__main__":
    main()
