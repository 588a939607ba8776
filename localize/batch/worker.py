"""The child process of a batch: ``python -m localize.batch.worker MANIFEST OUT``.

Runs one study (``localize.pipeline.run_manifest``); the parent watches its
time and memory. Exit status 0 on success, 2 with a one-line reason on stderr
for bad input (a ``LocalizeError``), 3 when memory ran out; anything else is
a bug, reported by its traceback.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from pathlib import Path

from localize.batch.run import KEY_VARIABLE, PARENT_PID_VARIABLE, WORKER_EXIT_INPUT_ERROR, WORKER_EXIT_MEMORY
from localize.errors import LocalizeError

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent() -> None:
    """Ask Linux to kill this process when the batch that started it dies (a killed batch leaves no orphans)."""
    parent = os.environ.get(PARENT_PID_VARIABLE)
    if not parent or not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(parent):  # the batch died before the request took effect
        os._exit(1)


def main(argv: list[str]) -> int:
    _die_with_parent()
    manifest_path, out = Path(argv[0]), Path(argv[1])
    try:
        from localize.pipeline import run_manifest

        findings = run_manifest(json.loads(manifest_path.read_text()), out,
                                deidentify=os.environ.pop(KEY_VARIABLE, None))
        if findings.failed_exports:
            failed = "; ".join(f"{name}: {why}" for name, why in findings.failed_exports.items())
            print(f"localize: error: export(s) failed: {failed}", file=sys.stderr)
            return WORKER_EXIT_INPUT_ERROR
    except LocalizeError as exc:
        print(f"localize: error: {exc}", file=sys.stderr)
        return WORKER_EXIT_INPUT_ERROR
    except MemoryError:
        print("localize: error: exceeded the memory limit", file=sys.stderr)
        return WORKER_EXIT_MEMORY
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
