"""Privacy: no names or birth dates in logs by default; --deidentify pseudonymises with a keyed hash."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from localize.export.privacy import pseudo_uid, pseudonym, scrub
from localize.findings import validate_findings

pytestmark = pytest.mark.slow

KEY = "a secret the outputs must not hold"


def text_outputs(out: Path) -> str:
    """Every non-DICOM output as text, the catalog dumped row by row."""
    parts = []
    for path in sorted(out.rglob("*")):
        if path.is_file() and path.suffix not in (".dcm", ".sqlite", ".parquet") and "sqlite" not in path.name:
            parts.append(path.read_text(errors="replace"))
    db = sqlite3.connect(out / "catalog.sqlite")
    parts += [repr(row) for table in ("patients", "studies", "series", "runs", "settings")
              for row in db.execute(f"SELECT * FROM {table}")]
    db.close()
    return "\n".join(parts)


def identity(archive: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in archive.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for keyword in ("PatientName", "PatientBirthDate", "PatientID", "StudyInstanceUID", "SeriesInstanceUID"):
            if ds.get(keyword):
                found.setdefault(keyword, set()).add(str(ds.get(keyword)))
    return found


def batch(archive: Path, out: Path, pipeline: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "localize", "batch", str(archive), "--out", str(out),
                           "--pipeline", str(pipeline), *extra], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def runs(small_archive, tmp_path_factory):
    archive, pipeline = small_archive
    plain, private = tmp_path_factory.mktemp("plain"), tmp_path_factory.mktemp("private")
    return (archive, pipeline, plain, batch(archive, plain, pipeline),
            private, batch(archive, private, pipeline, "--deidentify", KEY))


def test_pseudonyms_are_hmac_sha256_under_the_key():
    expected = hmac.new(KEY.encode(), b"id\0PHANTOM0031", hashlib.sha256).hexdigest()[:16]
    assert pseudonym(KEY, "PHANTOM0031") == expected
    assert pseudonym("another key", "PHANTOM0031") != expected
    uid = pseudo_uid(KEY, "1.2.3.4")
    digest = hmac.new(KEY.encode(), b"uid\x001.2.3.4", hashlib.sha256).digest()[:16]
    assert uid == "2.25." + str(int.from_bytes(digest, "big")) and len(uid) <= 64


def test_scrub_replaces_identifiers_and_removes_dates_and_descriptions():
    doc = {"study": {"patient_id": "PAT12345", "study_date": "20240315"},
           "warnings": ["file /data/PAT12345/ct.dcm: odd"], "series": {"pet": {"description": "WB PSMA"}}}
    clean = scrub(doc, {"PAT12345": "p-1"})
    assert clean == {"study": {"patient_id": "p-1", "study_date": None},
                     "warnings": ["file /data/p-1/ct.dcm: odd"], "series": {"pet": {"description": None}}}


def test_default_outputs_and_logs_carry_no_names_or_birth_dates(runs):
    archive, _, plain, result, _, _ = runs
    assert result.returncode == 0, result.stderr[-2000:]
    who = identity(archive)
    assert who["PatientName"] and who["PatientBirthDate"]
    everything = text_outputs(plain) + result.stdout + result.stderr
    for value in who["PatientName"] | who["PatientBirthDate"]:
        assert value not in everything
        assert value.replace("^", " ") not in everything


def test_deidentified_batch_holds_no_identifiers_and_not_the_key(runs):
    archive, _, _, _, private, result = runs
    assert result.returncode == 0, result.stderr[-2000:]
    who = identity(archive)
    everything = text_outputs(private) + result.stdout + result.stderr
    assert KEY not in everything
    for keyword, values in who.items():
        for value in values:
            assert value not in everything, (keyword, value)
    db = sqlite3.connect(private / "catalog.sqlite")
    keys = {k for (k,) in db.execute("SELECT patient_key FROM runs")}
    assert keys == {pseudonym(KEY, pid) for pid in who["PatientID"]}
    for findings in private.glob("studies/*/findings.json"):
        doc = json.loads(findings.read_text())
        validate_findings(doc)
        assert doc["study"]["study_instance_uid"] in {pseudo_uid(KEY, u) for u in who["StudyInstanceUID"]}
        assert doc["study"]["patient_id"] in keys and doc["study"]["study_date"] is None
    cohort = (private / "cohort.csv").read_text()
    assert all(k in cohort for k in keys)


def test_planning_dicom_exports_keep_the_identity_they_must_match(runs):
    archive, _, _, _, private, _ = runs
    who = identity(archive)
    rtstructs = list(private.glob("studies/*/rtstruct_ct.dcm"))
    assert rtstructs
    for path in rtstructs:
        ds = pydicom.dcmread(path)
        assert ds.PatientID in who["PatientID"] and ds.StudyInstanceUID in who["StudyInstanceUID"]


def test_a_resume_with_another_key_is_refused(runs):
    archive, pipeline, _, _, private, _ = runs
    again = batch(archive, private, pipeline, "--deidentify", "wrong key")
    assert again.returncode == 2 and "different --deidentify key" in again.stderr
    plain = batch(archive, private, pipeline)
    assert plain.returncode == 2 and "different --deidentify key" in plain.stderr
