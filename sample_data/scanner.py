"""Scanner conventions of the phantom PET: protocol per tracer, radiopharmaceutical sequence, vendor tags.

docs/suv.md: DICOM attributes, decay reference time (GE series time after acquisition, private scan
datetime), units (Philips CNTS with 7053,1000 / 7053,1009), half-lives, tracers (activities, uptake times),
tracer recognition (CID 4020 / 4021 codes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from localize.load.tracer import HALF_LIFE_S

POSITRON_FRACTION = {"F18": 0.9686, "Ga68": 0.8883}  # docs/suv.md#half-lives
NUCLIDE_CODE = {"F18": ("77004003", "SCT", "^18^Fluorine"), "Ga68": ("35337001", "SCT", "^68^Gallium")}


@dataclass(frozen=True)
class Protocol:
    """Tracer protocol: agent code (CID 4021), nuclide, activity (Bq, or Bq/kg when per_kg), uptake (s)."""

    agent: tuple[str, str, str]
    text: str
    nuclide: str
    activity_bq: float
    per_kg: bool
    uptake_s: float
    caudocranial: bool


PROTOCOLS = {
    "psma11": Protocol(("C118961", "NCIt", "PSMA-11 Ga^68^"), "Ga-68 PSMA-11", "Ga68", 2.0e6, True, 3600, False),
    "dcfpyl": Protocol(("C116352", "NCIt", "DCFPyL F^18^"), "F-18 DCFPyL", "F18", 333e6, False, 3600, False),
    "psma1007": Protocol(("126758", "DCM", "PSMA-1007 F^18^"), "F-18 PSMA-1007", "F18", 4.0e6, True, 5400, False),
    "fluciclovine": Protocol(("C-E026A", "SRT", "Fluciclovine F^18^"), "F-18 Fluciclovine", "F18", 370e6, False,
                             240, True),
}
FRAME_S = 120.0
BED_MM = 160.0
GE_SERIES_DELAY_S = 1200.0  # GE writes SeriesTime when the series is reconstructed, after acquisition
PHILIPS_ACTIVITY_FACTOR = 4.25  # (7053,1009) Bq/mL per stored count unit, the phantom's choice
# NM/PET Patient Orientation module (PS3.3 C.8.4.6), SNOMED CT codes of PS3.16: recumbent (CID 19), supine
# (CID 20), headfirst and feet-first (CID 21) by PatientPosition
RECUMBENT = ("102538003", "SCT", "recumbent")
SUPINE = ("40199007", "SCT", "supine")
GANTRY_RELATIONSHIP = {"HFS": ("102540008", "SCT", "headfirst"), "FFS": ("102541007", "SCT", "feet-first")}


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, scheme, meaning
    return c


def patient_orientation(patient_position: str) -> dict[str, Sequence]:
    """The NM/PET Patient Orientation module (PS3.3 C.8.4.6) of a man lying supine, ``patient_position`` HFS or
    FFS. A PET has it in place of PatientPosition, which is not present with it (PS3.3 C.7.3.1)."""
    orientation = _code(*RECUMBENT)
    orientation.PatientOrientationModifierCodeSequence = Sequence([_code(*SUPINE)])
    return {"PatientOrientationCodeSequence": Sequence([orientation]),
            "PatientGantryRelationshipCodeSequence": Sequence([_code(*GANTRY_RELATIONSHIP[patient_position])])}


def dose_bq(tracer: str, weight_kg: float) -> float:
    p = PROTOCOLS[tracer]
    return p.activity_bq * weight_kg if p.per_kg else p.activity_bq


def radiopharmaceutical_item(tracer: str, injection: datetime, dose: float) -> Dataset:
    """Item of RadiopharmaceuticalInformationSequence (0054,0016) with codes, dose, times, half-life."""
    p = PROTOCOLS[tracer]
    item = Dataset()
    item.Radiopharmaceutical = p.text
    item.RadiopharmaceuticalStartTime = injection.strftime("%H%M%S.00")
    item.RadiopharmaceuticalStartDateTime = injection.strftime("%Y%m%d%H%M%S.00")
    item.RadionuclideTotalDose = f"{dose:.1f}"
    item.RadionuclideHalfLife = str(HALF_LIFE_S[p.nuclide])
    item.RadionuclidePositronFraction = str(POSITRON_FRACTION[p.nuclide])
    item.RadionuclideCodeSequence = Sequence([_code(*NUCLIDE_CODE[p.nuclide])])
    item.RadiopharmaceuticalCodeSequence = Sequence([_code(*p.agent)])
    return item


def suv_to_bqml_factor(tracer: str, weight_kg: float, dose: float) -> float:
    """Bq/mL per SUVbw unit with decay correction to the PET start (docs/suv.md#definitions, #decaycorrection-modes)."""
    p = PROTOCOLS[tracer]
    decayed = dose * 2.0 ** (-p.uptake_s / HALF_LIFE_S[p.nuclide])
    return decayed / (weight_kg * 1000.0)


def bed_start_s(z_mm: np.ndarray, z_lo: float, z_hi: float, caudocranial: bool) -> np.ndarray:
    """Start of the bed position holding each slice, seconds after the series start."""
    offset = (np.asarray(z_mm) - z_lo) if caudocranial else (z_hi - np.asarray(z_mm))
    return np.floor(offset / BED_MM) * FRAME_S


def t_avg_s(half_life_s: float, frame_s: float) -> float:
    """Average-count time within a frame (docs/suv.md#average-count-time)."""
    lam = np.log(2) / half_life_s
    return float(np.log(lam * frame_s / (1 - np.exp(-lam * frame_s))) / lam)
