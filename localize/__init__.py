"""localize: imaging-guided localization of recurrent prostate cancer.

Research software, not a medical device. Coordinates are DICOM patient
coordinates (LPS, millimetres) unless a name says otherwise.

Every step is a plain function over plain values (SimpleITK images in LPS mm,
numpy arrays z, y, x, dataclasses, pandas), importable from here; the names
are loaded on first use, so ``import localize`` stays quick.

>>> import localize
>>> localize.lps_to_ras([[10.0, 20.0, 30.0]]).tolist()
[[-10.0, -20.0, 30.0]]
>>> sorted(localize.pipeline_names())[:2]
['fluciclovine', 'generic']
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("localize")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from localize.errors import (
    ConfigError,
    DicomReadError,
    LocalizeError,
    RegistrationError,
    ResourceLimitError,
    SeriesError,
    StudyError,
    SuvError,
)

# Public name -> the module that defines it, in the order of the data flow (docs/api.md).
_LAZY = {
    # index and load
    "index_folder": "localize.load.index", "format_index": "localize.load.index", "Archive": "localize.load.index",
    "load_series": "localize.load.volume", "Volume": "localize.load.volume",
    "load_pet": "localize.load.pet", "PetImage": "localize.load.pet",
    "identify_tracer": "localize.load.tracer", "TracerInfo": "localize.load.tracer",
    "open_study": "localize.api", "OpenedStudy": "localize.api", "analyse_study": "localize.api",
    # register
    "register_mr": "localize.registration", "check_pet_ct": "localize.registration",
    "Registration": "localize.registration", "resample_to": "localize.registration",
    "mr_to_pet_points": "localize.registration", "pet_to_mr_points": "localize.registration",
    # anatomy, reference regions, segmentation, classification
    "build_anatomy": "localize.anatomy", "Anatomy": "localize.anatomy", "read_label_map": "localize.anatomy",
    "reference_regions": "localize.detection.reference", "ReferenceRegion": "localize.detection.reference",
    "segment_lesions": "localize.detection.segment", "Segmentation": "localize.detection.segment",
    "SegmentationSettings": "localize.detection.segment", "settings_for": "localize.detection.segment",
    "classify_lesions": "localize.classify", "infer_status": "localize.classify", "stage": "localize.classify",
    # results and exports
    "Findings": "localize.findings", "Lesion": "localize.findings", "Candidate": "localize.findings",
    "number_lesions": "localize.findings", "validate_findings": "localize.findings",
    "lesion_table": "localize.export.table", "lesion_table_from_doc": "localize.export.table",
    "write_csv": "localize.export.table",
    "write_rtstruct": "localize.export.rtstruct", "rtstruct_to_masks": "localize.export.rtstruct",
    "write_seg": "localize.export.dicom_seg", "write_labelmap": "localize.export.labelmap",
    "write_report": "localize.export.report", "report_figure": "localize.export.report",
    "read_nifti": "localize.export.nifti", "write_nifti": "localize.export.nifti",
    "lps_to_ras": "localize.export.nifti", "ras_to_lps": "localize.export.nifti",
    "convert_folder": "localize.export.convert",
    # pipelines
    "load_pipeline": "localize.config", "default_pipeline": "localize.config",
    "pipeline_names": "localize.config", "PipelineConfig": "localize.config",
    "run_study": "localize.pipeline", "analyse": "localize.pipeline", "Analysis": "localize.pipeline",
    "run_batch": "localize.batch.run", "BatchSettings": "localize.batch.run",
    # review
    "view": "localize.review.notebook",
}

__all__ = [
    "ConfigError", "DicomReadError", "LocalizeError", "RegistrationError", "ResourceLimitError",
    "SeriesError", "StudyError", "SuvError", "__version__", *_LAZY,
]


def __getattr__(name: str):
    """Import the module of a public name on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'localize' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
