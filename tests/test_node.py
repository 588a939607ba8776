"""`localize node` against real Orthanc servers: receive, run, send; kill -9 and resume; refusals; DICOMweb."""

from __future__ import annotations

import copy
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from helpers.orthanc import Orthanc, free_port
from helpers.tools import dciodvfy_errors
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from localize.cli import main
from localize.export.privacy import pseudo_uid
from localize.node.config import load_node_config
from localize.node.queue import NodeQueue
from localize.sample_data import LesionSpec

pytestmark = pytest.mark.slow

NODE_AET = "LOCALIZE"
# The smallest phantom the tests use (128 CT matrix, pelvis, one nodal lesion), with an MR so a registration goes out.
SPEC = dict(seed=31, ct_matrix=128, with_mr=True, lesions=(LesionSpec("obturator", 12, 8.0, "left"),))
PIPELINE = "extends: psma-salvage-rt\nexports: [findings, rtstruct, seg, registration, report]\n"


@pytest.fixture(scope="module")
def study(phantom):
    root, _ = phantom(**SPEC)
    return sorted((root / "dicom").rglob("*.dcm"))


def write_config(folder: Path, *, port: int, destinations: dict, quiet_s: float = 1.0, quota_gb: float = 1.0,
                 allowed=("PACS",), tls: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fast.yaml").write_text(PIPELINE)
    doc = {"ae_title": NODE_AET, "port": port, "host": "127.0.0.1", "storage": "storage",
           "allowed_calling_ae_titles": list(allowed), "quiet_period_s": quiet_s, "quota_gb": quota_gb,
           "pipeline": "fast.yaml", "timeout_s": 300, "retry": {"first_s": 0.5, "max_s": 2},
           "destinations": {kind: {"ae_title": ae, "host": "127.0.0.1", "port": p}
                            for kind, (ae, p) in destinations.items()}} | ({"tls": tls} if tls else {})
    path = folder / "node.yaml"
    path.write_text(json.dumps(doc))  # JSON is YAML
    return path


class Node:
    """``localize node --config FILE`` in a child process."""

    def __init__(self, config: Path):
        self.config_path = config
        self.config = load_node_config(config)
        self.process: subprocess.Popen | None = None

    def start(self, deidentify: str | None = None) -> Node:
        self.stderr = open(self.config_path.parent / "node.stderr", "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "localize", "node", "--config", str(self.config_path)]
                                        + (["--deidentify", deidentify] if deidentify else []),
                                        stdout=subprocess.DEVNULL, stderr=self.stderr)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            if echo(self.config.port, tls=self.config.tls):
                return self
            time.sleep(0.1)
        raise AssertionError("the node did not answer C-ECHO within 60 s")

    def stop(self, sig=signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        self.stderr.close()
        return code

    def log(self) -> str:
        path = self.config_path.parent / "node.stderr"
        return path.read_text(errors="replace") if path.exists() else ""

    def rows(self, table: str, where: str = "", args: tuple = ()) -> list[dict]:
        db = sqlite3.connect(self.config.queue_path, timeout=30)
        db.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in db.execute(f"SELECT * FROM {table} {where}", args)]
        finally:
            db.close()

    def wait_for(self, what: str, check, timeout: float = 180):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()[-3000:]
            value = check()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}:\n{self.log()[-3000:]}")


def echo(port: int, calling: str = "PACS", tls=None) -> bool:
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title=NODE_AET,
                         tls_args=(tls.client_context(), "127.0.0.1") if tls else None)
    if not assoc.is_established:
        return False
    ok = assoc.send_c_echo().Status == 0
    assoc.release()
    return ok


def store(port: int, datasets, calling: str = "PACS") -> list[Dataset]:
    """C-STORE ``datasets`` to the node; the replies (or the association, when refused)."""
    ae = AE(ae_title=calling)
    for sop_class in {str(ds.SOPClassUID) for ds in datasets}:
        ae.add_requested_context(sop_class, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title=NODE_AET)
    if not assoc.is_established:
        return assoc
    replies = [assoc.send_c_store(ds) for ds in datasets]
    assoc.release()
    return replies


