"""The DICOM node on the phantom study: receive throughput and the time from the last instance to results stored.

A ``localize node`` (child process) receives the phantom study by C-STORE from
this process, runs it once its quiet period has passed, and sends RTSTRUCT,
SEG and the spatial registration to a Storage SCP in this process. Reported:

- receive throughput: instances/s over one association (each instance checked and written atomically);
- latency: from the last instance acknowledged to the last result stored at the destination,
  with and without the quiet period (a wait by design);
- the baseline: plain ``run_study`` on the same study and pipeline in this process, and
  the node's overhead ratio (latency without the quiet period / run_study).

Run: python -m benchmarks node -- [--quiet-period 1] [--ct-matrix 128]
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pydicom
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    MRImageStorage,
    PositronEmissionTomographyImageStorage,
    RTStructureSetStorage,
    SegmentationStorage,
    SpatialRegistrationStorage,
    Verification,
)

from benchmarks.common import report
from localize.node.scp import send_without_delay
from localize.pipeline import run_study
from localize.sample_data import LesionSpec, StudySpec, make_study

PIPELINE = "extends: psma-salvage-rt\nexports: [findings, rtstruct, seg, registration]\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def destination(port: int, arrived: list[float]):
    """A Storage SCP for the results; appends the time each result is stored."""
    ae = AE(ae_title="PLANNING")
    for sop_class in (RTStructureSetStorage, SegmentationStorage, SpatialRegistrationStorage):
        ae.add_supported_context(sop_class)

    def on_store(event):
        arrived.append(time.perf_counter())
        return 0x0000

    return ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])


def wait_for_echo(port: int, timeout_s: float = 60) -> None:
    ae = AE(ae_title="PACS")
    ae.add_requested_context(Verification)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assoc = ae.associate("127.0.0.1", port, ae_title="LOCALIZE")
        if assoc.is_established:
            assoc.release()
            return
        time.sleep(0.1)
    raise SystemExit("the node did not start")


def send_study(port: int, files: list[Path]) -> tuple[float, float]:
    """C-STORE every file over one association; (seconds taken, time of the last acknowledgement)."""
    datasets = [pydicom.dcmread(f) for f in files]
    ae = AE(ae_title="PACS")
    for sop_class in (CTImageStorage, MRImageStorage, PositronEmissionTomographyImageStorage):
        ae.add_requested_context(sop_class)
    assoc = ae.associate("127.0.0.1", port, ae_title="LOCALIZE")
    send_without_delay(assoc)  # as the node's own sender does
    start = time.perf_counter()
    for ds in datasets:
        status = assoc.send_c_store(ds).Status
        if status != 0:
            raise SystemExit(f"the node refused an instance: 0x{status:04X}")
    last = time.perf_counter()
    assoc.release()
    return last - start, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quiet-period", type=float, default=1.0, help="the node's quiet period, s")
    parser.add_argument("--ct-matrix", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_study(root / "phantom", StudySpec(seed=31, extent="pelvis", ct_matrix=args.ct_matrix, with_mr=True,
                                               lesions=(LesionSpec("obturator", 12, 8.0, "left"),)))
        files = sorted((root / "phantom" / "dicom").rglob("*.dcm"))
        (root / "fast.yaml").write_text(PIPELINE)

        start = time.perf_counter()
        run_study(root / "phantom" / "dicom", root / "baseline", pipeline=str(root / "fast.yaml"))
        baseline_s = time.perf_counter() - start

        node_port, dest_port = free_port(), free_port()
        arrived: list[float] = []
        server = destination(dest_port, arrived)
        target = {"ae_title": "PLANNING", "host": "127.0.0.1", "port": dest_port}
        config = {"ae_title": "LOCALIZE", "port": node_port, "host": "127.0.0.1", "storage": "storage",
                  "allowed_calling_ae_titles": ["PACS"], "quiet_period_s": args.quiet_period,
                  "pipeline": "fast.yaml", "destinations": {k: target for k in ("rtstruct", "seg", "registration")}}
        (root / "node.yaml").write_text(json.dumps(config))
        node = subprocess.Popen([sys.executable, "-m", "localize", "node", "--config", str(root / "node.yaml")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_echo(node_port)
            receive_s, last = send_study(node_port, files)
            deadline = time.monotonic() + 600
            while len(arrived) < 3 and time.monotonic() < deadline and node.poll() is None:
                time.sleep(0.02)
            if len(arrived) < 3:
                raise SystemExit("the results did not arrive")
        finally:
            node.send_signal(signal.SIGTERM)
            node.wait(timeout=60)
            server.shutdown()
        latency_s = max(arrived) - last
    print(f"phantom study: {len(files)} instances (CT matrix {args.ct_matrix}, PET, MR)")
    print(f"receive: {len(files) / receive_s:.0f} instances/s ({receive_s:.2f} s over one association)")
    print(f"last instance received -> 3 results stored: {latency_s:.2f} s "
          f"(quiet period {args.quiet_period:g} s; {latency_s - args.quiet_period:.2f} s without it)")
    print(f"plain run_study in this process: {baseline_s:.2f} s; "
          f"overhead ratio {(latency_s - args.quiet_period) / baseline_s:.2f}")
    report("node receive", len(files) / receive_s, "instances/s", higher_is_better=True)
    report("node last instance -> results stored, without the quiet period", latency_s - args.quiet_period, "s",
           baseline=baseline_s)


if __name__ == "__main__":
    main()
