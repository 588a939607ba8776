"""Use a registration: map points both ways, resample either image onto the other's grid, save and load.

Points are LPS mm arrays ``(N, 3)``.  ITK transforms map fixed (PET/CT frame)
points to MR points (the resampling convention).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from localize.errors import RegistrationError
from localize.registration.result import Registration, linear_matrix

_INVERSE_TOLERANCE_MM = 1e-3


def _apply(matrix: np.ndarray, points_lps: np.ndarray) -> np.ndarray:
    points = np.atleast_2d(np.asarray(points_lps, float))
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def _transform_points(transform: sitk.Transform, points_lps: np.ndarray) -> np.ndarray:
    return np.array([transform.TransformPoint([float(v) for v in p]) for p in np.atleast_2d(points_lps)])


def pet_to_mr_points(reg: Registration, points_lps: np.ndarray) -> np.ndarray:
    """PET/CT-frame LPS points ``(N, 3)`` to MR LPS points (through the full transform)."""
    return _transform_points(reg.transform, points_lps)


def mr_to_pet_points(reg: Registration, points_mr_lps: np.ndarray) -> np.ndarray:
    """MR LPS points ``(N, 3)`` to PET/CT-frame LPS points.

    Linear transforms use the matrix; a deformable one is inverted point by point
    (fixed-point iteration on the linear part, to 1e-3 mm).
    """
    estimate = _apply(reg.matrix_mr_to_pet_lps, points_mr_lps)
    if reg.transform.IsLinear():
        return estimate
    target = np.atleast_2d(np.asarray(points_mr_lps, float))
    linear_inverse = reg.matrix_mr_to_pet_lps[:3, :3]
    for _ in range(50):
        residual = target - _transform_points(reg.transform, estimate)
        estimate = estimate + residual @ linear_inverse.T
        if np.abs(residual).max() < _INVERSE_TOLERANCE_MM:
            return estimate
    raise RegistrationError("the deformable transform cannot be inverted at these points")


def _inverse(transform: sitk.Transform, reference_grid: sitk.Image) -> sitk.Transform:
    """Inverse of ``transform``: exact when linear, otherwise a displacement field on ``reference_grid``."""
    if transform.IsLinear():
        return transform.GetInverse()
    field = sitk.TransformToDisplacementField(
        transform, sitk.sitkVectorFloat64, reference_grid.GetSize(), reference_grid.GetOrigin(),
        reference_grid.GetSpacing(), reference_grid.GetDirection(),
    )
    return sitk.DisplacementFieldTransform(sitk.InvertDisplacementField(field))


def resample_to(
    moving: sitk.Image,
    reference_grid: sitk.Image,
    reg_or_transform: Registration | sitk.Transform,
    *,
    inverse: bool = False,
    interpolator: int = sitk.sitkLinear,
    default_value: float = 0.0,
) -> sitk.Image:
    """Resample ``moving`` onto ``reference_grid``'s grid (origin, spacing, direction, size).

    With ``inverse=False`` the transform is used as it stands (it maps reference
    points to moving points): MR onto the PET/CT grid.  With ``inverse=True`` it is
    inverted: PET/CT onto the MR grid.  Labels want ``sitk.sitkNearestNeighbor``.
    """
    transform = reg_or_transform.transform if isinstance(reg_or_transform, Registration) else reg_or_transform
    if inverse:
        transform = _inverse(transform, reference_grid)
    return sitk.Resample(moving, reference_grid, transform, interpolator, float(default_value), moving.GetPixelID())


def save_transform(reg: Registration | sitk.Transform, path: str | Path) -> Path:
    """Write the fixed->MR transform as an ITK transform file (``.tfm``/``.txt``/``.h5``), atomically."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    transform = reg.transform if isinstance(reg, Registration) else reg
    temporary = final.with_name(f".{final.stem}.part{final.suffix}")  # ITK picks the format by suffix
    try:
        sitk.WriteTransform(transform, str(temporary))
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)
    return final


def load_transform(path: str | Path) -> sitk.Transform:
    """Read an ITK transform file written by ``save_transform`` (fixed/PET-frame -> MR points)."""
    try:
        transform = sitk.ReadTransform(str(path))
    except RuntimeError:
        raise RegistrationError("not a readable ITK transform file", path) from None
    if transform.GetName() == "CompositeTransform":
        return transform
    return transform.Downcast()


def load_registration(path: str | Path) -> Registration:
    """The registration a run saved with ``save_transform`` (a run saves only one that passed its check).

    Its metrics are not in the file: they stay NaN, and ``method`` names the file.
    """
    transform = load_transform(path)
    pet_to_mr = linear_matrix(transform)
    return Registration(transform=transform, matrix_mr_to_pet_lps=np.linalg.inv(pet_to_mr),
                        matrix_pet_to_mr_lps=pet_to_mr, metric=float("nan"), initial_metric=float("nan"),
                        iterations=(), method=f"read from {Path(path).name}", quality="ok")