@pytest.fixture(scope="module")
def round_trip(study, tmp_path_factory):
    """PACS Orthanc -> node -> planning Orthanc (down at first, started once a send failed) and PACS."""
    root = tmp_path_factory.mktemp("round_trip")
    node_port = free_port()
    pacs = Orthanc(root / "pacs", "PACS", {"node": (NODE_AET, node_port)}).start()
    planning = Orthanc(root / "planning", "PLANNING")
    config = write_config(root / "node", port=node_port, destinations={
        "rtstruct": ("PLANNING", planning.dicom_port), "seg": ("PACS", pacs.dicom_port),
        "registration": ("PACS", pacs.dicom_port), "report": ("PACS", pacs.dicom_port)})
    node = Node(config).start()
    try:
        patients = pacs.upload(study)
        pacs.store_to("node", patients)
        received_all = time.monotonic()
        node.wait_for("a failed send to the planning system",
                      lambda: node.rows("sends", "WHERE kind='rtstruct' AND attempts>0 AND status='pending'"))
        planning.start()
        node.wait_for("every send", lambda: node.rows("sends") and all(
            s["status"] == "sent" for s in node.rows("sends")))
        status = subprocess.run([sys.executable, "-m", "localize", "node", "status", "--config", str(config)],
                                capture_output=True, text=True)
        yield dict(pacs=pacs, planning=planning, node=node, status=status, seconds=time.monotonic() - received_all)
    finally:
        node.stop()
        planning.stop()
        pacs.stop()


def test_round_trip_returns_valid_rtstruct_seg_registration_and_report(round_trip, study, tmp_path):
    pacs, planning, node = round_trip["pacs"], round_trip["planning"], round_trip["node"]
    assert len(node.rows("instances")) == len(study)
    runs = node.rows("runs")
    assert sorted(r["status"] for r in runs) == ["done", "skipped"], runs  # the PET/CT study; the MR study alone
    (run,) = [r for r in runs if r["status"] == "done"]
    returned = {"RTSTRUCT": planning.instances_of("RTSTRUCT"), "SEG": pacs.instances_of("SEG"),
                "REG": pacs.instances_of("REG"), "OT": pacs.instances_of("OT")}  # OT: the report, Secondary Capture
    assert {k: len(v) for k, v in returned.items()} == {"RTSTRUCT": 1, "SEG": 1, "REG": 1, "OT": 1}
    sent_uids = {s["sop_uid"] for s in node.rows("sends")}
    for modality, (instance,) in returned.items():
        path = tmp_path / f"{modality}.dcm"
        path.write_bytes(planning.get(f"/instances/{instance['ID']}/file") if modality == "RTSTRUCT"
                         else pacs.get(f"/instances/{instance['ID']}/file"))
        assert dciodvfy_errors(path) == [], modality
        assert str(pydicom.dcmread(path).SOPInstanceUID) in sent_uids
    findings = json.loads((Path(run["out_dir"]) / "findings.json").read_text())
    assert findings["lesions"], "the phantom's lesion must be found"
    rtstruct = pydicom.dcmread(tmp_path / "RTSTRUCT.dcm")
    names = {roi.ROINumber: roi.ROIName for roi in rtstruct.StructureSetROISequence}
    targets = {names[c.ReferencedROINumber]: np.asarray(c.ContourSequence[0].ContourData, float)
               for c in rtstruct.ROIContourSequence if names[c.ReferencedROINumber].startswith("TGT_")}
    assert len(targets) == len(findings["lesions"])
    for lesion in findings["lesions"]:
        (point,) = [p for name, p in targets.items() if name.startswith(f"TGT_{lesion['id']:02d}")]
        assert np.linalg.norm(point - np.asarray(lesion["target_lps_mm"])) <= 0.5


