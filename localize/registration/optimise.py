"""Mattes mutual-information optimisation of a fixed->moving transform (SimpleITK).

Transforms follow ITK's resampling convention: they map fixed-image LPS points to
moving-image LPS points.  Sampling is random with a fixed seed, so a run is
reproducible for a given number of threads; ``threads=1`` makes it identical
across machines (thread count changes the summation order of the metric).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from localize.errors import RegistrationError

_BINS = 50
_SAMPLES_PER_LEVEL = 15_000
BSPLINE_SPACING_MM = 60.0  # B-spline control point spacing


@dataclass(frozen=True)
class Levels:
    """A multi-resolution schedule: shrink factors and smoothing sigmas (mm), coarse to fine."""

    shrink: tuple[int, ...] = (4, 2, 1)
    sigma_mm: tuple[float, ...] = (4.0, 2.0, 0.0)


@dataclass(frozen=True)
class OptimiserRun:
    """Result of one multi-resolution optimisation."""

    transform: sitk.Transform
    initial_metric: float
    final_metric: float
    iterations: tuple[int, ...]
    converged: bool
    stop_condition: str


def _method(fixed: sitk.Image, fixed_mask: sitk.Image, levels: Levels, seed: int, threads: int | None) -> sitk.ImageRegistrationMethod:
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=_BINS)
    method.SetMetricFixedMask(fixed_mask)
    method.SetMetricSamplingStrategy(method.RANDOM)
    mask_fraction = max(float(sitk.GetArrayViewFromImage(fixed_mask).mean()), 1e-3)
    voxels = np.prod(fixed.GetSize())
    percentages = [min(1.0, _SAMPLES_PER_LEVEL * s**3 / (voxels * mask_fraction)) for s in levels.shrink]
    method.SetMetricSamplingPercentagePerLevel(percentages, seed)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetShrinkFactorsPerLevel(list(levels.shrink))
    method.SetSmoothingSigmasPerLevel(list(levels.sigma_mm))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    if threads is not None:
        method.SetNumberOfThreads(threads)
    return method


def evaluate_metric(
    fixed: sitk.Image, moving: sitk.Image, fixed_mask: sitk.Image, transform: sitk.Transform, seed: int, threads: int | None
) -> float:
    """Mattes MI (negative; lower is better) of ``transform`` at full resolution, fixed sampling."""
    method = _method(fixed, fixed_mask, Levels((1,), (0.0,)), seed, threads)
    method.SetInitialTransform(transform, inPlace=False)
    try:
        return float(method.MetricEvaluate(fixed, moving))
    except RuntimeError as exc:
        raise RegistrationError(f"metric cannot be evaluated: {_first_line(exc)}") from None


def optimise(
    fixed: sitk.Image,
    moving: sitk.Image,
    fixed_mask: sitk.Image,
    initial: sitk.Transform,
    *,
    levels: Levels,
    seed: int,
    threads: int | None,
    bspline: bool = False,
    max_iterations: int = 200,
) -> OptimiserRun:
    """Optimise ``initial`` (a linear transform, or a B-spline on top of a fixed linear one).

    ``fixed`` and ``moving`` are float32 images; ``fixed_mask`` restricts the metric samples.
    For ``bspline``, ``initial`` is the linear transform kept fixed and a B-spline
    (control points every ~60 mm) is optimised on top; the result is their composition.
    """
    start = initial if bspline else initial.__class__(initial)
    initial_metric = evaluate_metric(fixed, moving, fixed_mask, start, seed, threads)
    iterations: list[int] = []
    current = start
    stop = ""
    for shrink, sigma in zip(levels.shrink, levels.sigma_mm):
        method = _method(fixed, fixed_mask, Levels((shrink,), (sigma,)), seed, threads)
        if bspline:
            mesh = [max(1, int(round(n * s / BSPLINE_SPACING_MM))) for n, s in zip(fixed.GetSize(), fixed.GetSpacing())]
            deformation = sitk.BSplineTransformInitializer(fixed, mesh, order=3)
            method.SetMovingInitialTransform(initial)
            method.SetInitialTransform(deformation, inPlace=True)
            method.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=max_iterations)
        else:
            current = current.__class__(current)
            method.SetInitialTransform(current, inPlace=True)
            method.SetOptimizerAsConjugateGradientLineSearch(
                learningRate=1.0, numberOfIterations=max_iterations,
                convergenceMinimumValue=1e-6, convergenceWindowSize=10,
            )
            method.SetOptimizerScalesFromPhysicalShift()
        count = [0]
        method.AddCommand(sitk.sitkIterationEvent, lambda count=count: count.__setitem__(0, count[0] + 1))
        try:
            method.Execute(fixed, moving)
        except RuntimeError as exc:
            raise RegistrationError(f"registration failed: {_first_line(exc)}") from None
        iterations.append(count[0])
        stop = " ".join(method.GetOptimizerStopConditionDescription().split())
        if bspline:
            initial = sitk.CompositeTransform([initial, deformation])
            current = initial
    return OptimiserRun(
        transform=current,
        initial_metric=initial_metric,
        final_metric=evaluate_metric(fixed, moving, fixed_mask, current, seed, threads),
        iterations=tuple(iterations),
        converged=iterations[-1] < max_iterations,
        stop_condition=stop,
    )


def _first_line(exc: Exception) -> str:
    """The informative last line of an ITK exception text, on one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
