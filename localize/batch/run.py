"""``localize batch``: run every PET study of an archive, resumably, in isolation.

The archive is indexed into ``OUT/catalog.sqlite`` (see ``localize.batch.catalog``);
each PET/CT study is paired with its patient's MR (``localize.load.plan``) and run
in a child process of its own (``python -m localize.batch.worker``), watched for
time and resident memory, so a crash, a timeout or a memory blow-up in one study
is recorded and the rest go on. Children are spread over Dask workers: a local
cluster by default, or an existing one given by ``scheduler``.

A study's outputs are written to a temporary folder under ``OUT/studies`` and
renamed into place before the catalog says ``done``; a resumed batch skips
finished studies and reruns those left ``running`` by an interruption.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localize.atomic import atomic_write, write_json
from localize.batch.catalog import Catalog
from localize.errors import LocalizeError
from localize.export.privacy import key_check, pseudonymise_manifest, pseudonymise_records
from localize.safe_names import safe_name

DEFAULT_TIMEOUT_S = 1800.0
DEFAULT_MEMORY_LIMIT_GB = 6.0
WORKER_EXIT_INPUT_ERROR = 2  # the worker's exit status for a LocalizeError (as the CLI's)
WORKER_EXIT_MEMORY = 3
# Thread counts of the libraries a study uses (ITK, OpenMP, BLAS), set per child process.
THREAD_VARIABLES = ("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "MKL_NUM_THREADS")
KEY_VARIABLE = "LOCALIZE_DEIDENTIFY_KEY"  # how the pseudonym key reaches a worker (never a file)
PARENT_PID_VARIABLE = "LOCALIZE_BATCH_PID"  # a worker dies with the batch that started it


@dataclass
class BatchSettings:
    """How a batch runs. Times in seconds, memory in GiB of resident memory per study."""

    workers: int = 2
    scheduler: str | None = None  # tcp://HOST:PORT of an existing Dask scheduler
    force: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_limit_gb: float = DEFAULT_MEMORY_LIMIT_GB  # resident memory per study
    mr_window_days: float = 90.0
    pipeline: str | None = None  # name or file; default: chosen by tracer
    progress: bool = True
    deidentify: str | None = None  # key for pseudonyms (localize.export.privacy); never written anywhere
    threads_per_study: int | None = None  # ITK/BLAS threads per study; None: local cores // workers (1 on a cluster)


def run_batch(archive: str | Path, out: str | Path, settings: BatchSettings | None = None) -> dict[str, Any]:
    """Index ``archive``, run every PET study into ``out``; return the summary.

    Nothing is written under ``archive``. Raises ``LocalizeError`` when ``out``
    is inside ``archive`` or another batch holds ``out``.
    """
    from localize.load.index import index_folder
    from localize.load.plan import catalog_records, plan_studies

    settings = settings or BatchSettings()
    archive, out = Path(archive).resolve(), Path(out).resolve()
    if out == archive or archive in out.parents:
        raise LocalizeError("the output folder must not be inside the archive", out)
    out.mkdir(parents=True, exist_ok=True)
    with exclusive(out, ".batch.lock", "another batch is already running on this output folder"), \
            Catalog(out / "catalog.sqlite") as catalog:
        started = time.perf_counter()
        key = settings.deidentify
        _check_key(catalog, key, out)
        for stale in (out / "studies").glob(".tmp-*"):  # attempts of a killed batch (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        index = index_folder(archive)
        patients, series, unreadable = catalog_records(index)
        if key:
            patients, series = pseudonymise_records(patients, series, key)
        catalog.record_index(patients, series, unreadable)
        for plan in plan_studies(index, mr_window_days=settings.mr_window_days):
            manifest = plan.manifest(pipeline=settings.pipeline)
            if key:
                manifest = pseudonymise_manifest(manifest, key)
            if plan.error:
                catalog.record_skipped(manifest["study_uid"], manifest["patient_key"], plan.reason, plan.error)
            else:
                catalog.plan_run(manifest["study_uid"], manifest["patient_key"], manifest, force=settings.force)
        todo = catalog.pending()
        _run_all(todo, catalog, out, settings)
        summary = catalog.summary()
        summary["seconds"] = round(time.perf_counter() - started, 2)
        summary["cohort"] = _write_cohort(catalog, out)
        write_json(out / "summary.json", summary)
        return summary


def _check_key(catalog: Catalog, key: str | None, out: Path) -> None:
    """Refuse to mix pseudonymous and identified runs, or two keys, in one catalog."""
    check = key_check(key) if key else "none"
    recorded = catalog.setting("deidentify")
    if recorded is None:
        catalog.set_setting("deidentify", check)
    elif recorded != check:
        raise LocalizeError("this output folder was made with a different --deidentify key (or none);"
                            " use the same key or another output folder", out)


@contextmanager
def exclusive(folder: Path, lock_name: str, refusal: str) -> Iterator[None]:
    """Hold ``folder/lock_name`` (with this process's PID in it); a second holder gets ``LocalizeError(refusal)``."""
    handle = open(folder / lock_name, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise LocalizeError(refusal, folder) from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _run_all(todo, catalog: Catalog, out: Path, settings: BatchSettings) -> None:
    if not todo:
        return
    from distributed import Client, LocalCluster, as_completed

    if settings.scheduler:
        client, cluster = Client(settings.scheduler), None
        threads = settings.threads_per_study or 1  # the cluster's machines are not known here
    else:
        threads = settings.threads_per_study or max(1, (os.cpu_count() or 1) // settings.workers)
        # Each task only waits on a child process, so threads suffice locally.
        cluster = LocalCluster(n_workers=settings.workers, threads_per_worker=1, processes=False,
                               dashboard_address=None)
        client = Client(cluster)
    bar = _progress(len(todo), settings.progress)
    try:
        futures = []
        for row in todo:
            catalog.mark_running(row.study_uid)
            futures.append(client.submit(run_study_process, row.manifest, str(out), settings.timeout_s,
                                         settings.memory_limit_gb, settings.deidentify, threads, pure=False,
                                         key=f"study-{row.study_uid}"))
        for future in as_completed(futures):
            result = future.result()
            catalog.mark_finished(result.pop("study_uid"), **result)
            bar.update(1)
    finally:
        bar.close()
        client.close()
        if cluster is not None:
            cluster.close()


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="study", disable=not enabled, file=sys.stderr)


def run_study_process(manifest: dict[str, Any], out: str, timeout_s: float, memory_limit_gb: float,
                      deidentify: str | None = None, threads: int = 1) -> dict[str, Any]:
    """Run one study in a child process; return the fields of its catalog row.

    The child is killed past ``timeout_s`` seconds or ``memory_limit_gb`` GiB resident,
    and dies with its parent. ``deidentify``: pseudonym key, handed to the child
    in its environment (never in a file). ``threads``: the child's ITK and BLAS
    thread count (workers x threads should not exceed the cores).

    The child writes into ``OUT/studies/.tmp-NAME-<attempt>``; on success that
    folder is renamed to ``OUT/studies/NAME`` (replacing an earlier result), so a
    finished-looking folder is always a finished one.
    """
    studies = Path(out) / "studies"
    name = safe_name(manifest["name"], fallback="study")
    final = studies / name
    tmp = studies / f".tmp-{name}-{uuid.uuid4().hex[:12]}"
    tmp.mkdir(parents=True)
    manifest_path = tmp / "manifest.json"
    manifest_path.write_text(json.dumps(manifest))
    started = time.perf_counter()
    row: dict[str, Any] = {"study_uid": manifest["study_uid"]}
    log_path = tmp / "worker.log"  # a file, not a pipe: a chatty child can never block on it
    with open(log_path, "w") as log:
        env = os.environ | {PARENT_PID_VARIABLE: str(os.getpid())} | {name: str(threads) for name in THREAD_VARIABLES}
        if deidentify:
            env[KEY_VARIABLE] = deidentify
        child = subprocess.Popen([sys.executable, "-m", "localize.batch.worker", str(manifest_path), str(tmp)],
                                 stdout=subprocess.DEVNULL, stderr=log, env=env)
        stop = _watch(child, timeout_s, int(memory_limit_gb * 2**30))
    stderr = log_path.read_text(errors="replace")
    if stop == "timeout":
        row.update(ok=False, reason="timeout", error=f"no result after {timeout_s:g} s")
    elif stop == "memory":
        row.update(ok=False, reason="memory", error=f"used more than {memory_limit_gb:g} GiB")
    else:
        row.update(_classify_exit(child.returncode, stderr))
    row["duration_s"] = round(time.perf_counter() - started, 3)
    if row["ok"]:
        findings = json.loads((tmp / "findings.json").read_text())
        row["n_lesions"] = len(findings["lesions"])
        manifest_path.unlink()
        log_path.unlink()
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        row["out_dir"] = str(final)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return row


def _watch(child: subprocess.Popen, timeout_s: float, limit_bytes: int) -> str | None:
    """Wait for ``child``; kill it past ``timeout_s`` or above ``limit_bytes`` resident memory.

    Returns "timeout", "memory" or None (it ended by itself). Resident memory is
    read from /proc (Linux); elsewhere only the time limit applies.
    """
    deadline = time.monotonic() + timeout_s
    status = Path(f"/proc/{child.pid}/status")
    while child.poll() is None:
        if time.monotonic() > deadline:
            reason = "timeout"
        elif _resident_bytes(status) > limit_bytes:
            reason = "memory"
        else:
            time.sleep(0.1)
            continue
        child.kill()
        child.wait()
        return reason
    return None


def _resident_bytes(status: Path) -> int:
    """VmRSS of a process from its /proc status file (0 when unknown)."""
    try:
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _classify_exit(code: int, stderr: str) -> dict[str, Any]:
    last = next((line for line in reversed(stderr.strip().splitlines()) if line.strip()), "")
    if code == 0:
        return {"ok": True}
    if code == WORKER_EXIT_INPUT_ERROR:
        return {"ok": False, "reason": "input", "error": last.removeprefix("localize: error: ")}
    if code < 0:
        name = signal.Signals(-code).name
        return {"ok": False, "reason": "crash", "error": f"killed by {name}"}
    if code == WORKER_EXIT_MEMORY:
        return {"ok": False, "reason": "memory", "error": "ran out of memory"}
    return {"ok": False, "reason": "error", "error": last or f"exit status {code}"}


def _write_cohort(catalog: Catalog, out: Path) -> dict[str, str] | None:
    """All lesions of all finished studies as ``cohort.parquet`` and ``cohort.csv``."""
    import pandas as pd

    from localize.export.table import lesion_table_from_doc

    frames = []
    for run in catalog.runs():
        if run["status"] != "done" or not run["out_dir"]:
            continue
        doc = json.loads((Path(run["out_dir"]) / "findings.json").read_text())
        table = lesion_table_from_doc(doc)
        table.insert(0, "patient_key", run["patient_key"])
        frames.append(table)
    if not frames:
        return None
    cohort = pd.concat(frames, ignore_index=True)
    paths = {"parquet": out / "cohort.parquet", "csv": out / "cohort.csv"}
    with atomic_write(paths["parquet"]) as tmp:
        cohort.to_parquet(tmp, index=False)
    with atomic_write(paths["csv"]) as tmp:
        cohort.to_csv(tmp, index=False)
    return {k: str(v) for k, v in paths.items()}


def format_summary(summary: dict[str, Any]) -> str:
    """The end-of-batch summary for the terminal: runs by status, failures by reason."""
    runs = summary["runs"]
    lines = [f"studies: {sum(runs.values())}  " + "  ".join(f"{k}: {v}" for k, v in sorted(runs.items()))]
    for reason, n in sorted(summary["failures_by_reason"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  failed ({reason}): {n}")
    for reason, n in sorted(summary["skipped_by_reason"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  skipped ({reason}): {n}")
    if summary["unreadable_files"]:
        lines.append(f"unreadable files: {summary['unreadable_files']} (listed in catalog.sqlite)")
    if summary.get("cohort"):
        lines.append(f"cohort table: {summary['cohort']['parquet']}  {summary['cohort']['csv']}")
    lines.append(f"time: {summary['seconds']:.1f} s")
    return "\n".join(lines)
