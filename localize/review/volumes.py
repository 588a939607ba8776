"""The images the review page shows, written once by the run (``viewer`` export) as NIfTI (RAS).

``volumes/pet_suv.nii.gz`` (SUVbw, float32, PET grid), ``volumes/ct.nii.gz`` (HU, int16, the CT's
extent and axes, voxels no finer than the PET's nor than ``DISPLAY_MM``: the page fuses the layers
on the CT's grid, whose size sets its drawing time; a 4 mm PET's study draws in ~2.5 s in a browser
without a GPU, at a 1.9 mm CT ~30 s; the planning exports use the DICOM CT) and, with a registration
that passed its check, ``volumes/mr.nii.gz``: the MR's own voxels placed
in the PET/CT frame by the registration's linear part (no resampling; a B-spline refinement's
residual is left out, at most a few mm). The lesion label map is the run's ``lesions.nii.gz``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from localize.export.nifti import write_nifti

VOLUMES = "volumes"
PET_FILE, CT_FILE, MR_FILE, LABELS_FILE = "pet_suv.nii.gz", "ct.nii.gz", "mr.nii.gz", "lesions.nii.gz"
DISPLAY_MM = 1.9  # finest voxel edge shown (mm); a 500 mm field at 256 voxels is 1.95 mm


def display_grid(image: sitk.Image, finest_mm: float = DISPLAY_MM) -> sitk.Image:
    """``image`` (LPS) resampled (linear) to voxels of at least ``finest_mm`` over the same extent, same axes."""
    spacing = np.asarray(image.GetSpacing(), float)
    if spacing.min() >= finest_mm:
        return image
    coarse = np.maximum(spacing, finest_mm)
    size = np.ceil(np.asarray(image.GetSize()) * spacing / coarse).astype(int)
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    # the first voxel's corner stays where it was: centre moved by half the change of edge
    origin = np.asarray(image.GetOrigin()) + direction @ ((coarse - spacing) / 2)
    grid = sitk.Image([int(v) for v in size], image.GetPixelID())
    grid.SetSpacing(tuple(coarse))
    grid.SetDirection(image.GetDirection())
    grid.SetOrigin(tuple(origin))
    return sitk.Resample(image, grid, sitk.Transform(), sitk.sitkLinear, -1024.0)


def mr_in_pet_frame(mr_image: sitk.Image, matrix_mr_to_pet_lps: np.ndarray) -> sitk.Image:
    """The MR image with its grid moved into the PET/CT frame (LPS mm) by a 4x4 MR -> PET matrix."""
    matrix = np.asarray(matrix_mr_to_pet_lps, float)
    linear = matrix[:3, :3] @ np.asarray(mr_image.GetDirection(), float).reshape(3, 3) @ np.diag(mr_image.GetSpacing())
    spacing = np.linalg.norm(linear, axis=0)
    moved = sitk.Image(mr_image)
    moved.SetSpacing(tuple(float(v) for v in spacing))
    moved.SetDirection(tuple(float(v) for v in (linear / spacing).ravel()))
    moved.SetOrigin(tuple(float(v) for v in matrix[:3, :3] @ np.asarray(mr_image.GetOrigin()) + matrix[:3, 3]))
    return moved


def write_volumes(out_dir: str | Path, pet_suv: sitk.Image, ct: sitk.Image | None = None,
                  mr: sitk.Image | None = None, matrix_mr_to_pet_lps: np.ndarray | None = None) -> dict[str, Path]:
    """Write the review volumes under ``out_dir/volumes``; returns ``{name: path}`` of those written."""
    folder = Path(out_dir) / VOLUMES
    written = {"volume_pet": write_nifti(sitk.Cast(pet_suv, sitk.sitkFloat32), folder / PET_FILE)}
    if ct is not None:
        shown = display_grid(ct, max(DISPLAY_MM, min(pet_suv.GetSpacing())))
        hu = sitk.Cast(sitk.Clamp(shown, lowerBound=-1024, upperBound=32767), sitk.sitkInt16)
        written["volume_ct"] = write_nifti(hu, folder / CT_FILE)
    if mr is not None and matrix_mr_to_pet_lps is not None:
        written["volume_mr"] = write_nifti(mr_in_pet_frame(mr, matrix_mr_to_pet_lps), folder / MR_FILE)
    return written