def test_a_destination_down_at_first_gets_its_results_once(round_trip):
    node, planning = round_trip["node"], round_trip["planning"]
    (rtstruct_send,) = node.rows("sends", "WHERE kind='rtstruct'")
    assert rtstruct_send["status"] == "sent" and rtstruct_send["attempts"] >= 2 and rtstruct_send["sent"]
    time.sleep(1.5)  # longer than the backoff's ceiling: nothing is sent twice
    assert len(planning.instances_of("RTSTRUCT")) == 1
    assert len(node.rows("sends", "WHERE status='sent'")) == 4


def test_status_lists_studies_sends_and_failures(round_trip):
    status = round_trip["status"]
    assert status.returncode == 0, status.stderr
    assert "done 1" in status.stdout and "skipped 1" in status.stdout  # the PET/CT study, and the MR study
    assert "PLANNING@127.0.0.1" in status.stdout and "sent" in status.stdout


def test_kill_9_while_receiving_loses_nothing_and_runs_once(study, tmp_path):
    node_port = free_port()
    pacs = Orthanc(tmp_path / "pacs", "PACS", {"node": (NODE_AET, node_port)}).start()
    node = Node(write_config(tmp_path / "node", port=node_port, destinations={}, quiet_s=2.0)).start()
    try:
        patients = pacs.upload(study)
        pacs.store_to("node", patients, synchronous=False)
        node.wait_for("some instances", lambda: len(node.rows("instances")) >= 5, timeout=60)
        node.stop(signal.SIGKILL)
        before = len(node.rows("instances"))
        assert before < len(study) and not node.rows("runs")  # killed in the middle of receiving
        node.start()
        pacs.store_to("node", patients)  # the PACS sends the study again; what arrived before is a no-op
        node.wait_for("the run", lambda: [r for r in node.rows("studies") if r["state"] in ("done", "failed")]
                      and not node.rows("studies", "WHERE state IN ('receiving', 'queued', 'running')"))
        assert len(node.rows("instances")) == len(study) >= before
        runs = node.rows("runs")
        assert sorted(r["status"] for r in runs) == ["done", "skipped"], runs  # PET/CT run once; MR: nothing to run
        assert node.stop() == 0  # SIGTERM: a clean stop
    finally:
        if node.process.poll() is None:
            node.stop(signal.SIGKILL)
        pacs.stop()


def test_refuses_unknown_callers_past_quota_and_malformed_data_with_logged_reasons(study, tmp_path):
    """Under --deidentify, the log names instances by pseudonyms only."""
    node_port = free_port()
    ct = pydicom.dcmread(next(f for f in study if pydicom.dcmread(f, stop_before_pixels=True).Modality == "CT"))
    size = len(ct.PixelData) + 2000
    node = Node(write_config(tmp_path / "node", port=node_port, destinations={}, quiet_s=600,
                             quota_gb=2.5 * size / 2**30)).start(deidentify="a secret")
    try:
        refused = store(node_port, [ct], calling="INTRUDER")
        assert refused.is_rejected
        malformed = copy.deepcopy(ct)
        malformed.SOPInstanceUID = generate_uid()
        malformed.Rows = malformed.Columns = 60000
        changed = copy.deepcopy(ct)
        changed.PatientWeight = 99
        others = []
        for _n in range(3):
            other = copy.deepcopy(ct)
            other.SOPInstanceUID = generate_uid()
            others.append(other)
        replies = store(node_port, [malformed, ct, ct, changed, *others])
        statuses = [int(r.Status) for r in replies]
        assert statuses[:4] == [0xC000, 0x0000, 0x0000, 0xC000]  # malformed; stored; same again; changed content
        assert statuses[4] == 0x0000 and 0xA700 in statuses[5:]  # the quota
        assert "header declares" in str(replies[0].ErrorComment)
        rejections = node.rows("rejections")
        reasons = " | ".join(r["reason"] for r in rejections)
        assert "'INTRUDER'" in reasons and "header declares 60000 x 60000" in reasons
        assert "different content" in reasons and "quota" in reasons
        assert len(node.rows("instances")) == 2 + statuses[5:].count(0)
        assert len(list((node.config.storage / "conflicts").rglob("*.dcm"))) == 1
        second = CliRunner().invoke(main, ["node", "--config", str(node.config_path)])
        assert second.exit_code == 2 and "another node is already running on this storage folder" in second.stderr
        log = (node.config.storage / "node.log").read_text()
        assert "INTRUDER" in log and "header declares" in log and "0xA700" in log
        assert str(ct.SOPInstanceUID) not in log and pseudo_uid("a secret", str(ct.SOPInstanceUID)) in log
    finally:
        node.stop()


