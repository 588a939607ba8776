"""The node's listening application entity: Storage SCP and Verification SCP (pynetdicom).

Accepted (DICOM PS3.4 Annex B, Storage Service Class; Annex A, Verification):
CT, Enhanced CT, MR, Enhanced MR, PET, Enhanced PET and Legacy Converted
Enhanced CT/MR/PET images, RT Structure Sets, and C-ECHO. Associations from a
calling AE title not in the configuration are rejected (A-ASSOCIATE-RJ,
"calling AE title not recognised", PS3.8 9.3.4) and the attempt is recorded.
"""

from __future__ import annotations

import logging
import socket

from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
from pynetdicom.events import EventHandlerType
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # pynetdicom makes these at import (globals())
    CTImageStorage,
    EnhancedCTImageStorage,
    EnhancedMRImageStorage,
    EnhancedPETImageStorage,
    LegacyConvertedEnhancedCTImageStorage,
    LegacyConvertedEnhancedMRImageStorage,
    LegacyConvertedEnhancedPETImageStorage,
    MRImageStorage,
    PositronEmissionTomographyImageStorage,
    RTStructureSetStorage,
    Verification,
)

from localize.node.config import NodeConfig
from localize.node.queue import NodeQueue
from localize.node.store import InstanceStore

LOG = logging.getLogger("localize.node")

STORAGE_CLASSES = (CTImageStorage, EnhancedCTImageStorage, LegacyConvertedEnhancedCTImageStorage,
                   MRImageStorage, EnhancedMRImageStorage, LegacyConvertedEnhancedMRImageStorage,
                   PositronEmissionTomographyImageStorage, EnhancedPETImageStorage,
                   LegacyConvertedEnhancedPETImageStorage, RTStructureSetStorage)


def send_without_delay(assoc) -> None:
    """Turn off Nagle's algorithm on an association's socket.

    A DIMSE message goes out in several small writes; with Nagle's algorithm and the
    peer's delayed acknowledgements each one waits about 40 ms (22 instead of about
    100 instances/s over loopback, benchmarks/bench_node.py).
    """
    sock = assoc.dul.socket.socket if assoc.dul.socket is not None else None
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def start_server(config: NodeConfig, store: InstanceStore, queue: NodeQueue):
    """Listen on ``config.host:config.port`` in background threads; the pynetdicom server (``shutdown()`` stops it)."""
    ae = AE(ae_title=config.ae_title)
    for sop_class in STORAGE_CLASSES:
        ae.add_supported_context(sop_class, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification)
    ae.require_calling_aet = list(config.allowed_calling_ae_titles)
    allowed = set(config.allowed_calling_ae_titles)

    def on_requested(event) -> None:
        calling = event.assoc.requestor.primitive.calling_ae_title.strip()
        if calling not in allowed:
            address = event.assoc.requestor.address
            reason = f"association from calling AE title {calling!r} at {address} rejected (not allowed)"
            LOG.warning(reason)
            queue.record_rejection(reason, calling_ae=calling)

    def on_store(event):
        outcome = store.receive(event.encoded_dataset(), event.encoded_dataset(include_meta=False),
                                str(event.context.abstract_syntax), event.assoc.requestor.ae_title)
        if not outcome.reason:
            return outcome.status
        reply = Dataset()
        reply.Status = outcome.status
        reply.ErrorComment = outcome.reason[:64]  # LO (PS3.5 6.2)
        return reply

    handlers: list[EventHandlerType] = [(evt.EVT_CONN_OPEN, lambda event: send_without_delay(event.assoc)),
                (evt.EVT_REQUESTED, on_requested), (evt.EVT_C_STORE, on_store)]
    ssl_context = config.tls.server_context() if config.tls else None
    return ae.start_server((config.host, config.port), block=False, evt_handlers=handlers,
                           ssl_context=ssl_context)
