"""PET <-> CT frame check: a hybrid scanner's shared frame is identity, verified, never re-registered."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from localize.registration.masks import body_mask, dice
from localize.registration.mr import register_images
from localize.registration.result import Registration

# PET and CT of one hybrid acquisition share a FrameOfReferenceUID and need no
# registration (docs/coordinates.md#dicom-patient-coordinates).  Their body outlines still differ by PET
# resolution and threshold, so agreement is judged loosely.
MIN_PET_CT_DICE = 0.85


@dataclass(frozen=True)
class FrameCheck:
    """How CT points relate to PET points.

    ``transform`` maps PET LPS points to CT LPS points (resampling convention:
    ``sitk.Resample(ct, pet, transform)`` puts the CT on the PET grid);
    ``matrix_ct_to_pet_lps`` maps CT LPS to PET LPS.  ``body_dice`` is the body
    outline overlap on the PET grid after that mapping.
    """

    same_frame_of_reference: bool
    transform: sitk.Transform
    matrix_ct_to_pet_lps: np.ndarray
    body_dice: float
    method: str
    warnings: tuple[str, ...] = ()
    registration: Registration | None = None


def body_dice_on(pet: sitk.Image, ct: sitk.Image, pet_to_ct: sitk.Transform) -> float:
    """Dice of PET and CT body outlines on the PET grid, the CT mapped by ``pet_to_ct``."""
    pet_body = sitk.GetArrayFromImage(body_mask(pet, "PT")) > 0
    ct_on_pet = sitk.Resample(ct, pet, pet_to_ct, sitk.sitkLinear, -1000.0, sitk.sitkFloat32)
    ct_body = sitk.GetArrayFromImage(body_mask(ct_on_pet, "CT")) > 0
    return dice(pet_body, ct_body)


def check_pet_ct(pet: sitk.Image, ct: sitk.Image, pet_for_uid: str, ct_for_uid: str) -> FrameCheck:
    """Relate a CT (HU) to a PET (SUV), both LPS mm.

    Shared FrameOfReferenceUID: identity, checked by body-outline overlap; a poor
    overlap gives a warning (the images are not re-registered).  Different frames:
    rigid registration of the CT to the PET, with a warning.
    """
    notes: list[str] = []
    if pet_for_uid and pet_for_uid == ct_for_uid:
        identity = sitk.Transform(3, sitk.sitkIdentity)
        overlap = body_dice_on(pet, ct, identity)
        if overlap < MIN_PET_CT_DICE:
            notes.append(
                f"PET and CT share frame of reference {pet_for_uid} but their body outlines overlap poorly "
                f"(Dice {overlap:.2f}); patient motion between the scans is likely; not re-registered"
            )
        result = FrameCheck(True, identity, np.eye(4), overlap, "identity (shared frame of reference)", tuple(notes))
    else:
        registration = register_images(pet, "PT", ct, "CT")
        notes.append(
            f"PET frame of reference {pet_for_uid or '(none)'} differs from CT frame {ct_for_uid or '(none)'}; "
            f"CT registered rigidly to PET (quality {registration.quality})"
        )
        notes.extend(registration.reasons)
        overlap = body_dice_on(pet, ct, registration.transform)
        result = FrameCheck(
            False, registration.transform, registration.matrix_mr_to_pet_lps, overlap,
            "rigid CT to PET: " + registration.method, tuple(notes), registration,
        )
    for note in notes:
        warnings.warn(note, stacklevel=2)
    return result