def test_dicomweb_fetch_and_stow(round_trip, study, tmp_path):
    pacs, planning = round_trip["pacs"], round_trip["planning"]
    pet = pydicom.dcmread(next(f for f in study if "PET" in f.parts), stop_before_pixels=True)
    in_study = [f for f in study if pydicom.dcmread(f, stop_before_pixels=True).StudyInstanceUID
                == pet.StudyInstanceUID]
    fetched = subprocess.run([sys.executable, "-m", "localize", "fetch", "--dicomweb", f"{pacs.url}/dicom-web",
                              "--study", str(pet.StudyInstanceUID), str(tmp_path / "fetched")],
                             capture_output=True, text=True)
    assert fetched.returncode == 0, fetched.stderr
    files = sorted((tmp_path / "fetched").rglob("*.dcm"))
    (orthanc_id,) = [hit["ID"] for hit in pacs.post("/tools/lookup", str(pet.StudyInstanceUID).encode())]
    held = {i["MainDicomTags"]["SOPInstanceUID"] for i in pacs.get(f"/studies/{orthanc_id}/instances")}
    fetched_uids = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files}
    assert fetched_uids == held and len(files) == len(held)  # the phantom's PET/CT and the node's SEG and REG
    assert {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in in_study} <= fetched_uids
    before = len(planning.instances_of("SEG"))
    pipeline = tmp_path / "fast.yaml"
    pipeline.write_text("extends: psma-salvage-rt\nexports: [findings, rtstruct, seg]\n")
    run = subprocess.run([sys.executable, "-m", "localize", "run", str(tmp_path / "fetched"), "--out",
                          str(tmp_path / "out"), "--pipeline", str(pipeline), "--stow", f"{planning.url}/dicom-web"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "stored 2 DICOM object(s)" in run.stdout
    seg_uid = str(pydicom.dcmread(tmp_path / "out" / "seg_pet.dcm", stop_before_pixels=True).SOPInstanceUID)
    segs = planning.instances_of("SEG")
    assert len(segs) == before + 1 and seg_uid in {s["MainDicomTags"]["SOPInstanceUID"] for s in segs}


def test_tls_associations_only(tmp_path):
    """With tls in the file, a TLS peer with a certificate from the CA is served; a plain one is not."""
    pem = tmp_path / "node"
    pem.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localize",
                    "-keyout", str(pem / "key.pem"), "-out", str(pem / "cert.pem")], check=True, capture_output=True)
    tls = {"cert": "cert.pem", "key": "key.pem", "ca": "cert.pem"}
    node = Node(write_config(pem, port=free_port(), destinations={}, tls=tls)).start()  # answers C-ECHO over TLS
    try:
        assert not echo(node.config.port)
    finally:
        assert node.stop() == 0


