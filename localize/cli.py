"""The ``localize`` command line.

Each command is a thin wrapper: it parses options, calls the library, prints.
A ``LocalizeError`` becomes one line on stderr and exit status 2; nothing else
the library raises is caught (that would be a bug to fix, not to hide). ``run``
exits 1, with one line, when findings.json was written but an export failed.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from localize import __version__
from localize.errors import LocalizeError
from localize.tracers import USER_TRACERS

EXIT_INPUT_ERROR = 2
EXIT_EXPORT_FAILED = 1  # findings.json and the other exports were written


def _one_line_errors(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except LocalizeError as exc:
            click.echo(f"localize: error: {exc}", err=True)
            sys.exit(EXIT_INPUT_ERROR)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="localize")
def main() -> None:
    """Localize recurrent prostate cancer on PSMA / fluciclovine PET/CT and MR.

    Research software, not a medical device. Coordinates are DICOM LPS mm.
    """


_existing_dir = click.Path(exists=True, file_okay=False, path_type=Path)


@main.command("index")
@click.argument("path", type=_existing_dir)
@click.option("--json", "as_json", is_flag=True, help="Print the index as JSON.")
@_one_line_errors
def index_command(path: Path, as_json: bool) -> None:
    """List patients, studies and series under PATH (headers only)."""
    from localize.load.index import format_index, index_folder

    archive = index_folder(path)
    click.echo(archive.to_json() if as_json else format_index(archive))


@main.command("run")
@click.argument("study", type=_existing_dir)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (created if missing; never inside STUDY).")
@click.option("--pipeline", default=None, help="A named pipeline (see `localize pipelines`) or a YAML file.")
@click.option("--config", "config_file", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="A pipeline YAML file (the same as --pipeline FILE).")
@click.option("--tracer", type=click.Choice(["auto", *USER_TRACERS]), default="auto",
              show_default=True, help="Override the tracer family read from the PET header.")
@click.option("--anatomy", type=click.Path(exists=True, path_type=Path), default=None,
              help="Imported anatomy: a folder of NIfTI masks or a multilabel NIfTI (e.g. TotalSegmentator output).")
@click.option("--deidentify", "deidentify_key", default=None, metavar="KEY", envvar="LOCALIZE_DEIDENTIFY_KEY",
              help="Pseudonymise patient and study identifiers in findings, tables and logs with this key "
                   "(keyed hash; the key is never written). DICOM exports keep their identity.")
@click.option("--stow", "stow_url", default=None, metavar="URL",
              help="Also send the DICOM results (RTSTRUCT, SEG, registration) to this DICOMweb service by STOW-RS.")
@_one_line_errors
def run_command(study: Path, out: Path, pipeline: str | None, config_file: Path | None, tracer: str,
                anatomy: Path | None, deidentify_key: str | None, stow_url: str | None) -> None:
    """Run a pipeline on one patient's STUDY folder; write findings.json and exports to OUT."""
    from localize.config import DICOM_EXPORTS
    from localize.export.summary import format_findings
    from localize.pipeline import run_study

    if pipeline and config_file:
        raise click.UsageError("give either --pipeline or --config, not both")
    findings = run_study(study, out, pipeline=config_file or pipeline, tracer=tracer, anatomy=anatomy,
                         deidentify=deidentify_key)
    click.echo(format_findings(findings))
    if stow_url:
        from localize.load.dicomweb import store_results

        stored = store_results(stow_url, [findings.outputs[k] for k in DICOM_EXPORTS if k in findings.outputs])
        click.echo(f"stored {stored} DICOM object(s) at {stow_url}")
    if findings.failed_exports:
        failed = "; ".join(f"{name}: {why}" for name, why in findings.failed_exports.items())
        click.echo(f"localize: error: findings.json written, but export(s) failed: {failed}", err=True)
        sys.exit(EXIT_EXPORT_FAILED)


@main.command("pipelines")
def pipelines_command() -> None:
    """List the named pipelines shipped with localize."""
    from localize.config import load_pipeline, pipeline_names

    for name in pipeline_names():
        click.echo(f"{name:18s} {load_pipeline(name).description}")


@main.command("batch")
@click.argument("archive", type=_existing_dir)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder: catalog.sqlite, studies/, cohort tables, summary.json.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1), help="Local worker processes.")
@click.option("--scheduler", default=None, help="Address of an existing Dask scheduler (tcp://HOST:PORT).")
@click.option("--force", is_flag=True, help="Rerun studies that already finished.")
@click.option("--pipeline", default=None, help="Pipeline for every study (default: chosen by tracer).")
@click.option("--timeout", "timeout_s", default=1800.0, show_default=True, help="Seconds allowed per study.")
@click.option("--memory-limit", "memory_limit_gb", default=6.0, show_default=True,
              help="Resident memory allowed per study, GiB.")
@click.option("--threads-per-study", type=click.IntRange(1), default=None,
              help="ITK/BLAS threads per study (default: local cores // workers; 1 on a cluster).")
@click.option("--mr-window-days", default=90.0, show_default=True,
              help="Pair each PET study with its patient's MR at most this many days apart.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--deidentify", "deidentify_key", default=None, metavar="KEY", envvar="LOCALIZE_DEIDENTIFY_KEY",
              help="Pseudonymise patient and study identifiers in the catalog, cohort tables, logs and findings "
                   "with this key (keyed hash; the key is never written). DICOM exports keep their identity.")
