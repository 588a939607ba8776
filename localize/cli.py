"""The ``localize`` command line.

Each command is a thin wrapper: it parses options, calls the library, prints.
A ``LocalizeError`` becomes one line on stderr and exit status 2; nothing else
the library raises is caught (that would be a bug to fix, not to hide).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from localize import __version__
from localize.errors import LocalizeError

EXIT_INPUT_ERROR = 2


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
    from localize.index import format_index, index_folder

    archive = index_folder(path)
    click.echo(archive.to_json() if as_json else format_index(archive))


@main.command("convert")
@click.argument("path", type=_existing_dir)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder for .nii.gz + .json per series (never inside PATH).")
@click.option("--strict", is_flag=True, help="Refuse series with missing slices or uneven spacing.")
@_one_line_errors
def convert_command(path: Path, out: Path, strict: bool) -> None:
    """Convert every image series under PATH to NIfTI (RAS affine; PET in SUVbw) + JSON sidecar."""
    from localize.convert import convert_folder

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
