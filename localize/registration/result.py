"""The registration result and its quality verdict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast

import numpy as np
import SimpleITK as sitk

from localize.findings import MrToPetRecord
from localize.registration.initialise import rotation_angle_deg

# Plausibility limits for a patient imaged twice lying supine: the patient-based
# axes of two scanners agree to within a few degrees of positioning, so a rotation
# beyond 20 degrees or a scale beyond 10 % is a failed registration, not anatomy.
MAX_ROTATION_DEG = 20.0
MAX_SCALE_CHANGE = 0.10
MIN_BODY_DICE = 0.80


@dataclass(frozen=True)
class Registration:
    """MR (moving) registered to the PET/CT frame (fixed).

    ``transform`` maps fixed (PET/CT frame) LPS points to MR LPS points: ITK's
    resampling convention, so ``sitk.Resample(mr, pet, transform)`` puts the MR on
    the PET grid.  ``matrix_mr_to_pet_lps`` is the 4x4 linear part mapping MR LPS
    to PET/CT LPS (for a B-spline refinement, the linear transform beneath it).
    Metrics are Mattes mutual information (negative; lower is better).
    """

    transform: sitk.Transform
    matrix_mr_to_pet_lps: np.ndarray
    matrix_pet_to_mr_lps: np.ndarray
    metric: float
    initial_metric: float
    iterations: tuple[int, ...]
    method: str
    quality: str
    reasons: tuple[str, ...] = ()
    body_dice: float = float("nan")
    rotation_deg: float = float("nan")
    stop_condition: str = ""

    def to_dict(self) -> MrToPetRecord:
        """findings.json ``registration.mr_to_pet``: matrix_lps (MR -> PET LPS), metric, method, quality."""
        return {
            "matrix_lps": [[float(v) for v in row] for row in self.matrix_mr_to_pet_lps],
            "metric": float(self.metric),
            "method": self.method,
            "quality": self.quality,
            "reasons": list(self.reasons),
            "iterations": list(self.iterations),
            "body_dice": round(float(self.body_dice), 4),
        }


class LinearTransform(Protocol):
    """A centred linear ITK transform (Euler3D, Affine, Similarity3D, VersorRigid3D, ...).

    SimpleITK's classes share these methods but no base class declares them.
    """

    def GetMatrix(self) -> Sequence[float]: ...
    def GetCenter(self) -> Sequence[float]: ...
    def GetTranslation(self) -> Sequence[float]: ...
    def SetMatrix(self, matrix: Sequence[float]) -> None: ...
    def SetCenter(self, center: Sequence[float]) -> None: ...
    def SetTranslation(self, translation: Sequence[float]) -> None: ...


def as_linear(transform: sitk.Transform) -> LinearTransform:
    """``transform`` as the linear transform it is: a downcast SimpleITK transform object (what
    ``optimise`` and ``load_transform`` return for a linear transform), typed ``sitk.Transform``."""
    return cast(LinearTransform, transform)


def linear_matrix(transform: sitk.Transform) -> np.ndarray:
    """4x4 matrix of a linear ITK transform (or the first, linear, member of a composite), as it maps points."""
    while transform.GetName() == "CompositeTransform":
        transform = sitk.CompositeTransform(transform).GetNthTransform(0)
    linear = as_linear(transform)
    matrix = np.array(linear.GetMatrix()).reshape(3, 3)
    centre = np.array(linear.GetCenter())
    out = np.eye(4)
    out[:3, :3] = matrix
    out[:3, 3] = np.array(linear.GetTranslation()) + centre - matrix @ centre
    return out


def quality_reasons(
    matrix: np.ndarray, initial_metric: float, final_metric: float, body_dice: float, converged: bool, stop: str
) -> tuple[str, ...]:
    """Why a registration is implausible or unconverged (empty when it looks right)."""
    reasons = []
    angle = rotation_angle_deg(matrix)
    if angle > MAX_ROTATION_DEG:
        reasons.append(f"rotation {angle:.1f} deg exceeds {MAX_ROTATION_DEG:.0f} deg")
    scales = np.linalg.svd(matrix[:3, :3], compute_uv=False)
    if np.any(np.abs(scales - 1.0) > MAX_SCALE_CHANGE):
        reasons.append(f"scale {scales.min():.2f}-{scales.max():.2f} is implausible")
    if final_metric > initial_metric:
        reasons.append(f"metric {final_metric:.4f} is worse than at the initial alignment ({initial_metric:.4f})")
    if body_dice < MIN_BODY_DICE:
        reasons.append(f"body outlines overlap poorly after alignment (Dice {body_dice:.2f})")
    if not converged:
        reasons.append(f"optimizer did not converge ({stop})")
    return tuple(reasons)
