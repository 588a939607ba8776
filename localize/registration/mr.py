"""Register an MR (or any image in another frame of reference) to the PET/CT frame.

Pipeline: coarse body outlines -> anatomical initialisation (no use of raw
coordinates across frames) -> fixed image cropped to the moving image's
footprint -> rigid Euler 3D, Mattes MI, three resolutions -> optional affine or
B-spline refinement -> quality verdict.  Deterministic: random metric sampling
with a fixed ``seed``.  ``threads=n`` sets ITK's global default thread count
(``sitk.ProcessObject.SetGlobalDefaultNumberOfThreads``) for the duration of the
call and restores it after; ``threads=1`` gives bit-identical results run to run
and machine to machine (the thread count changes the metric's summation order;
with several threads results agree to ~1e-9 mm).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal, TypeVar

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from localize.errors import RegistrationError
from localize.registration.initialise import initial_alignment, rotation_angle_deg
from localize.registration.masks import (
    Modality,
    body_mask,
    dice,
    downsample,
    index_to_lps,
    lps_to_index,
    mask_points_lps,
    metric_window,
)
from localize.registration.optimise import Levels, itk_threads, optimise
from localize.registration.result import LinearTransform, Registration, as_linear, linear_matrix, quality_reasons

_Linear = TypeVar("_Linear", bound=LinearTransform)

COARSE_SPACING_MM = 6.0  # grid of the anatomical initialisation
FINE_SPACING_MM = 2.0  # finest fixed grid the metric is sampled on
FOOTPRINT_MARGIN_MM = 20.0  # fixed region kept around the initially aligned moving body
MASK_DILATION_MM = 8.0  # the fixed body mask is widened so the skin edge counts
MIN_COVER_DICE = 0.25  # below this the moving image covers none of the body
# Half sizes (LR, AP, SI mm) of the box around the MR body centre kept by ``pelvis_only``:
# an engineering choice, wide enough for an adult bony pelvis and the femoral heads.
PELVIS_HALF_SIZE_MM = np.array([130.0, 100.0, 90.0])


def register_mr(
    mr: sitk.Image,
    fixed: sitk.Image,
    *,
    fixed_modality: Literal["CT", "PT"],
    pelvis_only: bool = False,
    refine: Literal["affine", "bspline"] | None = None,
    seed: int = 1,
    threads: int | None = None,
    fixed_mask: sitk.Image | None = None,
) -> Registration:
    """Register ``mr`` (moving) to ``fixed`` (the PET/CT CT, or the PET); LPS mm throughout.

    ``fixed_mask`` (optional, on any grid) further restricts the metric, e.g. to a
    pelvis segmentation.  Raises RegistrationError when no body is found or the MR
    covers none of the fixed body after alignment; a doubtful result is returned
    with ``quality == "poor"`` and its reasons.
    """
    return register_images(
        fixed, fixed_modality, mr, "MR", pelvis_only=pelvis_only, refine=refine,
        seed=seed, threads=threads, fixed_mask=fixed_mask,
    )


def register_images(
    fixed: sitk.Image,
    fixed_modality: Modality,
    moving: sitk.Image,
    moving_modality: Modality,
    *,
    pelvis_only: bool = False,
    refine: Literal["affine", "bspline"] | None = None,
    seed: int = 1,
    threads: int | None = None,
    fixed_mask: sitk.Image | None = None,
) -> Registration:
    """Rigid (+ optional refinement) registration of ``moving`` to ``fixed`` from an anatomical start."""
    with itk_threads(threads):
        return _register(fixed, fixed_modality, moving, moving_modality, pelvis_only, refine, seed, fixed_mask)


def _register(
    fixed: sitk.Image,
    fixed_modality: Modality,
    moving: sitk.Image,
    moving_modality: Modality,
    pelvis_only: bool,
    refine: Literal["affine", "bspline"] | None,
    seed: int,
    fixed_mask: sitk.Image | None,
) -> Registration:
    for image, role in ((fixed, fixed_modality), (moving, moving_modality)):
        if image.GetDimension() != 3 or min(image.GetSize()) < 2:
            raise RegistrationError(f"{role} image is not a 3D volume (size {image.GetSize()})")
    if refine not in (None, "affine", "bspline"):
        raise RegistrationError(f"unknown refinement {refine!r} (expected affine or bspline)")
    fixed_coarse = downsample(fixed, COARSE_SPACING_MM)
    moving_coarse = downsample(moving, COARSE_SPACING_MM)
    fixed_body = body_mask(fixed_coarse, fixed_modality)
    moving_body = body_mask(moving_coarse, moving_modality)
    for mask, role in ((fixed_body, fixed_modality), (moving_body, moving_modality)):
        if sitk.GetArrayViewFromImage(mask).sum() < 10:
            raise RegistrationError(f"{role} image shows no body to register")

    moving_to_fixed = initial_alignment(fixed_coarse, fixed_body, moving_coarse, moving_body)
    moving_points = mask_points_lps(moving_body)
    crop = _footprint(fixed, moving_points @ moving_to_fixed[:3, :3].T + moving_to_fixed[:3, 3], fixed_modality)
    metric_mask = _metric_mask(crop, fixed_body, fixed_mask)
    if pelvis_only:
        centre = moving_to_fixed[:3, :3] @ moving_points.mean(axis=0) + moving_to_fixed[:3, 3]  # fixed frame
        metric_mask = _restrict_to_box(metric_mask, centre, PELVIS_HALF_SIZE_MM)
    if sitk.GetArrayViewFromImage(metric_mask).sum() < 100:
        raise RegistrationError(f"{moving_modality} image covers none of the {fixed_modality} body")

    moving_f = metric_window(downsample(moving, FINE_SPACING_MM), moving_modality)
    crop = metric_window(crop, fixed_modality)
    centre = moving_to_fixed[:3, :3] @ moving_points.mean(axis=0) + moving_to_fixed[:3, 3]  # fixed frame
    rigid = _linear_transform(sitk.Euler3DTransform(), np.linalg.inv(moving_to_fixed), centre)
    run = optimise(crop, moving_f, metric_mask, rigid, levels=Levels(), seed=seed)
    method = "rigid Euler3D, Mattes MI, 3 levels, anatomical initialisation"
    if refine is not None:
        first = run
        if refine == "affine":
            centre = np.array(as_linear(run.transform).GetCenter())
            affine = _linear_transform(sitk.AffineTransform(3), linear_matrix(run.transform), centre)
            run = optimise(crop, moving_f, metric_mask, affine, levels=Levels((4.0, 2.0), (2.0, 0.0)), seed=seed)
        else:
            run = optimise(crop, moving_f, metric_mask, run.transform, levels=Levels((4.0,), (2.0,)), seed=seed,
                           bspline=True, max_iterations=30)
        run = replace(run, initial_metric=first.initial_metric, iterations=first.iterations + run.iterations)
        method += f" + {refine} refinement"

    fixed_to_moving = linear_matrix(run.transform)
    moving_to_fixed = np.linalg.inv(fixed_to_moving)
    overlap = _body_dice(moving_body, fixed_body, moving_to_fixed)
    if overlap < MIN_COVER_DICE:
        raise RegistrationError(
            f"{moving_modality} image covers none of the {fixed_modality} body after alignment "
            f"(body Dice {overlap:.2f})"
        )
    reasons = quality_reasons(
        moving_to_fixed, run.initial_metric, run.final_metric, overlap, run.converged, run.stop_condition
    )
    return Registration(
        transform=run.transform,
        matrix_mr_to_pet_lps=moving_to_fixed,
        matrix_pet_to_mr_lps=fixed_to_moving,
        metric=run.final_metric,
        initial_metric=run.initial_metric,
        iterations=run.iterations,
        method=method,
        quality="poor" if reasons else "ok",
        reasons=reasons,
        body_dice=overlap,
        rotation_deg=rotation_angle_deg(moving_to_fixed),
        stop_condition=run.stop_condition,
    )


def _linear_transform(transform: _Linear, matrix: np.ndarray, centre: np.ndarray) -> _Linear:
    """Set a centred linear ITK transform to the 4x4 ``matrix`` (fixed->moving), rotating about ``centre``."""
    linear = matrix[:3, :3]
    transform.SetCenter(centre.tolist())
    transform.SetMatrix(linear.ravel().tolist())
    transform.SetTranslation((matrix[:3, 3] + linear @ centre - centre).tolist())
    return transform


def _footprint(fixed: sitk.Image, points_lps: np.ndarray, modality: Modality) -> sitk.Image:
    """``fixed`` cropped to the bounding box of ``points_lps`` (+ margin), on a grid of at most FINE_SPACING_MM."""
    spacing = np.array(fixed.GetSpacing())
    ijk = lps_to_index(fixed, points_lps)
    margin = FOOTPRINT_MARGIN_MM / spacing
    low = np.clip(np.floor(ijk.min(axis=0) - margin), 0, np.array(fixed.GetSize()) - 1).astype(int)
    high = np.clip(np.ceil(ijk.max(axis=0) + margin) + 1, 1, np.array(fixed.GetSize())).astype(int)
    if np.any(high - low < 2):
        raise RegistrationError(f"the moving image lies outside the {modality} field of view")
    region = fixed[int(low[0]):int(high[0]), int(low[1]):int(high[1]), int(low[2]):int(high[2])]
    return downsample(region, FINE_SPACING_MM)


def _metric_mask(grid: sitk.Image, body_coarse: sitk.Image, extra: sitk.Image | None) -> sitk.Image:
    """The dilated fixed body on ``grid`` (intersected with ``extra`` if given), uint8."""
    body = sitk.Resample(body_coarse, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    radius = [max(1, int(round(MASK_DILATION_MM / s))) for s in grid.GetSpacing()]
    mask = sitk.BinaryDilate(body, radius)
    if extra is not None:
        mask = sitk.And(mask, sitk.Resample(sitk.Cast(extra > 0, sitk.sitkUInt8), grid, sitk.Transform(),
                                            sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8))
    return mask


def _restrict_to_box(mask: sitk.Image, centre_lps: np.ndarray, half_size_mm: np.ndarray) -> sitk.Image:
    """``mask`` with voxels farther than ``half_size_mm`` (per LPS axis) from ``centre_lps`` cleared."""
    values = sitk.GetArrayFromImage(mask)  # z, y, x
    kji = np.argwhere(values > 0)
    points = index_to_lps(mask, kji[:, ::-1].astype(float))
    outside = np.any(np.abs(points - centre_lps) > half_size_mm, axis=1)
    values[tuple(kji[outside].T)] = 0
    out = sitk.GetImageFromArray(values)
    out.CopyInformation(mask)
    return out


def _body_dice(moving_body: sitk.Image, fixed_body: sitk.Image, moving_to_fixed: np.ndarray) -> float:
    """Dice of the body outlines on the moving grid (its field of view), after alignment."""
    moving_zyx = sitk.GetArrayViewFromImage(moving_body) > 0
    kji = np.indices(moving_zyx.shape).reshape(3, -1).T
    points = index_to_lps(moving_body, kji[:, ::-1].astype(float))
    mapped = points @ moving_to_fixed[:3, :3].T + moving_to_fixed[:3, 3]
    ijk = lps_to_index(fixed_body, mapped)
    fixed_values = ndimage.map_coordinates(sitk.GetArrayViewFromImage(fixed_body), ijk[:, ::-1].T, order=0, cval=0)
    return dice(moving_zyx.ravel(), fixed_values > 0)
