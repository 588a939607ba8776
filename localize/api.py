"""One patient's study in a notebook: index a folder, load its PET as SUV, its CT and MR; analyse it.

``open_study`` picks the series the way ``localize run`` does (``localize.load.plan``)
and loads them; ``analyse_study`` runs every analysis step of a pipeline on
them (``localize.pipeline.analyse``) and writes nothing. Each step stays
callable on its own (see ``localize.__all__``).

>>> import tempfile
>>> from pathlib import Path
>>> from localize.sample_data import StudySpec, make_study
>>> tmp = tempfile.TemporaryDirectory()
>>> truth = make_study(Path(tmp.name), StudySpec(extent="pelvis", ct_matrix=256, with_mr=False))
>>> study = open_study(Path(tmp.name) / "dicom")
>>> study.tracer_family, study.mr is None
('psma_f18_renal', True)
>>> study.pet.image.GetDirection() == study.ct.image.GetDirection() == (1, 0, 0, 0, 1, 0, 0, 0, 1)
True
>>> tmp.cleanup()
"""

from __future__ import annotations

from pathlib import Path

from localize.load.opened import OpenedStudy, open_inputs
from localize.load.plan import DEFAULT_MR_WINDOW_DAYS, StudyInputs
from localize.pipeline import Analysis

__all__ = ["OpenedStudy", "analyse_study", "open_study"]


def open_study(path: str | Path, *, tracer: str = "auto",
               mr_window_days: float = DEFAULT_MR_WINDOW_DAYS) -> OpenedStudy:
    """Index ``path`` (one patient's work-up) and load its PET as SUVbw, its CT and its MR.

    ``tracer``: ``auto`` (from the PET header), or ``psma`` / ``fluciclovine`` /
    ``fdg`` to override it, as ``localize run --tracer``. The MR is the patient's
    MR nearest in date within ``mr_window_days``. Raises ``StudyError`` when the
    folder holds no PET study or several, and the loaders' errors on bad series.
    """
    from localize.load.index import index_folder
    from localize.load.plan import single_plan

    root = Path(path).resolve()
    plan = single_plan(index_folder(root), mr_window_days=mr_window_days)
    return open_inputs(StudyInputs.from_manifest(plan.manifest(), root=str(root)), tracer, plan=plan)


def analyse_study(study: OpenedStudy, *, pipeline: str | Path | None = None,
                  anatomy: str | Path | None = None) -> Analysis:
    """Register, build anatomy, measure references, segment and classify ``study``; writes nothing.

    ``pipeline``: a named pipeline or a YAML file; None takes the tracer's default
    (``localize.config.default_pipeline``). ``anatomy``: imported organ masks (a
    folder of NIfTI masks or a multilabel NIfTI, e.g. TotalSegmentator output),
    as ``localize run --anatomy``. Returns ``localize.pipeline.Analysis``
    (its ``findings`` are what ``localize run`` would write, less the outputs).
    """
    from localize.config import default_pipeline, load_pipeline
    from localize.pipeline import analyse

    config = load_pipeline(pipeline) if pipeline else default_pipeline(study.tracer_family)
    return analyse(study.pet, study.ct, study.mr, study.inputs.rtstruct, study.tracer_family, config,
                   anatomy_path=Path(anatomy) if anatomy else study.inputs.anatomy)
