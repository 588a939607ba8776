"""``localize demo``: build (once, cached) the demo phantom study and show what is in it.

The study is built by ``localize.sample_data`` into a cache folder keyed by the
generator version and the study spec (``$LOCALIZE_CACHE`` overrides the default
user cache directory), so a second run reuses it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from localize.sample_data import StudySpec, StudyTruth, make_study

DEMO_SPEC = StudySpec()


@dataclass(frozen=True)
class DemoResult:
    """Where the demo study and its truth are, whether it was built now, and its summary table."""

    study_root: Path
    dicom_dir: Path
    truth_dir: Path
    built: bool
    summary: str


def cache_dir() -> Path:
    """$LOCALIZE_CACHE, else $XDG_CACHE_HOME/localize, else ~/.cache/localize."""
    if os.environ.get("LOCALIZE_CACHE"):
        return Path(os.environ["LOCALIZE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "localize"


def demo_study(spec: StudySpec = DEMO_SPEC) -> tuple[Path, bool]:
    """(folder of the cached study for ``spec``, True if it was built by this call)."""
    digest = hashlib.sha256(spec.key().encode()).hexdigest()[:16]
    root = cache_dir() / f"demo-{digest}"
    if (root / "truth" / "truth.json").is_file():
        return root, False
    partial = root.with_name(root.name + ".part")
    shutil.rmtree(partial, ignore_errors=True)
    make_study(partial, spec)
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)  # a crash mid-build leaves only the .part folder, never a half study
    return root, True


DEFAULT_OUT = Path("localize-demo")


def run_demo(out_dir: Path | None = None) -> DemoResult:
    """Build or reuse the demo study, run the default pipeline on it into ``out_dir``, summarise both.

    ``out_dir`` defaults to ``./localize-demo``.
    """
    from localize.export.summary import format_findings
    from localize.load.index import index_folder
    from localize.pipeline import run_study

    root, built = demo_study()
    truth = StudyTruth.load(root)
    archive = index_folder(root / "dicom")
    lines = [f"{'modality':<9}{'series':<42}{'files':>6}"]
    for series in sorted(archive.all_series(), key=lambda s: s.series_number or 0):
        lines.append(f"{series.modality or '?':<9}{(series.description or '')[:40]:<42}{series.instance_count:>6}")
    regions = {r: sum(1 for les in truth.lesions if les.region == r) for r in ("local", "nodal", "distant")}
    lines.append(f"lesions in truth: {len(truth.lesions)} "
                 f"(local {regions['local']}, nodal {regions['nodal']}, distant {regions['distant']})")
    lines.append(f"tracer {truth.tracer}, vendor {truth.vendor}, {truth.status.replace('_', ' ')}")
    lines += [f"DICOM:  {root / 'dicom'}", f"truth:  {root / 'truth'}", ""]
    out_dir = Path(out_dir or DEFAULT_OUT).resolve()
    findings = run_study(root / "dicom", out_dir)
    lines += [format_findings(findings), f"output: {out_dir}"]
    return DemoResult(root, root / "dicom", root / "truth", built, "\n".join(lines))
