"""The review page and the reviewed export on the demo study (whole body, 512 CT, MR).

Times: the run's ``viewer`` export (the review volumes, NIfTI), page load to
``window.localizeReady`` in headless chromium (target <= 3 s), and ``localize export``
after one rejection and one relabel (target <= 5 s). Each is also given as a ratio to a
baseline measured in the same process: reading the same volumes with nibabel.

    python -m benchmarks review     (from the repository root; builds the demo study once)
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from urllib3.exceptions import ReadTimeoutError

from benchmarks.common import report
from localize.demo import demo_study
from localize.export.nifti import read_nifti
from localize.load.volume import load_series
from localize.pipeline import run_study
from localize.review.actions import Review
from localize.review.server import ReviewServer
from localize.review.volumes import MR_FILE, PET_FILE, write_volumes

READY_TARGET_S, EXPORT_TARGET_S = 3.0, 5.0
READY_LIMIT_S = 900.0  # reported as "inf" beyond this
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1400,1000", "--use-angle=swiftshader", "--enable-unsafe-swiftshader")


def baseline_s(out: Path) -> float:
    """Seconds to read the review volumes and the label map into numpy with nibabel."""
    start = time.perf_counter()
    for path in sorted((out / "volumes").glob("*.nii.gz")) + [out / "lesions.nii.gz"]:
        np.asanyarray(nib.load(path).dataobj)
    return time.perf_counter() - start


def ready_s(url: str, profile: Path) -> float:
    """Seconds from navigation start to ``window.localizeReady`` (as the page measures it)."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    options.page_load_strategy = "eager"  # the volumes load after DOMContentLoaded; timed by the page
    for flag in FLAGS + (f"--user-data-dir={profile}",):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(url)
        deadline = time.monotonic() + READY_LIMIT_S
        while time.monotonic() < deadline:
            try:  # a page busy in software WebGL may not answer within the driver's 120 s
                ready_ms = driver.execute_script("return window.localizeReady ? window.localizeReadyMs : null")
            except (ReadTimeoutError, TimeoutException):
                continue
            if ready_ms is not None:
                return ready_ms / 1000
            time.sleep(0.5)
        return float("inf")
    finally:
        driver.quit()


def main() -> None:
    root, _ = demo_study()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        start = time.perf_counter()
        run_study(root / "dicom", out)
        run_s = time.perf_counter() - start
        export_s = json.loads((out / "provenance.json").read_text())["timings_s"]["export"]
        inputs = json.loads((out / "provenance.json").read_text())["inputs"]
        ct = load_series([Path(item["path"]) for item in inputs["ct"]]).image  # the CT at its own resolution
        images = {p.name: read_nifti(p) for p in (out / "volumes").glob("*.nii.gz")}
        start = time.perf_counter()  # the viewer export alone, again (the MR already in the PET frame)
        write_volumes(Path(tmp) / "again", images[PET_FILE], ct, images.get(MR_FILE),
                      np.eye(4) if MR_FILE in images else None)
        viewer_s = time.perf_counter() - start
        base = baseline_s(out)
        sizes = {p.name: p.stat().st_size / 1e6 for p in sorted((out / "volumes").glob("*.nii.gz"))}
        review = Review(out, "benchmark")
        lesions = json.loads((out / "findings.json").read_text())["lesions"]
        review.apply("decision", {"lesion": lesions[-1]["id"], "decision": "reject"})
        review.apply("relabel", {"lesion": lesions[0]["id"], "site": "obturator"})
        start = time.perf_counter()
        review.apply("export", {})
        reviewed_s = time.perf_counter() - start
        server = ReviewServer(out).start()
        try:
            page_s = ready_s(server.url, Path(tmp) / "profile")
        finally:
            server.stop()
    print(f"run {run_s:.1f} s (exports {export_s:.1f} s); viewer export {viewer_s:.2f} s; "
          f"volumes {', '.join(f'{k} {v:.1f} MB' for k, v in sizes.items())}")
    print(f"baseline: nibabel reads the volumes in {base:.2f} s")
    print(f"page ready  {page_s:6.2f} s  target {READY_TARGET_S:.0f} s  ratio to baseline {page_s / base:6.1f}")
    print(f"export      {reviewed_s:6.2f} s  target {EXPORT_TARGET_S:.0f} s  "
          f"ratio to baseline {reviewed_s / base:6.1f}")
    report("review page ready", page_s, "s", target=READY_TARGET_S, baseline=base)
    report("reviewed export", reviewed_s, "s", target=EXPORT_TARGET_S, baseline=base)


if __name__ == "__main__":
    main()
