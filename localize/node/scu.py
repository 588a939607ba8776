"""Results out: C-STORE SCU to a destination (DICOM PS3.4 Annex B; PS3.7 9.1.1), with backoff.

Each destination's due sends go over one association; a send that fails (no
association, a failure status, a dropped connection) is tried again after
``first_s`` x 2^attempts seconds, at most ``max_s``, and never given up: a
destination that is down gets its results when it comes back. A send is marked
``sent`` only once the destination acknowledged it; if the node dies between
the acknowledgement and that mark, the instance is sent again under the same
SOP Instance UID, which the destination stores once.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from pathlib import Path

import pydicom
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE

from localize.node.config import NodeConfig
from localize.node.queue import NodeQueue, Send
from localize.node.scp import send_without_delay

LOG = logging.getLogger("localize.node")
_WARNINGS = (0x0001, 0xB000, 0xB006, 0xB007)  # PS3.4 B.2.3: stored, with a warning


def backoff_s(attempts: int, first_s: float, max_s: float) -> float:
    """Seconds to wait before the next attempt after ``attempts`` failed ones."""
    return min(max_s, first_s * 2 ** max(attempts - 1, 0))


def send_due(queue: NodeQueue, config: NodeConfig, identify=str) -> int:
    """Send every due result, one association per destination; the number acknowledged."""
    by_destination: dict[tuple[str, str, int], list[Send]] = defaultdict(list)
    for send in queue.due_sends():
        by_destination[(send.ae_title, send.host, send.port)].append(send)
    return sum(_send_to(destination, sends, queue, config, identify)
               for destination, sends in by_destination.items())


def _send_to(destination: tuple[str, str, int], sends: list[Send], queue: NodeQueue, config: NodeConfig,
             identify) -> int:
    ae_title, host, port = destination
    where = f"{ae_title}@{host}:{port}"
    datasets = {}
    for send in sends:
        try:
            datasets[send.id] = pydicom.dcmread(send.path)
        except (OSError, pydicom.errors.InvalidDicomError) as exc:
            _failed(queue, config, send, f"cannot read {Path(send.path).name}: {exc}")
    ae = AE(ae_title=config.ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    for sop_class in sorted({str(ds.SOPClassUID) for ds in datasets.values()}):
        ae.add_requested_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    tls_args = (config.tls.client_context(), host) if config.tls else None
    assoc = ae.associate(host, port, ae_title=ae_title, tls_args=tls_args) if datasets else None
    if assoc is None or not assoc.is_established:
        for send in sends:
            if send.id in datasets:
                _failed(queue, config, send, f"no association with {where}")
        return 0
    send_without_delay(assoc)
    sent = 0
    try:
        for send in sends:
            if send.id not in datasets:
                continue
            if not assoc.is_established:
                _failed(queue, config, send, f"association with {where} lost")
                continue
            reply = assoc.send_c_store(datasets[send.id])
            status = int(reply.Status) if reply is not None and "Status" in reply else None
            if status == 0x0000 or status in _WARNINGS:
                queue.mark_sent(send.id)
                sent += 1
                LOG.info("sent %s to %s", identify(send.sop_uid), where)
            else:
                _failed(queue, config, send, f"{where} answered status "
                        + (f"0x{status:04X}" if status is not None else "none (timeout or abort)"))
    finally:
        if assoc.is_established:
            assoc.release()
    return sent


def _failed(queue: NodeQueue, config: NodeConfig, send: Send, error: str) -> None:
    wait = backoff_s(send.attempts + 1, config.retry_first_s, config.retry_max_s)
    queue.mark_send_failed(send.id, error, time.time() + wait)
    LOG.warning("send of %s failed (%s); next attempt in %.3g s", Path(send.path).name, error, wait)
