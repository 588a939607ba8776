"""Visual uptake scores against reference regions: miPSMA (PSMA tracers) and fluciclovine suspicion.

miPSMA expression score (PROMISE, docs/detection.md#mipsma-expression-score): lesion SUVmax against the
SUVmean of blood pool, liver and parotid glands. V2 (Seifert et al. Eur Urol
2023): 0 if SUVmax <= blood pool, 1 if <= liver, 2 if <= parotid, else 3; V1
(Eiber et al. JNM 2018) uses < where V2 uses <=. For 18F-PSMA-1007
(hepatobiliary clearance) the spleen replaces the liver (PROMISE V2).

Fluciclovine (docs/detection.md#fluciclovine-criteria, [REC] rule of the Axumin label / EANM-SNMMI 2020
guideline): a lesion of at least 10 mm is suspicious when its SUVmax reaches the
L3 marrow SUVmean, a smaller one when its SUVmax exceeds the aortic blood pool.
"""

from __future__ import annotations

from typing import Any

from localize.findings import Lesion
from localize.tracers import tracer_profile

FLUCICLOVINE_SIZE_MM = 10.0


def reference_mean(references: dict[str, Any], name: str) -> float | None:
    """SUVmean of reference ``name`` (a ReferenceRegion or a dict with ``suv_mean``), None when absent."""
    ref = references.get(name)
    if ref is None:
        return None
    value = ref.get("suv_mean") if isinstance(ref, dict) else getattr(ref, "suv_mean", None)
    return None if value is None else float(value)


def mipsma_score(suv_max: float, blood_pool: float | None, liver: float | None, parotid: float | None,
                 promise_version: int = 2) -> int | None:
    """miPSMA 0-3 of one lesion, None when a reference the decision needs is missing."""
    for score, ref in enumerate((blood_pool, liver, parotid)):
        if ref is None:
            return None
        below = suv_max <= ref if promise_version == 2 else suv_max < ref
        if below:
            return score
    return 3


def expression_scores(lesions: list[Lesion], references: dict[str, Any], tracer_family: str,
                      promise_version: int = 2) -> list[Lesion]:
    """Set ``mipsma`` (PSMA families) or ``fluciclovine_suspicious`` (fluciclovine) on each lesion; returns them.

    ``tracer_family``: a localize.load.tracer family (``psma_ga68``, ``psma_f18_renal``,
    ``psma_f18_hepatobiliary``, ``fluciclovine`` ...) or the contract's ``psma``.
    """
    mipsma_organ = tracer_profile(tracer_family).mipsma_organ
    blood = reference_mean(references, "blood_pool")
    organ = reference_mean(references, mipsma_organ) if mipsma_organ is not None else None
    parotid = reference_mean(references, "parotid")
    marrow = reference_mean(references, "marrow_l3")
    marrow = marrow if marrow is not None else reference_mean(references, "marrow")
    for lesion in lesions:
        lesion.mipsma = mipsma_score(lesion.suv_max, blood, organ, parotid, promise_version) if mipsma_organ else None
        lesion.fluciclovine_suspicious = None
        if tracer_family == "fluciclovine":
            large = lesion.max_diameter_mm >= FLUCICLOVINE_SIZE_MM
            ref = marrow if large else blood
            if ref is not None:
                lesion.fluciclovine_suspicious = bool(lesion.suv_max >= ref if large else lesion.suv_max > ref)
    return lesions
