"""Study staging: the PROMISE miTNM code string of findings.json (docs/classification.md#mitnm).

PROMISE V2 (Seifert et al. Eur Urol 2023) conventions, as in the public report
apps: miT0 / miTr / miT2u (one focus) / miT2m (several) / miT3a / miT3b / miT4;
miN0 / miN1 (one regional node region) / miN2 (two or more; regions counted
without laterality, EI-L + EI-R = one) with the region codes II, EI, OB (-L/-R),
PS, OP; miM0 or the present miM1a (CI-L/-R, RP, OE, SD), miM1b (uni = 1 bone
lesion, oligo = 2-3, diss = more) and miM1c (pul, hep, other) parts; then
"/ PSMA expression score highest H lowest L" when lesions have a miPSMA score.
PROMISE V1 (Eiber et al. JNM 2018) counts regions as miN1a / miN1b.
"""

from __future__ import annotations

from typing import Any

from localize.findings import Lesion

NODE_CODES = {"internal_iliac": "II", "external_iliac": "EI", "obturator": "OB", "presacral": "PS",
              "other_pelvic": "OP", "common_iliac": "CI", "retroperitoneal": "RP", "inguinal": "OE",
              "other_extrapelvic_node": "OE", "supradiaphragmatic": "SD"}
ORGAN_CODES = {"lung": "pul", "liver": "hep", "other_organ": "other"}
_SIDED = ("II", "EI", "OB", "CI")
_T_ORDER = ("miT2", "miT3a", "miT3b", "miT4")
_N_ORDER = ("II", "EI", "OB", "PS", "OP", "CI")
_M1A_ORDER = ("CI", "RP", "OE", "SD")


def _code(lesion: Lesion) -> str:
    code = NODE_CODES[lesion.site or ""]  # only nodal lesions have a code
    if code in _SIDED and lesion.laterality in ("left", "right"):
        code += "-L" if lesion.laterality == "left" else "-R"
    return code


def _ordered(codes: set[str], order: tuple[str, ...]) -> list[str]:
    return sorted(codes, key=lambda c: (order.index(c.split("-")[0]), c))


def stage(lesions: list[Lesion], *, status: str | None, promise_version: int = 2) -> dict[str, Any]:
    """``{"mit", "min", "mim", "summary"}`` of classified lesions; no lesion gives "miT0 miN0 miM0".

    Unclassified lesions (``region == "unclassified"``) count nowhere; the summary then says it is incomplete."""
    local = [les for les in lesions if les.region == "local"]
    if not local:
        mit = "miT0"
    elif status == "post_prostatectomy" or any(les.mitnm == "miTr" for les in local):
        mit = "miTr"
    else:
        worst = max((les.mitnm for les in local if les.mitnm in _T_ORDER), key=_T_ORDER.index, default="miT2")
        mit = ("miT2u" if len(local) == 1 else "miT2m") if worst == "miT2" else worst

    nodal = {_code(les) for les in lesions if les.region == "nodal"}
    regions = {c.split("-")[0] for c in nodal}
    if not nodal:
        min_ = "miN0"
    else:
        if promise_version == 1:
            n = "miN1a" if len(regions) == 1 else "miN1b"
        else:
            n = "miN1" if len(regions) == 1 else "miN2"
        min_ = f"{n} ({' '.join(_ordered(nodal, _N_ORDER))})"

    parts = []
    m1a = {_code(les) for les in lesions if les.region == "distant" and les.site in NODE_CODES}
    if m1a:
        parts.append(f"miM1a ({' '.join(_ordered(m1a, _M1A_ORDER))})")
    n_bone = sum(les.site == "bone" for les in lesions)
    if n_bone:
        parts.append(f"miM1b ({'uni' if n_bone == 1 else 'oligo' if n_bone <= 3 else 'diss'})")
    organs = {ORGAN_CODES[les.site] for les in lesions if les.site in ORGAN_CODES}
    if organs:
        parts.append(f"miM1c ({' '.join(sorted(organs, key=list(ORGAN_CODES.values()).index))})")
    mim = " ".join(parts) if parts else "miM0"

    summary = f"{mit} {min_} {mim}"
    unclassified = sum(les.region == "unclassified" for les in lesions)
    if unclassified:  # the string above counts only the lesions that could be placed
        summary += f" (incomplete: {unclassified} lesion{'s' if unclassified > 1 else ''} unclassified)"
    scores = [les.mipsma for les in lesions if les.mipsma is not None]
    if scores:
        summary += f" / PSMA expression score highest {max(scores)} lowest {min(scores)}"
    return {"mit": mit, "min": min_, "mim": mim, "summary": summary}
