"""Digital phantom of recurrent prostate cancer on PSMA / fluciclovine PET/CT and MR.

``make_study(out_root, StudySpec(...))`` writes a complete DICOM study of the standard man
under ``out_root/dicom`` and its ground truth under ``out_root/truth``;
``make_study(out_root, VariedSpec(seed))`` one of a man drawn from the seed (body, organs,
table, field of view, scanner), seeds >= ``VALIDATION_SEED_START`` being the validation split.
"""

from localize.sample_data.spec import (
                                       GENERATOR_VERSION,
                                       HARD_CASES,
                                       VALIDATION_SEED_START,
                                       LesionSpec,
                                       StudySpec,
                                       VariedSpec,
)
from localize.sample_data.study import make_study
from localize.sample_data.truth import LesionTruth, StudyTruth

__all__ = ["GENERATOR_VERSION", "HARD_CASES", "LesionSpec", "LesionTruth", "StudySpec", "StudyTruth",
           "VALIDATION_SEED_START", "VariedSpec", "make_study"]
