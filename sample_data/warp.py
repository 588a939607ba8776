"""The smooth map between a varied patient's frame and the standard man's (both LPS mm).

A varied patient is the standard man seen through a warp ``q = W(p)``: ``p`` in the
patient's own frame, ``q`` in the standard man's (z = 0 at the top of his symphysis).
W stretches z piecewise (body height, each vertebra's and disc's height, leg length),
scales x and y (frame size) and adds a smooth random displacement, so organs, bones and
vessels differ in size, position and shape from the ellipsoids they are drawn as. Label
maps are painted in the standard frame and resampled through W (nearest neighbour);
points are carried into the patient's frame by inverting W. Both use one SimpleITK
displacement field, so a truth point and the voxels around it always agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import gaussian_filter

from localize.sample_data.geometry import Grid

LATTICE_MM = 10.0
HALF_WIDTH_MM = 460.0  # the field spans x and y to +-460 mm: a BMI-40 torso with the arms down


@dataclass(frozen=True)
class ZStretch:
    """Piecewise-linear map of z: standard levels ``knots_std`` lie at ``knots_patient`` (both increasing, mm);
    beyond the end knots the end segments' slopes continue."""

    knots_std: tuple[float, ...]
    knots_patient: tuple[float, ...]

    def _extended(self) -> tuple[np.ndarray, np.ndarray]:
        s, p = np.asarray(self.knots_std, float), np.asarray(self.knots_patient, float)
        lo = (p[1] - p[0]) / (s[1] - s[0])
        hi = (p[-1] - p[-2]) / (s[-1] - s[-2])
        s = np.r_[s[0] - 5000, s, s[-1] + 5000]
        p = np.r_[p[0] - 5000 * lo, p, p[-1] + 5000 * hi]
        return s, p

    def to_patient(self, z_std):
        s, p = self._extended()
        return np.interp(z_std, s, p)

    def to_std(self, z_patient):
        s, p = self._extended()
        return np.interp(z_patient, p, s)


class Warp:
    """``W``: patient frame -> standard frame, as one displacement field on a 10 mm lattice.

    ``scale_xy``: the patient's x and y sizes over the standard man's; ``field_mm``: the smooth random
    displacement's RMS per axis (mm) and ``smooth_mm`` its Gaussian correlation length; ``rng`` draws it.
    """

    def __init__(self, stretch: ZStretch, scale_xy: tuple[float, float], field_mm: float, smooth_mm: float,
                 rng: np.random.Generator):
        self.stretch, self.scale_xy = stretch, scale_xy
        z_lo, z_hi = (float(v) for v in stretch.to_patient([-1100.0, 1100.0]))
        n_xy = int(2 * HALF_WIDTH_MM / LATTICE_MM) + 1
        n_z = int(np.ceil((z_hi - z_lo) / LATTICE_MM)) + 1
        origin = np.array([-HALF_WIDTH_MM, -HALF_WIDTH_MM, z_lo])
        x = origin[0] + LATTICE_MM * np.arange(n_xy)
        z = origin[2] + LATTICE_MM * np.arange(n_z)
        noise = rng.standard_normal((3, n_z, n_xy, n_xy))
        field = np.empty((n_z, n_xy, n_xy, 3))
        for axis in range(3):
            smooth = gaussian_filter(noise[axis], smooth_mm / LATTICE_MM, mode="nearest")
            field[..., axis] = smooth * (field_mm / max(smooth.std(), 1e-12))
        sx, sy = scale_xy
        field[..., 0] += (x / sx - x)[None, None, :]
        field[..., 1] += (x / sy - x)[None, :, None]
        field[..., 2] += (stretch.to_std(z) - z)[:, None, None]
        image = sitk.GetImageFromArray(field, isVector=True)
        image.SetOrigin(tuple(origin)), image.SetSpacing((LATTICE_MM,) * 3)
        self.transform = sitk.DisplacementFieldTransform(image)

    def to_std(self, p_mm) -> np.ndarray:
        """W(p): a patient-frame point in the standard frame."""
        return np.array(self.transform.TransformPoint(tuple(float(v) for v in p_mm)))

    def to_patient(self, q_mm) -> np.ndarray:
        """The patient-frame point p with W(p) = q (Newton steps with the diagonal of W's Jacobian)."""
        q = np.asarray(q_mm, float)
        sx, sy = self.scale_xy
        p = np.array([q[0] * sx, q[1] * sy, float(self.stretch.to_patient(q[2]))])
        for _ in range(60):
            residual = q - self.to_std(p)
            if np.abs(residual).max() < 1e-4:
                return p
            dz = float(self.stretch.to_patient(q[2] + 0.5) - self.stretch.to_patient(q[2] - 0.5))
            p = p + residual * (sx, sy, dz)
        raise AssertionError(f"the warp cannot be inverted at {q}")

    def resample(self, paint_std: Callable[[Grid], np.ndarray], grid: Grid) -> np.ndarray:
        """A label map (z, y, x, integer) on the patient-frame ``grid``: ``paint_std`` paints it in the standard
        frame on a grid of the same spacing covering W(grid); nearest-neighbour resampling carries it over."""
        axes = [grid.origin_mm[a] + grid.spacing_mm[a] * np.linspace(0, grid.size_xyz[a] - 1, 5) for a in range(3)]
        mapped = np.array([self.to_std(p) for p in np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)])
        spacing = np.asarray(grid.spacing_mm)
        lo = mapped.min(axis=0) - 4 * spacing - 3 * LATTICE_MM
        hi = mapped.max(axis=0) + 4 * spacing + 3 * LATTICE_MM
        size = tuple(int(v) for v in np.ceil((hi - lo) / spacing) + 1)
        std = Grid(tuple(lo), grid.spacing_mm, size)
        painted = paint_std(std)
        source = sitk.GetImageFromArray(painted)
        source.SetOrigin(std.origin_mm), source.SetSpacing(std.spacing_mm)
        reference = sitk.Image(grid.size_xyz, source.GetPixelID())
        reference.SetOrigin(grid.origin_mm), reference.SetSpacing(grid.spacing_mm)
        out = sitk.Resample(source, reference, self.transform, sitk.sitkNearestNeighbor, 0)
        return sitk.GetArrayFromImage(out)
