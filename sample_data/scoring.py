"""A run's findings.json scored against the truth of the phantom study it ran on.

A truth lesion is found when a lesion's target lies within max(its radius, one PET voxel) +
``MATCH_SLACK_MM`` of its centre; a lesion matching no truth lesion (nor lying that close to one:
a second detection on a true lesion is a split) is a false lesion.

SUVmax is scored twice: ``suv_error`` against the lesion's maximum on the PET as written (with its
noise: what a perfect delineation reads, so the error is the software's: units, decay, scaling,
delineation), and ``suv_error_noise_free`` against the noise-free PET (that error adds the scanner's
noise, which biases the maximum of a noisy region upwards: Boellaard et al. J Nucl Med 2004;45:1519-27).
Truth files without the written maximum fall back to the noise-free one.
"""

from __future__ import annotations

import numpy as np

MATCH_SLACK_MM = 4.0  # about one PET voxel beyond the lesion: a detection must sit on its true lesion


def score(truth, doc: dict, pet_voxel_mm: float) -> dict:
    """Truth lesions matched to the lesions of a findings.json ``doc`` (LPS mm): one row per truth lesion
    (found, distance mm, labels given, SUVmax error as a fraction) and the false lesions."""
    found = doc["lesions"]
    used: set[int] = set()
    rows = []
    for t in truth.lesions:
        reach = max(t.diameter_mm / 2, pet_voxel_mm) + MATCH_SLACK_MM
        d = [np.linalg.norm(np.subtract(f["target_lps_mm"], t.center_lps_mm)) for f in found]
        i = int(np.argmin(d)) if d else -1
        hit = i >= 0 and d[i] <= reach
        if hit:
            used.add(i)
        f = found[i] if hit else None
        rows.append({"name": t.name, "diameter_mm": t.diameter_mm, "truth_region": t.region, "truth_site": t.site,
                     "found": hit, "distance_mm": float(d[i]) if hit else None,
                     "region": f["region"] if f else None, "site": f["site"] if f else None,
                     "suv_error": _relative(f, t.suv_max if t.suv_max_image is None else t.suv_max_image),
                     "suv_error_noise_free": _relative(f, t.suv_max)})
    false = []
    for i, f in enumerate(found):
        if i in used:
            continue
        near = min((np.linalg.norm(np.subtract(f["target_lps_mm"], t.center_lps_mm))
                    - max(t.diameter_mm / 2, pet_voxel_mm) for t in truth.lesions), default=np.inf)
        if near > MATCH_SLACK_MM:  # a second detection on a true lesion is a split, not a false lesion
            false.append({"target_lps_mm": f["target_lps_mm"], "suv_max": f["suv_max"], "site": f["site"]})
    return {"lesions": rows, "false": false}


def _relative(found: dict | None, truth_suv: float) -> float | None:
    """(found SUVmax - truth) / truth, None when nothing was found."""
    return None if found is None else (found["suv_max"] - truth_suv) / truth_suv
