"""Received instances on disk: checked, written atomically, one folder per study.

Layout under the node's storage folder::

    studies/PATIENT/STUDY/SOP.dcm   received instances (names: localize.safe_names.safe_name of the
                                    Patient ID, Study and SOP Instance UIDs; nothing else from a
                                    received file becomes part of a path)
    conflicts/HASH.dcm              an instance whose SOP Instance UID was already stored with
                                    different content, kept aside for a person to look at
                                    (HASH: of its data set; its UIDs are in the queue's rejections)
    incoming/                       files being received (removed at start)

Each instance is written to ``incoming/``, read back behind the untrusted-input
ceilings (``localize.load.limits.read_dataset``) and renamed into its study folder;
its queue row is committed before the sender is answered.

Duplicates (PS3.4 B.2.3 statuses):

- same SOP Instance UID, same data set: nothing is written, success (0x0000);
- same SOP Instance UID, different data set: never overwritten; the new one is kept in
  ``conflicts/``, logged and answered "Cannot understand" (0xC000) with a comment.

A storage quota past which instances are refused with "Out of resources" (0xA700).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from pydicom.uid import UID

from localize.errors import LocalizeError
from localize.load.limits import read_dataset
from localize.node.queue import NodeQueue
from localize.safe_names import clean_label, safe_name

LOG = logging.getLogger("localize.node")

# PS3.4 Table B.2-1 (C-STORE) and PS3.7 Annex C status codes.
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000


@dataclass(frozen=True)
class Outcome:
    """What became of one received instance: a DIMSE status and, when refused, why (one line)."""

    status: int
    reason: str = ""


class InstanceStore:
    """Received instances under ``storage``, listed in ``queue``, within ``quota_bytes``.

    ``identify``: how UIDs and IDs appear in log lines (pseudonyms under ``--deidentify``).
    """

    def __init__(self, storage: Path, queue: NodeQueue, quota_bytes: int, identify=str):
        self.storage, self.queue, self.quota_bytes, self.identify = storage, queue, quota_bytes, identify
        self.incoming = storage / "incoming"
        self.incoming.mkdir(parents=True, exist_ok=True)
        for stale in self.incoming.iterdir():  # files of a receive a killed node never finished
            stale.unlink(missing_ok=True)
        self._lock = threading.Lock()

    def receive(self, file_bytes: bytes, dataset_bytes: bytes, sop_class_uid: str, calling_ae: str) -> Outcome:
        """Store one instance: ``file_bytes`` (PS3.10 file with meta) as received over ``sop_class_uid``.

        ``dataset_bytes``: the data set alone, as encoded on the wire (what "same content" compares).
        """
        with self._lock:
            outcome = self._receive(file_bytes, dataset_bytes, sop_class_uid, calling_ae)
        if outcome.status != SUCCESS:
            LOG.warning("refused an instance from %s: %s (status 0x%04X)", calling_ae, outcome.reason, outcome.status)
        return outcome

    def _receive(self, file_bytes: bytes, dataset_bytes: bytes, sop_class_uid: str, calling_ae: str) -> Outcome:
        if self.queue.used_bytes() + len(file_bytes) > self.quota_bytes:
            return self._refuse(OUT_OF_RESOURCES, f"storage quota of {self.quota_bytes / 2**30:.3g} GiB reached",
                                calling_ae)
        fd, name = tempfile.mkstemp(prefix="rx-", suffix=".part", dir=self.incoming)
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(file_bytes)
            try:
                ds = read_dataset(tmp)
            except LocalizeError as exc:
                return self._refuse(CANNOT_UNDERSTAND, exc.reason, calling_ae)
            uids = {k: str(ds.get(k, "")) for k in ("SOPInstanceUID", "SOPClassUID", "StudyInstanceUID",
                                                     "SeriesInstanceUID")}
            bad = [k for k, v in uids.items() if not UID(v).is_valid]
            if bad:
                return self._refuse(CANNOT_UNDERSTAND, f"missing or invalid {', '.join(bad)}", calling_ae)
            sop_uid, study_uid = uids["SOPInstanceUID"], uids["StudyInstanceUID"]
            if uids["SOPClassUID"] != sop_class_uid:
                return self._refuse(DOES_NOT_MATCH_SOP_CLASS, f"SOP Class UID {uids['SOPClassUID']} sent as"
                                    f" {sop_class_uid}", calling_ae, sop_uid)
            digest = hashlib.sha256(dataset_bytes).hexdigest()
            known = self.queue.instance(sop_uid)
            if known is not None and known[1] == digest:
                LOG.info("instance %s from %s already stored (same content)", self.identify(sop_uid), calling_ae)
                return Outcome(SUCCESS)
            if known is not None:
                aside = self.storage / "conflicts" / f"{digest[:16]}.dcm"  # its UID is in the rejections table
                aside.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, aside)
                kept = aside.relative_to(self.storage)
                return self._refuse(CANNOT_UNDERSTAND, f"SOP Instance UID {self.identify(sop_uid)} already stored"
                                    f" with different content; the new one is kept in {kept}", calling_ae, sop_uid)
            patient = safe_name(ds.get("PatientID"), fallback="no-patient-id")
            folder = self.storage / "studies" / patient / safe_name(study_uid)
            final = folder / f"{safe_name(sop_uid)}.dcm"
            folder.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            self.queue.record_instance(sop_uid=sop_uid, study_uid=study_uid, series_uid=uids["SeriesInstanceUID"],
                                       sop_class_uid=sop_class_uid, patient_key=str(ds.get("PatientID", "")),
                                       folder=str(folder), path=str(final), size=len(file_bytes), sha256=digest,
                                       calling_ae=calling_ae)
            LOG.debug("stored %s of study %s", self.identify(sop_uid), self.identify(study_uid))
            return Outcome(SUCCESS)
        finally:
            tmp.unlink(missing_ok=True)

    def _refuse(self, status: int, reason: str, calling_ae: str, sop_uid: str | None = None) -> Outcome:
        reason = clean_label(reason, max_length=300)
        self.queue.record_rejection(reason, calling_ae=calling_ae, sop_uid=sop_uid, status=status)
        return Outcome(status, reason)