@_one_line_errors
def batch_command(archive: Path, out: Path, workers: int, scheduler: str | None, force: bool,
                  pipeline: str | None, timeout_s: float, memory_limit_gb: float,
                  threads_per_study: int | None, mr_window_days: float, quiet: bool,
                  deidentify_key: str | None) -> None:
    """Run every PET study under ARCHIVE; resumable; one bad study never stops the rest."""
    from localize.batch.run import BatchSettings, format_summary, run_batch

    settings = BatchSettings(workers=workers, scheduler=scheduler, force=force, pipeline=pipeline,
                             timeout_s=timeout_s, memory_limit_gb=memory_limit_gb,
                             mr_window_days=mr_window_days, progress=not quiet, deidentify=deidentify_key,
                             threads_per_study=threads_per_study)
    summary = run_batch(archive, out, settings)
    click.echo(format_summary(summary))
    if summary["runs"].get("failed"):
        sys.exit(1)


@main.command("convert")
@click.argument("path", type=_existing_dir)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder for .nii.gz + .json per series (never inside PATH).")
@click.option("--strict", is_flag=True, help="Refuse series with missing slices or uneven spacing.")
@_one_line_errors
def convert_command(path: Path, out: Path, strict: bool) -> None:
    """Convert every image series under PATH to NIfTI (RAS affine; PET in SUVbw) + JSON sidecar."""
    from localize.export.convert import convert_folder

    results = convert_folder(path, out, strict=strict)
    for result in results:
        if result.error:
            click.echo(f"failed  {result.modality or '?'} {result.series_instance_uid}: {result.error}")
        else:
            click.echo(f"wrote   {result.nifti}")
            for warning in result.warnings:
                click.echo(f"        warning: {warning}")
    failed = sum(1 for r in results if r.error)
    click.echo(f"{len(results) - failed} series converted, {failed} failed")
    if failed:
        sys.exit(1)


@main.command("demo")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the outputs (default: ./localize-demo; created if missing).")
@_one_line_errors
def demo_command(out_dir: Path | None) -> None:
    """Build (once, cached) the demo phantom study and run the default pipeline on it."""
    from localize.demo import run_demo

    result = run_demo(out_dir)
    click.echo(("built" if result.built else "reused") + f" demo study in {result.study_root}")
    click.echo(result.summary)


@main.command("fetch")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--dicomweb", "url", required=True, metavar="URL", help="The DICOMweb service's base URL.")
@click.option("--study", "study_uid", required=True, metavar="UID", help="Study Instance UID to fetch.")
@_one_line_errors
def fetch_command(out: Path, url: str, study_uid: str) -> None:
    """Fetch one study from a DICOMweb service (QIDO-RS, WADO-RS) into OUT/SERIES/SOP.dcm."""
    from localize.load.dicomweb import fetch_study

    written = fetch_study(url, study_uid, out)
    click.echo(f"fetched {len(written)} instance(s) into {out}")


@main.command("review")
@click.argument("out", type=_existing_dir)
@click.option("--port", default=0, show_default=True, help="Port on 127.0.0.1 (0: a free one).")
@click.option("--no-browser", is_flag=True, help="Print the URL only; do not open a browser.")
@click.option("--reviewer", default="", help="Reviewer's name, recorded in review.json.")
@_one_line_errors
def review_command(out: Path, port: int, no_browser: bool, reviewer: str) -> None:
    """Review a `localize run` output folder in a local page (docs/review.md); Ctrl-C stops."""
    import webbrowser

    from localize.review.server import ReviewServer

    server = ReviewServer(out, port=port, reviewer=reviewer)
    click.echo(f"reviewing {server.out} at {server.url}")
    if not no_browser:
        webbrowser.open(server.url)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()


@main.command("export")
@click.argument("out", type=_existing_dir)
@_one_line_errors
def export_command(out: Path) -> None:
    """Rewrite OUT's findings.json, table, RTSTRUCT, SEG and report from the reviewed lesions (review.json)."""
    from localize.review.actions import Review
    from localize.review.server import check_output

    state = Review(check_output(out)).apply("export", {})
    for name, path in sorted(state["exports"][-1]["outputs"].items()):
        click.echo(f"{name}: {path}")


_node_config = click.option("--config", "config_file", required=True,
                            type=click.Path(dir_okay=False, path_type=Path), help="The node's YAML file.")


@main.group("node", invoke_without_command=True)
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="The node's YAML file (see docs/node.md).")
@click.option("--deidentify", "deidentify_key", default=None, metavar="KEY", envvar="LOCALIZE_DEIDENTIFY_KEY",
              help="Pseudonymise UIDs in the node's log and the runs' findings with this key "
                   "(keyed hash; the key is never written). DICOM results keep their identity.")
@click.pass_context
@_one_line_errors
def node_command(ctx: click.Context, config_file: Path | None, deidentify_key: str | None) -> None:
    """A DICOM node in the foreground: receive studies, run them when complete, send the results.

    Stops cleanly on SIGTERM or Ctrl-C; resumes where it was after any stop.
    """
    if ctx.invoked_subcommand is not None:
        return
    if config_file is None:
        raise click.UsageError("give --config FILE")
    from localize.node.config import load_node_config
    from localize.node.service import run_node

    run_node(load_node_config(config_file), deidentify=deidentify_key)


@node_command.command("status")
@_node_config
@click.option("--deidentify", "deidentify_key", default=None, metavar="KEY", envvar="LOCALIZE_DEIDENTIFY_KEY",
              help="Print UIDs as keyed pseudonyms.")
@_one_line_errors
def node_status_command(config_file: Path, deidentify_key: str | None) -> None:
    """Print the node's studies, sends and failures (reads its queue; works while the node runs)."""
    from localize.node.config import load_node_config
    from localize.node.service import uid_for_logs
    from localize.node.status import format_status

    config = load_node_config(config_file)
    click.echo(format_status(config.queue_path, uid_for_logs(deidentify_key)))
