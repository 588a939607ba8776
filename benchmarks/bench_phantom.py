"""Time building the demo phantom study and the small pelvis test study (target: demo < 20 s).

Run: python -m benchmarks phantom. The pelvis study is the in-process baseline;
the ratio demo/pelvis is what to compare between runs on different machines.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.common import report
from localize.sample_data import StudySpec, make_study


def timed(spec: StudySpec) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        make_study(Path(tmp), spec)
        return time.perf_counter() - t0


def main() -> None:
    pelvis = min(timed(StudySpec(extent="pelvis", ct_matrix=256, with_mr=False)) for _ in range(2))
    demo = timed(StudySpec())
    print(f"pelvis test study (256, no MR): {pelvis:.2f} s")
    print(f"demo study (whole body, 512, MR): {demo:.2f} s  (target < 20 s)")
    print(f"ratio demo / pelvis: {demo / pelvis:.1f}")
    report("demo phantom study", demo, "s", target=20.0, baseline=pelvis)


if __name__ == "__main__":
    main()
