"""``localize node status``: the queue, studies and failures, read from the queue file (also while the node runs)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from localize.errors import LocalizeError
from localize.node.queue import STATES


def format_status(queue_path: Path, identify: Callable[[str], str] = str, last: int = 10) -> str:
    """Studies by state, each study, sends by destination, and the latest failures and rejections."""
    if not queue_path.is_file():
        raise LocalizeError("no queue yet (the node has not run with this configuration)", queue_path)
    db = sqlite3.connect(f"file:{queue_path}?mode=ro", uri=True, timeout=30)
    try:
        counts = dict(db.execute("SELECT state, COUNT(*) FROM studies GROUP BY state").fetchall())
        lines = ["studies: " + "  ".join(f"{s} {counts.get(s, 0)}" for s in STATES)]
        for uid, state, n, last_rx, reason, runs in db.execute(
                "SELECT study_uid, state, n_instances, last_received, reason,"
                " (SELECT COUNT(*) FROM runs r WHERE r.study_uid=s.study_uid) FROM studies s ORDER BY last_received"):
            lines.append(f"  {identify(uid)}  {state:9s} {n:5d} instances  last {_when(last_rx)}  runs {runs}"
                         + (f"  ({reason})" if reason else ""))
        lines.append("sends:")
        for ae, host, port, status, n, last_sent in db.execute(
                "SELECT ae_title, host, port, status, COUNT(*), MAX(sent) FROM sends GROUP BY ae_title, host, port,"
                " status ORDER BY ae_title, status"):
            last_time = f"  last {_when(last_sent)}" if last_sent else ""
            lines.append(f"  {ae}@{host}:{port}  {status:10s} {n:4d}{last_time}")
        lines.append("failures:")
        for uid, reason, error, finished in db.execute(
                "SELECT study_uid, reason, error, finished FROM runs WHERE status='failed' ORDER BY id DESC LIMIT ?",
                (last,)):
            lines.append(f"  run of {identify(uid)} {_when(finished)}: {reason}: {error}")
        for ae, host, port, attempts, error in db.execute(
                "SELECT ae_title, host, port, attempts, last_error FROM sends WHERE status='pending' AND attempts>0"
                " ORDER BY id DESC LIMIT ?", (last,)):
            lines.append(f"  send to {ae}@{host}:{port} after {attempts} attempt(s): {error}")
        for when, calling, status, reason in db.execute(
                "SELECT time, calling_ae, status, reason FROM rejections ORDER BY id DESC LIMIT ?", (last,)):
            code = f" 0x{status:04X}" if status is not None else ""
            lines.append(f"  refused{code} from {calling} {_when(when)}: {reason}")
    except sqlite3.DatabaseError as exc:
        raise LocalizeError(f"not a node queue ({exc})", queue_path) from None
    finally:
        db.close()
    return "\n".join(lines)


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"
