"""``localize node``: the DICOM node in the foreground until SIGTERM or Ctrl-C.

Threads: the Storage/Verification SCP (pynetdicom, one thread per
association), the quiet-period timer (this thread), the runner (one study at a
time, in a child process) and the sender (C-STORE SCU with backoff). All state
is in the SQLite queue, so a node killed at any moment resumes where it was.

Log lines go to stderr and to ``STORAGE/node.log``; with ``deidentify`` (a key,
as ``localize run --deidentify``) every UID in them is a keyed pseudonym
(``localize.export.privacy.pseudo_uid``).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

from localize.batch.run import exclusive
from localize.errors import LocalizeError
from localize.export.privacy import pseudo_uid
from localize.node.config import NodeConfig
from localize.node.queue import NodeQueue
from localize.node.runner import clear_stale_attempts, run_next
from localize.node.scp import start_server
from localize.node.scu import send_due
from localize.node.store import InstanceStore

LOG = logging.getLogger("localize.node")
TICK_S = 0.25  # how often the timer, the runner and the sender look for work


def uid_for_logs(deidentify: str | None) -> Callable[[str], str]:
    """How a UID appears in log lines: itself, or its keyed pseudonym."""
    return (lambda uid: pseudo_uid(deidentify, uid)) if deidentify else str


def run_node(config: NodeConfig, *, deidentify: str | None = None, stop: threading.Event | None = None) -> None:
    """Serve until ``stop`` is set, SIGTERM or SIGINT (when called from the main thread)."""
    stop = stop or threading.Event()
    config.storage.mkdir(parents=True, exist_ok=True)
    with exclusive(config.storage, ".node.lock", "another node is already running on this storage folder"):
        _serve(config, deidentify, stop)


def _serve(config: NodeConfig, deidentify: str | None, stop: threading.Event) -> None:
    _log_to(config)
    identify = uid_for_logs(deidentify)
    queue = NodeQueue(config.queue_path)
    queue.recover()
    clear_stale_attempts(config)
    store = InstanceStore(config.storage, queue, config.quota_bytes, identify)
    try:
        server = start_server(config, store, queue)
    except OSError as exc:  # the port is taken, or the address is not this machine's
        raise LocalizeError(f"cannot listen on {config.host}:{config.port} ({exc.strerror or exc})",
                            config.source) from None
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    # The runner is a daemon: a run under way when the node stops is left `running`, its child
    # dies with the node (localize.batch.worker), and the next start queues the study again.
    runner = threading.Thread(target=_repeat, args=(stop, lambda: run_next(queue, config, deidentify, identify)),
                              name="runner", daemon=True)
    sender = threading.Thread(target=_repeat, args=(stop, lambda: send_due(queue, config, identify)),
                              name="sender")
    runner.start()
    sender.start()
    LOG.info("%s listening on %s:%d%s", config.ae_title, config.host, config.port, " (TLS)" if config.tls else "")
    try:
        while not stop.wait(TICK_S):
            for uid in queue.queue_quiet_studies(config.quiet_period_s):
                LOG.info("study %s complete (quiet for %g s); queued", identify(uid), config.quiet_period_s)
    finally:
        stop.set()
        server.shutdown()
        sender.join()
        LOG.info("%s stopped", config.ae_title)


def _repeat(stop: threading.Event, work: Callable[[], object]) -> None:
    """Call ``work`` until ``stop``; wait a tick whenever it found nothing to do. A bug in one call is logged."""
    while not stop.is_set():
        try:
            busy = work()
        except Exception:  # the node outlives a bug in one run or send; it is logged whole  # noqa: BLE001
            LOG.exception("unexpected error")
            busy = False
        if not busy:
            stop.wait(TICK_S)


def _log_to(config: NodeConfig) -> None:
    node_log = logging.getLogger("localize.node")
    if node_log.handlers:
        return
    node_log.setLevel(logging.INFO)
    form = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    for handler in (logging.StreamHandler(), logging.FileHandler(config.storage / "node.log")):
        handler.setFormatter(form)
        node_log.addHandler(handler)
