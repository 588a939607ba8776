"""Mattes mutual-information optimisation of a fixed->moving transform (SimpleITK).

Transforms follow ITK's resampling convention: they map fixed-image LPS points to
moving-image LPS points.  Sampling is random with a fixed seed, so a run is
reproducible to ~1e-9 mm for a given number of threads; ``itk_threads(1)``
(ITK's global default thread count, which the metric and filters use) makes it
bit-identical, since the thread count changes the summation order.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from localize.errors import RegistrationError

_BINS = 50
_SAMPLES_PER_LEVEL = 15_000
BSPLINE_SPACING_MM = 80.0  # B-spline control point spacing


@dataclass(frozen=True)
class Levels:
    """A multi-resolution schedule: grid spacing and smoothing sigma (mm) per level, coarse to fine.

    Each level's grid is the fixed grid shrunk by an integer factor to about that spacing.
    """

    spacing_mm: tuple[float, ...] = (8.0, 4.0, 2.0)
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


def _shrink(fixed: sitk.Image, spacing_mm: float) -> int:
    return max(1, int(round(spacing_mm / min(fixed.GetSpacing()))))


def _method(fixed: sitk.Image, fixed_mask: sitk.Image, levels: Levels, seed: int) -> sitk.ImageRegistrationMethod:
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=_BINS)
    method.SetMetricFixedMask(fixed_mask)
    method.SetMetricSamplingStrategy(method.RANDOM)
    mask_fraction = max(float(sitk.GetArrayViewFromImage(fixed_mask).mean()), 1e-3)
    voxels = np.prod(fixed.GetSize())
    shrinks = [_shrink(fixed, spacing) for spacing in levels.spacing_mm]
    percentages = [min(1.0, _SAMPLES_PER_LEVEL * s**3 / (voxels * mask_fraction)) for s in shrinks]
    method.SetMetricSamplingPercentagePerLevel(percentages, seed)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetShrinkFactorsPerLevel(shrinks)
    method.SetSmoothingSigmasPerLevel(list(levels.sigma_mm))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return method


def evaluate_metric(
    fixed: sitk.Image, moving: sitk.Image, fixed_mask: sitk.Image, transform: sitk.Transform, seed: int
) -> float:
    """Mattes MI (negative; lower is better) of ``transform`` at full resolution, fixed sampling."""
    method = _method(fixed, fixed_mask, Levels((0.0,), (0.0,)), seed)
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
    bspline: bool = False,
    max_iterations: int = 200,
) -> OptimiserRun:
    """Optimise ``initial`` (a linear transform, or a B-spline on top of a fixed linear one).

    ``fixed`` and ``moving`` are float32 images; ``fixed_mask`` restricts the metric samples.
    For ``bspline``, ``initial`` is the linear transform kept fixed and a B-spline
    (control points every ~80 mm) is optimised on top; the result is their composition.
    """
    start = initial if bspline else initial.__class__(initial)
    initial_metric = evaluate_metric(fixed, moving, fixed_mask, start, seed)
    iterations: list[int] = []
    current = start
    stop = ""
    if bspline:
        mesh = [max(1, int(round(n * s / BSPLINE_SPACING_MM))) for n, s in zip(fixed.GetSize(), fixed.GetSpacing())]
        deformation = sitk.BSplineTransformInitializer(fixed, mesh, order=3)
    for spacing, sigma in zip(levels.spacing_mm, levels.sigma_mm):
        method = _method(fixed, fixed_mask, Levels((spacing,), (sigma,)), seed)
        if bspline:
            method.SetMovingInitialTransform(initial)
            method.SetInitialTransform(deformation, inPlace=True)
            method.SetOptimizerAsLBFGSB(
                gradientConvergenceTolerance=1e-5, numberOfIterations=max_iterations,
                maximumNumberOfCorrections=5, maximumNumberOfFunctionEvaluations=4 * max_iterations,
            )
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
        current = sitk.CompositeTransform([initial, deformation])
    return OptimiserRun(
        transform=current,
        initial_metric=initial_metric,
        final_metric=evaluate_metric(fixed, moving, fixed_mask, current, seed),
        iterations=tuple(iterations),
        converged=not any(phrase in stop.lower()
                          for phrase in ("maximum number of iterations", "too many", "exceeded")),
        stop_condition=stop,
    )


@contextmanager
def itk_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ITK's global default thread count set to ``threads`` (None: leave it)."""
    if threads is None:
        yield
        return
    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)


def _first_line(exc: Exception) -> str:
    """The informative last line of an ITK exception text, on one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
