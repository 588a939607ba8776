"""Which tracer a PET series was made with, from its DICOM header.

Codes first (DICOM CID 4020 radionuclides and CID 4021 radiopharmaceuticals, in
both the legacy SNOMED-RT "SRT" and the SNOMED CT "SCT" eras), then free-text
patterns on Radiopharmaceutical (0018,0031), the code meanings and
SeriesDescription (docs/suv.md#tracer-recognition). Works on header-only datasets and never
raises: an unreadable value counts as absent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pydicom

from localize.tracers import PROFILES

#: The tracer families, one ``localize.tracers.TracerProfile`` each.
FAMILIES = tuple(PROFILES)

# Physical half-lives used when a nuclide must be told from RadionuclideHalfLife
# (0018,1075) alone (docs/suv.md#half-lives: 18F 6586.2 s, 68Ga 4062.6 s, 64Cu 45720 s; NNDC ENSDF).
HALF_LIFE_S = {"F18": 6586.2, "Ga68": 4062.6, "Cu64": 45720.0}

# CID 4020 PET radionuclide codes: SRT and SCT eras (DICOM PS3.16; dcmtk cid4020; docs/suv.md#tracer-recognition).
_NUCLIDE_CODES = {
    ("SRT", "C-111A1"): "F18",
    ("SCT", "77004003"): "F18",
    ("SRT", "C-131A3"): "Ga68",
    ("SCT", "35337001"): "Ga68",
    ("SRT", "C-127A2"): "Cu64",
    ("SCT", "3932008"): "Cu64",
}

# CID 4021 PET radiopharmaceutical codes -> (agent, nuclide implied by the code).
# PS3.16-2019a via dcmtk cid4021 (docs/suv.md#tracer-recognition); SCT equivalents from the
# current PS3.16 CID 4021 value set (fluciclovine 457000009, fluorocholine
# 456992002, FDG 35321007).
_AGENT_CODES = {
    ("NCIT", "C118961"): ("PSMA-11", "Ga68"),
    ("NCIT", "C116352"): ("DCFPyL", "F18"),
    ("DCM", "126758"): ("PSMA-1007", "F18"),
    ("DCM", "126759"): ("PSMA-617", "Ga68"),
    ("NCIT", "C96234"): ("DCFBC", "F18"),
    ("SRT", "C-E026A"): ("fluciclovine", "F18"),
    ("SCT", "457000009"): ("fluciclovine", "F18"),
    ("SRT", "C-E0273"): ("fluorocholine", "F18"),
    ("SCT", "456992002"): ("fluorocholine", "F18"),
    ("DCM", "126703"): ("choline", "C11"),
    ("SRT", "C-B1031"): ("FDG", "F18"),
    ("SCT", "35321007"): ("FDG", "F18"),
}

# Free-text patterns, most specific first (docs/suv.md#tracer-recognition).
_AGENT_PATTERNS = (
    ("PSMA-1007", re.compile(r"psma[-_ ]?1007")),
    ("PSMA-11", re.compile(r"psma[-_ ]?11|gozetotide|locametz|illuccix|hbed")),
    ("DCFPyL", re.compile(r"dcfpyl|piflufolastat|pylarify|pyl\b")),
    ("rhPSMA-7.3", re.compile(r"rh[-_ ]?psma|flotufolastat|posluma")),
    ("PSMA-617", re.compile(r"psma[-_ ]?617")),
    ("DCFBC", re.compile(r"dcfbc")),
    ("PSMA", re.compile(r"psma")),
    ("fluciclovine", re.compile(r"fluciclovine|facbc|axumin")),
    ("FDG", re.compile(r"fdg|fluorodeoxy|fludeoxy")),
    ("fluorocholine", re.compile(r"fluorocholine|fluoromethylcholine|\bfch\b")),
    ("choline", re.compile(r"choline")),
)

_NUCLIDE_PATTERNS = (
    ("Ga68", re.compile(r"ga[-_ ^]*68|68[-_ ^]*ga|gallium")),
    ("Cu64", re.compile(r"cu[-_ ^]*64|64[-_ ^]*cu|copper")),
    ("F18", re.compile(r"\bf[-_ ^]*18|18[-_ ^]*f|fluorine")),
)

# Agent -> family, from each family's profile.
_AGENT_FAMILY = {agent: profile.family for profile in PROFILES.values() for agent in profile.agents}


@dataclass(frozen=True)
class TracerInfo:
    """The tracer of a PET series.

    ``family`` drives thresholds, reference organs and excretion masks; it is
    "unknown" whenever the header does not say enough (e.g. an ¹⁸F PSMA agent
    that is not named: renal and hepatobiliary agents cannot be told apart).
    """

    family: str
    agent: str | None
    radionuclide: str | None  # "F18", "Ga68", "Cu64", other CID 4020 nuclide, or None
    radiopharmaceutical: str | None  # free text of (0018,0031), else the code meaning
    matched_by: str | None  # "code", "text" or None

    @property
    def contract_family(self) -> str:
        """The findings contract's family: "psma", "fluciclovine", "fdg" or "unknown"."""
        return contract_family(self.family)

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON sidecars and provenance."""
        return {
            "family": self.family,
            "contract_family": self.contract_family,
            "agent": self.agent,
            "radionuclide": self.radionuclide,
            "radiopharmaceutical": self.radiopharmaceutical,
            "matched_by": self.matched_by,
        }


def contract_family(family: str) -> str:
    """The findings contract's family ("psma", "fluciclovine", "fdg", "unknown") of a ``FAMILIES`` member."""
    return PROFILES[family].contract_family


