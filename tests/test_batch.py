"""`localize batch` on a small archive of phantom studies: pairing, isolation, resume, scale-out."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers.data import tree_digest
from helpers.tools import dciodvfy_errors

from localize.batch.run import BatchSettings, run_batch, run_study_process
from localize.errors import LocalizeError
from localize.sample_data import LesionSpec

pytestmark = pytest.mark.slow

LESIONS = (LesionSpec("obturator", 12, 8.0, "left"), LesionSpec("bone_pelvis", 14, 12.0, "right"))


@pytest.fixture(scope="module")
def archive(phantom, tmp_path_factory):
    """Four patients: two good PET/CT + MR studies, a PET without SUV tags, a CT-only study; junk files."""
    root = tmp_path_factory.mktemp("archive")
    specs = [dict(seed=21, with_mr=True, lesions=LESIONS), dict(seed=22, with_mr=True, lesions=LESIONS[:1]),
             dict(seed=23, lesions=(), defect="no_radiopharmaceutical_sequence"),
             dict(seed=24, lesions=(), defect="no_pet")]
    for spec in specs:
        study_root, _ = phantom(**spec)
        shutil.copytree(study_root / "dicom", root / f"patient{spec['seed']}")
    (root / "notes.txt").write_text("not DICOM")
    (root / "patient21" / "truncated.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    return root


def catalog_rows(out: Path) -> dict[str, dict]:
    db = sqlite3.connect(out / "catalog.sqlite")
    db.row_factory = sqlite3.Row
    rows = {r["patient_key"]: dict(r) for r in db.execute("SELECT * FROM runs")}
    db.close()
    return rows


@pytest.fixture(scope="module")
def first_batch(archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch")
    before = tree_digest(archive)
    result = subprocess.run([sys.executable, "-m", "localize", "batch", str(archive), "--out", str(out),
                             "--workers", "2", "--quiet"], capture_output=True, text=True)
    return archive, out, result, before


def test_batch_records_every_study_and_goes_on_past_bad_ones(first_batch):
    archive, out, result, before = first_batch
    assert result.returncode == 1, result.stderr  # something failed, and the exit status says so
    rows = catalog_rows(out)
    by_patient = {row["patient_key"]: row for row in rows.values()}
    assert len(by_patient) == 4
    statuses = sorted(row["status"] for row in rows.values())
    assert statuses == ["done", "done", "failed", "skipped"], rows
    failed = next(r for r in rows.values() if r["status"] == "failed")
    assert failed["reason"] == "input" and "RadiopharmaceuticalInformationSequence" in failed["error"]
    skipped = next(r for r in rows.values() if r["status"] == "skipped")
    assert skipped["reason"] == "no PET"
    db = sqlite3.connect(out / "catalog.sqlite")
    unreadable = [p for (p,) in db.execute("SELECT path FROM unreadable")]
    assert any(p.endswith("truncated.dcm") for p in unreadable)
    assert "failed (input): 1" in result.stdout and "skipped (no PET): 1" in result.stdout
    assert tree_digest(archive) == before, "the archive must not be written"


def test_each_pet_study_is_paired_with_its_patients_mr_study(first_batch):
    _, out, _, _ = first_batch
    done = [r for r in catalog_rows(out).values() if r["status"] == "done"]
    for row in done:
        assert row["mr_series_uid"], row
        assert row["mr_days_apart"] is not None and 0 < row["mr_days_apart"] <= 90
        doc = json.loads((Path(row["out_dir"]) / "findings.json").read_text())
        assert doc["series"]["mr"]["series_instance_uid"] == row["mr_series_uid"]
        assert doc["study"]["study_instance_uid"] == row["study_uid"]


def test_cohort_table_holds_all_lesions_of_all_studies(first_batch):
    _, out, _, _ = first_batch
    cohort = pd.read_parquet(out / "cohort.parquet")
    done = [r for r in catalog_rows(out).values() if r["status"] == "done"]
    assert len(cohort) == sum(r["n_lesions"] for r in done) >= 3
    assert set(cohort["study_instance_uid"]) == {r["study_uid"] for r in done}
    assert pd.read_csv(out / "cohort.csv").shape == cohort.shape


def test_resume_redoes_no_finished_study_and_force_redoes_all(first_batch):
    archive, out, _, _ = first_batch
    before = {k: r["finished"] for k, r in catalog_rows(out).items() if r["status"] == "done"}
    summary = run_batch(archive, out, BatchSettings(workers=1, progress=False))
    after = catalog_rows(out)
    assert {k: after[k]["finished"] for k in before} == before
    assert summary["runs"]["done"] == 2
    run_batch(archive, out, BatchSettings(workers=1, progress=False, force=True))
    forced = catalog_rows(out)
    assert all(forced[k]["finished"] > before[k] for k in before)


def test_interrupted_run_is_redone_on_resume(first_batch):
    archive, out, _, _ = first_batch
    db = sqlite3.connect(out / "catalog.sqlite")
    key = next(k for k, r in catalog_rows(out).items() if r["status"] == "done")
    db.execute("UPDATE runs SET status='running' WHERE patient_key=?", (key,))  # as if killed mid-study
    db.commit()
    db.close()
    summary = run_batch(archive, out, BatchSettings(workers=1, progress=False))
    assert catalog_rows(out)[key]["status"] == "done" and summary["runs"]["done"] == 2


def test_a_second_batch_on_the_same_output_is_refused(first_batch):
    import fcntl

    archive, out, _, _ = first_batch
    with open(out / ".batch.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(LocalizeError, match="another batch"):
            run_batch(archive, out, BatchSettings(progress=False))


def test_timeout_and_memory_blowup_are_recorded_not_fatal(first_batch, tmp_path):
    _, out, _, _ = first_batch
    row = next(r for r in catalog_rows(out).values() if r["status"] == "done")
    db = sqlite3.connect(out / "catalog.sqlite")
    manifest = json.loads(db.execute("SELECT manifest FROM runs WHERE study_uid=?", (row["study_uid"],)).fetchone()[0])
    db.close()
    timed_out = run_study_process(manifest, str(tmp_path), timeout_s=0.5, memory_limit_gb=8)
    assert timed_out["ok"] is False and timed_out["reason"] == "timeout"
    starved = run_study_process(manifest, str(tmp_path), timeout_s=600, memory_limit_gb=0.15)
    assert starved["ok"] is False and starved["reason"] == "memory", starved
    assert not list((tmp_path / "studies").iterdir()), "a failed study leaves no output folder"


def test_batch_runs_on_an_existing_dask_scheduler(archive, tmp_path):
    from distributed import LocalCluster

    subset = tmp_path / "archive"  # one good study, one without SUV tags, one without PET
    for name in ("patient22", "patient23", "patient24"):
        shutil.copytree(archive / name, subset / name)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        summary = run_batch(subset, tmp_path / "out",
                            BatchSettings(scheduler=cluster.scheduler_address, progress=False))
    assert summary["runs"] == {"done": 1, "failed": 1, "skipped": 1}


def test_every_dicom_output_passes_dciodvfy(first_batch):
    """RTSTRUCTs on CT and MR and the Spatial Registration of each finished study are valid DICOM."""
    _, out, _, _ = first_batch
    outputs = sorted((out / "studies").glob("*/*.dcm"))
    assert {p.name for p in outputs} >= {"rtstruct_ct.dcm", "rtstruct_mr.dcm", "registration.dcm"}
    for path in outputs:
        errors = dciodvfy_errors(path)
        assert errors == [], (path.name, errors)
