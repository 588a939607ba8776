"""Pseudonymisation of the toolkit's own outputs with a keyed hash (``--deidentify KEY``).

What counts as identifying follows DICOM PS3.15 Annex E, Table E.1-1 (Basic
Application Level Confidentiality Profile): patient name, ID, birth date and
other IDs, accession number, study ID, the instance UIDs (study, series, SOP
instance, frame of reference) and dates and times are replaced or removed;
descriptions (study, series) are removed; patient weight, size, sex and age are
removed from what the tables report.

Identifiers become HMAC-SHA256 pseudonyms under the user's key: the same input
and key always give the same pseudonym (a resumed batch, or two batches of a
cohort, line up), and without the key they cannot be recomputed from a list
of candidate IDs. The key itself is never written to any output. UIDs become
``2.25.<decimal>`` UIDs (PS3.5 B.2) derived from the keyed hash.

DICOM objects meant for a planning system (RTSTRUCT, SEG, spatial
registration) keep the identity they must match and are not touched here.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Any

from pydicom.dataset import Dataset

# PS3.15 Table E.1-1: attributes the basic profile replaces (UIDs, IDs) or removes.
IDENTIFYING_KEYWORDS = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientBirthName", "PatientMotherBirthName",
    "OtherPatientIDs", "OtherPatientNames", "PatientAddress", "PatientTelephoneNumbers",
    "MedicalRecordLocator", "AccessionNumber", "StudyID", "ReferringPhysicianName",
    "PerformingPhysicianName", "OperatorsName", "InstitutionName", "InstitutionAddress",
    "StationName", "DeviceSerialNumber", "RequestingPhysician", "IssuerOfPatientID",
)
UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")
# Keys of the toolkit's own documents whose values the profile removes (dates, body size, descriptions).
_REMOVED_KEYS = ("date", "time", "datetime", "datetimes", "description", "weight_kg", "height_m", "sex", "age",
                 "patient_name", "birth_date")
_KEY_CHECK = b"localize key check"


def _digest(key: str | bytes, kind: str, value: str) -> bytes:
    secret = key.encode("utf-8") if isinstance(key, str) else key
    return hmac.new(secret, f"{kind}\0{value}".encode("utf-8", "replace"), hashlib.sha256).digest()


def pseudonym(key: str | bytes, value: str, kind: str = "id") -> str:
    """A 16-hex-digit keyed pseudonym of ``value`` (``kind`` keeps IDs and other values apart)."""
    return _digest(key, kind, value).hex()[:16]


def pseudo_uid(key: str | bytes, uid: str) -> str:
    """A valid DICOM UID (``2.25.`` + 128-bit decimal, at most 44 characters) standing for ``uid``."""
    return "2.25." + str(int.from_bytes(_digest(key, "uid", uid)[:16], "big"))


def key_check(key: str | bytes) -> str:
    """A value that tells whether two runs used the same key, without revealing it."""
    return pseudonym(key, _KEY_CHECK.decode(), "check")


def identifiers(headers: Iterable[Dataset], key: str | bytes) -> dict[str, str]:
    """Identifying values found in ``headers`` -> their replacements (pseudonyms, or ``removed``).

    Values shorter than 4 characters are left out: they cannot name anyone and
    would match by accident inside other text.
    """
    mapping: dict[str, str] = {}
    for ds in headers:
        for keyword in IDENTIFYING_KEYWORDS + UID_KEYWORDS:
            value = ds.get(keyword)
            values = value if isinstance(value, list | tuple) else [value]
            for v in values:
                text = str(v).strip() if v is not None else ""
                if len(text) >= 4 and text not in mapping:
                    mapping[text] = (pseudo_uid(key, text) if keyword in UID_KEYWORDS
                                     else pseudonym(key, text) if keyword == "PatientID" else "removed")
    return mapping


def scrub_text(text: str, mapping: dict[str, str]) -> str:
    """``text`` with every identifying value of ``mapping`` replaced (longest first)."""
    for value in sorted(mapping, key=len, reverse=True):
        if value in text:
            text = text.replace(value, mapping[value])
    return text


def scrub(doc: Any, mapping: dict[str, str]) -> Any:
    """A copy of a JSON-like document with identifiers replaced and profile-removed fields set to None."""
    if isinstance(doc, dict):
        return {k: None if _removed(k) and doc[k] is not None else scrub(v, mapping) for k, v in doc.items()}
    if isinstance(doc, list):
        return [scrub(v, mapping) for v in doc]
    if isinstance(doc, str):
        return scrub_text(doc, mapping)
    return doc


def _removed(key: str) -> bool:
    key = key.lower()
    return any(key == k or key.endswith("_" + k) for k in _REMOVED_KEYS)


def pseudonymise_records(patients: list[dict], series: list[dict], key: str | bytes) -> tuple[list[dict], list[dict]]:
    """Catalog rows (``localize.load.plan.catalog_records``) with pseudonyms; dates and descriptions removed."""
    def study(s: dict) -> dict:
        return s | {"study_uid": pseudo_uid(key, s["study_uid"]), "study_date": None}

    patients = [p | {"patient_key": pseudonym(key, p["patient_key"]), "patient_id": None,
                     "studies": [study(s) for s in p["studies"]]} for p in patients]
    series = [s | {"series_uid": pseudo_uid(key, s["series_uid"]), "study_uid": pseudo_uid(key, s["study_uid"]),
                   "description": None,
                   "frame_of_reference_uid": s["frame_of_reference_uid"]
                   and pseudo_uid(key, s["frame_of_reference_uid"])}
              for s in series]
    return patients, series


def pseudonymise_manifest(manifest: dict[str, Any], key: str | bytes) -> dict[str, Any]:
    """A run manifest with pseudonymous identity and folder name (the file paths are kept: the run needs them)."""
    uids = {role: manifest.get(role) and pseudo_uid(key, manifest[role]) for role in ("pet", "ct", "mr")}
    return manifest | uids | {
        "study_uid": pseudo_uid(key, manifest["study_uid"]),
        "patient_key": pseudonym(key, manifest["patient_key"]),
        "name": "study-" + pseudonym(key, manifest["study_uid"], "study"),
    }
