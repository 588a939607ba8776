"""Co-registration of MR with PET/CT: the public names of ``localize.registration``."""

from localize.registration import (
    FrameCheck,
    Registration,
    body_mask,
    check_pet_ct,
    load_transform,
    mr_to_pet_points,
    pet_to_mr_points,
    register_mr,
    resample_to,
    save_transform,
    spatial_registration_dataset,
    write_spatial_registration,
)

__all__ = [
    "FrameCheck",
    "Registration",
    "body_mask",
    "check_pet_ct",
    "load_transform",
    "mr_to_pet_points",
    "pet_to_mr_points",
    "register_mr",
    "resample_to",
    "save_transform",
    "spatial_registration_dataset",
    "write_spatial_registration",
]
