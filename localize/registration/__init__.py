"""Co-registration: MR -> PET/CT frame, and the PET <-> CT frame check.

All points and matrices are DICOM LPS mm.  ``Registration.transform`` maps
PET/CT-frame points to MR points (ITK's resampling convention);
``Registration.matrix_mr_to_pet_lps`` maps MR points to PET/CT points.
"""

from localize.registration.dicom_reg import spatial_registration_dataset, write_spatial_registration
from localize.registration.frames import FrameCheck, check_pet_ct
from localize.registration.mapping import (
    load_registration,
    load_transform,
    mr_to_pet_points,
    pet_to_mr_points,
    resample_to,
    save_transform,
)
from localize.registration.masks import body_mask
from localize.registration.mr import register_mr
from localize.registration.result import Registration

__all__ = [
    "FrameCheck",
    "Registration",
    "body_mask",
    "check_pet_ct",
    "load_registration",
    "load_transform",
    "mr_to_pet_points",
    "pet_to_mr_points",
    "register_mr",
    "resample_to",
    "save_transform",
    "spatial_registration_dataset",
    "write_spatial_registration",
]
