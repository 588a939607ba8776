"""Digital phantom of recurrent prostate cancer on PSMA / fluciclovine PET/CT and MR.

``make_study(out_root, StudySpec(...))`` writes a complete DICOM study under
``out_root/dicom`` and its ground truth under ``out_root/truth``.
"""

from localize.sample_data.spec import GENERATOR_VERSION, LesionSpec, StudySpec
from localize.sample_data.study import make_study
from localize.sample_data.truth import LesionTruth, StudyTruth

__all__ = ["GENERATOR_VERSION", "LesionSpec", "LesionTruth", "StudySpec", "StudyTruth", "make_study"]