def _get(ds: Any, keyword: str) -> Any:
    """``ds.keyword`` or None when absent or unreadable (malformed values)."""
    try:
        return ds.get(keyword) if isinstance(ds, pydicom.Dataset) else None
    except Exception:  # a malformed element must not stop tracer recognition
        return None


def _text(value: Any) -> str | None:
    """A value as a stripped string, or None when empty or unreadable."""
    if value is None:
        return None
    try:
        text = str(value).strip()
    except Exception:  # str() of a malformed value
        return None
    return text or None


def _items(ds: Any, keyword: str) -> list[pydicom.Dataset]:
    """The items of a sequence attribute that are datasets (empty if none)."""
    value = _get(ds, keyword)
    try:
        return [item for item in value if isinstance(item, pydicom.Dataset)]
    except TypeError:  # absent or not a sequence
        return []


def _code_key(item: pydicom.Dataset) -> tuple[str, str] | None:
    """(scheme, value) of a code item, with scheme spellings normalised."""
    scheme = (_text(_get(item, "CodingSchemeDesignator")) or "").upper()
    value = _text(_get(item, "CodeValue"))
    if not value:
        return None
    scheme = {"SNM3": "SRT", "99SDM": "SRT", "SNOMED": "SCT", "NCI": "NCIT"}.get(scheme, scheme)
    return scheme, value.upper()


def _nuclide_from_half_life(ds: pydicom.Dataset) -> str | None:
    """The nuclide whose half-life is within 2 % of RadionuclideHalfLife, if any."""
    for info in _items(ds, "RadiopharmaceuticalInformationSequence")[:1]:
        try:
            half_life_s = float(_get(info, "RadionuclideHalfLife"))
        except (TypeError, ValueError):
            return None
        for nuclide, table_s in HALF_LIFE_S.items():
            if abs(half_life_s - table_s) <= 0.02 * table_s:
                return nuclide
    return None


def identify_tracer(ds: pydicom.Dataset) -> TracerInfo:
    """Recognise the tracer of a PET dataset (header only is enough); never raises."""
    infos = _items(ds, "RadiopharmaceuticalInformationSequence")
    info = infos[0] if infos else None
    agent_items = _items(info, "RadiopharmaceuticalCodeSequence")
    nuclide_items = _items(info, "RadionuclideCodeSequence")

    agent = nuclide = None
    matched_by = None
    for item in agent_items:
        key = _code_key(item)
        if key in _AGENT_CODES:
            agent, nuclide = _AGENT_CODES[key]
            matched_by = "code"
            break
    for item in nuclide_items:
        key = _code_key(item)
        if key in _NUCLIDE_CODES:
            nuclide = _NUCLIDE_CODES[key]
            break

    free_text = _text(_get(info, "Radiopharmaceutical"))
    meanings = [_text(_get(item, "CodeMeaning")) for item in agent_items + nuclide_items]
    texts = [t for t in [free_text, *meanings, _text(_get(ds, "SeriesDescription"))] if t]
    haystack = " | ".join(texts).lower()

    if agent is None:
        for name, pattern in _AGENT_PATTERNS:
            if pattern.search(haystack):
                agent, matched_by = name, "text"
                break
    if nuclide is None:
        for name, pattern in _NUCLIDE_PATTERNS:
            if pattern.search(haystack):
                nuclide = name
                break
    if nuclide is None:
        nuclide = _nuclide_from_half_life(ds)

    family = _AGENT_FAMILY.get(agent or "", "unknown")
    if agent == "PSMA" and nuclide == "Ga68":
        family = "psma_ga68"  # every ⁶⁸Ga PSMA ligand in use is excreted renally (docs/suv.md#tracers)
    radiopharmaceutical = free_text or next((m for m in meanings[: len(agent_items)] if m), None)
    return TracerInfo(family, agent, nuclide, radiopharmaceutical, matched_by)