def test_fetch_from_an_unreachable_service_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["fetch", "--dicomweb", f"http://127.0.0.1:{free_port()}/dicom-web",
                                       "--study", "1.2.3", str(tmp_path / "x")])
    assert result.exit_code == 2 and result.stderr.startswith("localize: error: http://127.0.0.1:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_study_that_grows_after_its_run_is_run_again_and_replaces_pending_sends(tmp_path):
    with NodeQueue(tmp_path / "queue.sqlite") as queue:
        def receive(sop: str, now: float) -> None:
            queue.record_instance(sop_uid=sop, study_uid="1.2.3", series_uid="1.2.3.1", sop_class_uid="1.2",
                                  patient_key="P", folder="f", path=f"{sop}.dcm", size=10, sha256=sop,
                                  calling_ae="PACS", now=now)

        receive("1.1", now=time.time() - 10)
        assert queue.queue_quiet_studies(5.0) == ["1.2.3"]
        study_uid, _, first = queue.claim_next()
        send = {"kind": "rtstruct", "path": "a.dcm", "sop_uid": "9.1", "ae_title": "TPS", "host": "h", "port": 1}
        assert queue.finish_run(first, status="done", sends=[send]) == "done"
        receive("1.2", now=time.time())  # a late series
        assert queue.rows("studies")[0]["state"] == "receiving"
        assert queue.queue_quiet_studies(5.0) == []  # still in its quiet period
        assert queue.queue_quiet_studies(5.0, now=time.time() + 6) == ["1.2.3"]
        _, _, second = queue.claim_next()
        assert queue.finish_run(second, status="done", sends=[send | {"sop_uid": "9.2"}]) == "done"
        sends = {s["sop_uid"]: s["status"] for s in queue.rows("sends")}
        assert sends == {"9.1": "superseded", "9.2": "pending"}
        assert [r["n_instances"] for r in queue.rows("runs")] == [1, 2]


def test_restart_requeues_a_running_study_and_restarts_receiving_timers(tmp_path):
    with NodeQueue(tmp_path / "queue.sqlite") as queue:
        for study_uid, patient in (("1.1", "A"), ("2.1", "B")):
            queue.record_instance(sop_uid=study_uid + ".9", study_uid=study_uid, series_uid="1", sop_class_uid="1",
                                  patient_key=patient, folder="f", path="p", size=1, sha256="x", calling_ae="PACS",
                                  now=time.time() - 100)
        assert queue.queue_quiet_studies(50.0, now=time.time()) == ["1.1", "2.1"]
        queue.claim_next()
        queue.record_instance(sop_uid="3.9", study_uid="3.1", series_uid="1", sop_class_uid="1", patient_key="C",
                              folder="f", path="p", size=1, sha256="x", calling_ae="PACS", now=time.time() - 100)
        queue.recover()
        states = {r["study_uid"]: r["state"] for r in queue.rows("studies")}
        assert states == {"1.1": "queued", "2.1": "queued", "3.1": "receiving"}
        assert queue.queue_quiet_studies(50.0) == []  # the timer of 3.1 started again at the restart
        assert [r["status"] for r in queue.rows("runs")] == ["interrupted"]


@pytest.mark.parametrize("change, message", [
    ({"port": 70000}, "port must be a port number"),
    ({"ae_title": "A" * 17}, "is not an AE title"),
    ({"destinations": {"nifti": {"ae_title": "PACS", "host": "h", "port": 1}}}, "'nifti' is not a result"),
    ({"destinations": {"seg": {"ae_title": "PACS", "host": "h"}}}, "destinations.seg needs exactly"),
    ({"quota_gb": -1}, "quota_gb must be a positive number"),
    ({"colour": "blue"}, "unknown key(s) ['colour']"),
    ({"tls": {"cert": "c.pem", "key": "k.pem", "ca": "ca.pem"}}, "tls.cert: no such file"),
])
def test_a_bad_node_file_is_one_line_naming_it(tmp_path, change, message):
    config = write_config(tmp_path, port=11112, destinations={})
    doc = json.loads(config.read_text()) | change
    config.write_text(json.dumps(doc))
    result = CliRunner().invoke(main, ["node", "status", "--config", str(config)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"localize: error: {config}: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_late_series_runs_the_study_again_and_sends_new_series(round_trip):
    """Run last on the round trip: a structure set arriving after the run (a late series of the PET/CT study)."""
    node, planning = round_trip["node"], round_trip["planning"]
    (first,) = node.rows("runs", "WHERE status='done'")
    first_sent = {s["sop_uid"] for s in node.rows("sends")}
    series_before = rtstruct_series(planning)
    late = pydicom.dcmread(next(Path(first["out_dir"]).glob("rtstruct_*.dcm")))
    late.SeriesInstanceUID, late.SOPInstanceUID = generate_uid(), generate_uid()
    late.file_meta.MediaStorageSOPInstanceUID = late.SOPInstanceUID
    assert [int(r.Status) for r in store(node.config.port, [late])] == [0]
    node.wait_for("the second run's sends", lambda: len(node.rows("runs", "WHERE status='done'")) == 2 and all(
        s["status"] == "sent" for s in node.rows("sends")) and len(node.rows("sends")) == 8)
    second = node.rows("runs", "WHERE status='done' ORDER BY id")[-1]
    assert second["study_uid"] == first["study_uid"] and second["n_instances"] == first["n_instances"] + 1
    assert second["out_dir"] == first["out_dir"]  # the results folder is replaced
    new_sent = {s["sop_uid"] for s in node.rows("sends", "WHERE run_id=?", (second["id"],))}
    assert len(new_sent) == 4 and not new_sent & first_sent
    assert len(rtstruct_series(planning) - series_before) == 1  # the new results, under a new series beside the old


def rtstruct_series(orthanc: Orthanc) -> set[str]:
    return {orthanc.get(f"/instances/{i['ID']}/tags?simplify")["SeriesInstanceUID"]
            for i in orthanc.instances_of("RTSTRUCT")}


def test_a_node_file_with_every_key_loads_with_paths_beside_it(tmp_path):
    (tmp_path / "fast.yaml").write_text(PIPELINE)
    (tmp_path / "node.yaml").write_text(
        "ae_title: LOCALIZE\nport: 11112\nstorage: data\nallowed_calling_ae_titles: [PACS, PACS2]\n"
        "quiet_period_s: 5\nquota_gb: 0.5\npipeline: fast.yaml\ntimeout_s: 60\nmemory_limit_gb: 2\nthreads: 2\n"
        "retry: {first_s: 1, max_s: 8}\n"
        "destinations:\n  rtstruct: [{ae_title: TPS, host: 10.0.0.5, port: 104},"
        " {ae_title: PACS, host: pacs, port: 4242}]\n"
        "  seg: {ae_title: PACS, host: pacs, port: 4242}\n")
    config = load_node_config(tmp_path / "node.yaml")
    assert config.storage == tmp_path / "data" and config.queue_path == tmp_path / "data" / "queue.sqlite"
    assert config.pipeline == str(tmp_path / "fast.yaml") and config.quota_bytes == 2**29
    assert [d.ae_title for d in config.destinations["rtstruct"]] == ["TPS", "PACS"]
    assert config.allowed_calling_ae_titles == ("PACS", "PACS2") and config.tls is None


def test_backoff_doubles_up_to_its_ceiling():
    from localize.node.scu import backoff_s

    assert [backoff_s(n, 5.0, 60.0) for n in range(1, 7)] == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]


def test_a_study_that_cannot_be_planned_fails_and_leaves_the_queue_moving(tmp_path):
    from localize.node.runner import run_next

    config = load_node_config(write_config(tmp_path, port=11112, destinations={}))
    config.storage.mkdir()
    with NodeQueue(config.queue_path) as queue:
        queue.record_instance(sop_uid="1.9", study_uid="1.2", series_uid="1.3", sop_class_uid="1.4", patient_key="P",
                              folder=str(config.storage / "studies" / "P" / "gone"), path="x.dcm", size=1,
                              sha256="x", calling_ae="PACS", now=time.time() - 60)
        queue.queue_quiet_studies(1.0)
        assert run_next(queue, config) is True and run_next(queue, config) is False
        (study,) = queue.rows("studies")
        assert study["state"] == "failed" and study["reason"] == "input"


def test_a_port_in_use_is_one_line_naming_the_file(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = write_config(tmp_path, port=taken.getsockname()[1], destinations={})
        result = CliRunner().invoke(main, ["node", "--config", str(config)])
    assert result.exit_code == 2 and result.stderr.startswith(f"localize: error: {config}: cannot listen on 127.0.0.1:")
    assert len(result.stderr.strip().splitlines()) == 1
