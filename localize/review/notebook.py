"""``localize.view``: the review page inside a notebook, as an IFrame onto a local review server.

The server (``localize.review.server``: 127.0.0.1, random port, token) runs in a thread of
the kernel and stops with it. An ``Analysis`` (``localize.analyse_study``) is first written
to a folder (``out``, else a new temporary one, removed when the kernel exits): findings.json, the
label map and the review volumes, by the run's own writers. Decisions are saved to that folder's review.json; the
reviewed export (``localize export``) needs a ``localize run`` folder, whose provenance.json
names the DICOM inputs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from localize.errors import LocalizeError
from localize.review.server import ReviewServer

if TYPE_CHECKING:
    from localize.pipeline import Analysis

_SERVERS: list[ReviewServer] = []  # kept alive while the kernel runs
_FOLDERS: list[tempfile.TemporaryDirectory] = []  # kept while the kernel runs, removed when it exits


def write_view_folder(analysis: Analysis, out: str | Path | None = None) -> Path:
    """Write what the page needs for ``analysis`` into ``out`` (default: a new temporary folder, removed when the
    interpreter exits)."""
    from localize.atomic import write_json
    from localize.pipeline import export_all

    if out is None:
        _FOLDERS.append(tempfile.TemporaryDirectory(prefix="localize-view-"))
    folder = Path(out) if out is not None else Path(_FOLDERS[-1].name)
    outputs, failed = export_all(analysis, ["viewer"], folder)
    if failed:
        raise LocalizeError(f"the review volumes could not be written: {failed}", folder)
    write_json(folder / "findings.json", analysis.findings.to_dict() | {"outputs": outputs})
    return folder


def view(analysis_or_out, *, out: str | Path | None = None, height: int = 760):
    """An ``IPython.display.IFrame`` showing the review page of an ``Analysis`` or of a run's output folder."""
    from IPython.display import IFrame

    if isinstance(analysis_or_out, (str, Path)):
        folder = Path(analysis_or_out)
    else:
        folder = write_view_folder(analysis_or_out, out)
    server = ReviewServer(folder).start()
    _SERVERS.append(server)
    return IFrame(server.url, width="100%", height=height)
