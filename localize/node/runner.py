"""Run a complete study: plan it as ``localize batch`` does, run it in a child process, queue its results.

The study's patient folder (every study received for that patient, so a PET/CT
study finds its MR) is indexed and planned by ``localize.load.plan.plan_studies``;
the pipeline is the configured one or, by default, chosen by tracer as
``localize run`` chooses it. The run itself is ``localize.batch.run.run_study_process``:
a child process watched for time and memory, so a crash never takes the node down.
Results land in ``STORAGE/results/studies/NAME`` (NAME carries no identity),
replacing an earlier run's; every run's DICOM objects have new Series and SOP
Instance UIDs, so a rerun's results reach the destinations as a new series.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pydicom

from localize.batch.run import run_study_process
from localize.errors import LocalizeError
from localize.export.privacy import pseudonymise_manifest
from localize.node.config import NodeConfig
from localize.node.queue import NodeQueue
from localize.node.report_capture import write_report_capture

LOG = logging.getLogger("localize.node")


def results_root(config: NodeConfig) -> Path:
    return config.storage / "results"


def clear_stale_attempts(config: NodeConfig) -> None:
    """Remove the temporary folders of runs a stopped node never finished."""
    for stale in (results_root(config) / "studies").glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


def run_next(queue: NodeQueue, config: NodeConfig, deidentify: str | None = None, identify=str) -> bool:
    """Run the oldest queued study, if any; True when one was run (whatever its outcome)."""
    claimed = queue.claim_next()
    if claimed is None:
        return False
    study_uid, folder, run_id = claimed
    try:
        _run(queue, config, study_uid, Path(folder), run_id, deidentify, identify)
    except LocalizeError as exc:
        queue.finish_run(run_id, status="failed", reason="input", error=exc.reason)
        LOG.warning("study %s not run: %s", identify(study_uid), "input error" if deidentify else exc.reason)
    except Exception as exc:  # a bug must not leave the study `running` and the queue stuck  # noqa: BLE001
        queue.finish_run(run_id, status="failed", reason="error", error=f"{type(exc).__name__}: {exc}"[:300])
        LOG.exception("study %s failed", identify(study_uid))
    return True


def _run(queue: NodeQueue, config: NodeConfig, study_uid: str, folder: Path, run_id: int, deidentify: str | None,
         identify) -> None:
    """Plan one claimed study, run it in a child process, record the run and queue its results' sends."""
    manifest = _manifest(folder, study_uid, config.pipeline)
    if isinstance(manifest, str):
        queue.finish_run(run_id, status="skipped", reason=manifest)
        LOG.info("study %s: nothing to run (%s)", identify(study_uid), manifest)
        return
    if deidentify:
        manifest = pseudonymise_manifest(manifest, deidentify)
    LOG.info("running study %s", identify(study_uid))
    row = run_study_process(manifest, str(results_root(config)), config.timeout_s, config.memory_limit_gb,
                            deidentify, config.threads)
    row.pop("study_uid")
    ok = row.pop("ok")
    sends = _sends(Path(row["out_dir"]), config, Path(manifest["files"]["pet"][0])) if ok else []
    state = queue.finish_run(run_id, status="done" if ok else "failed", sends=sends, **row)
    # A failure's text may quote input paths (patient and study folders): under deidentify only its kind is logged.
    why = row.get("reason") if deidentify else f"{row.get('reason')}: {row.get('error')}"
    LOG.info("study %s %s in %.1f s (now %s); %d result(s) to send", identify(study_uid),
             "done" if ok else f"failed ({why})", row["duration_s"], state, len(sends))


def _manifest(patient_study: Path, study_uid: str, pipeline: str | None) -> dict[str, Any] | str:
    """The run manifest of ``study_uid`` planned from its patient's folder, or why there is nothing to run."""
    from localize.load.index import index_folder
    from localize.load.plan import plan_studies

    for plan in plan_studies(index_folder(patient_study.parent)):
        if plan.study_uid == study_uid:
            return (plan.reason or plan.error) if plan.error else plan.manifest(pipeline=pipeline)
    return "no PET"


def _sends(out_dir: Path, config: NodeConfig, pet_file: Path) -> list[dict[str, Any]]:
    """One send per configured destination of each DICOM result the run wrote.

    The report goes as a Secondary Capture of the PET's study (``report_capture``), made here.
    """
    outputs = json.loads((out_dir / "findings.json").read_text())["outputs"]
    if "report" in config.destinations and "report_png" in outputs:
        outputs["report"] = str(write_report_capture(out_dir / Path(outputs["report_png"]).name, pet_file,
                                                     out_dir / "report_sc.dcm"))
    sends = []
    for kind, destinations in config.destinations.items():
        if kind not in outputs:
            continue
        path = out_dir / Path(outputs[kind]).name  # written in a temporary folder, renamed since
        sop_uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        sends += [{"kind": kind, "path": str(path), "sop_uid": sop_uid, "ae_title": d.ae_title, "host": d.host,
                   "port": d.port} for d in destinations]
    return sends
