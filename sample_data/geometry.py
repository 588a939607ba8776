"""Axis-aligned voxel grids and smooth solid shapes rasterised inside their bounding boxes.

All points are DICOM LPS millimetres (x toward the patient's left, y posterior,
z superior). Arrays on a grid are indexed z, y, x.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Grid:
    """An axis-aligned grid: ``origin_mm`` is the centre of voxel (0, 0, 0), sizes are x, y, z."""

    origin_mm: tuple[float, float, float]
    spacing_mm: tuple[float, float, float]
    size_xyz: tuple[int, int, int]

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return self.size_xyz[2], self.size_xyz[1], self.size_xyz[0]

    def axis_mm(self, axis: int) -> np.ndarray:
        """Voxel-centre coordinates (mm) along axis 0=x, 1=y, 2=z."""
        return self.origin_mm[axis] + self.spacing_mm[axis] * np.arange(self.size_xyz[axis])

    def index_range(self, axis: int, lo_mm: float, hi_mm: float) -> slice:
        """Slice of voxel indices whose centres lie within [lo_mm, hi_mm] (may be empty)."""
        o, s, n = self.origin_mm[axis], self.spacing_mm[axis], self.size_xyz[axis]
        i0 = max(0, int(np.ceil((lo_mm - o) / s)))
        i1 = min(n, int(np.floor((hi_mm - o) / s)) + 1)
        return slice(i0, max(i0, i1))

    def world_to_index(self, point_mm) -> np.ndarray:
        """Continuous (x, y, z) voxel index of an LPS point."""
        return (np.asarray(point_mm, float) - self.origin_mm) / self.spacing_mm

    def refined(self, factor: int) -> Grid:
        """The grid with each voxel split into ``factor``^3 sub-voxels (same outer extent)."""
        sp = tuple(s / factor for s in self.spacing_mm)
        org = tuple(o - s / 2 + f / 2 for o, s, f in zip(self.origin_mm, self.spacing_mm, sp))
        return Grid(org, sp, tuple(n * factor for n in self.size_xyz))


class Shape:
    """A solid: ``bbox()`` gives (lo, hi) LPS mm corners; ``inside(x, y, z)`` broadcasts."""

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def inside(self, x, y, z):
        raise NotImplementedError


@dataclass(frozen=True)
class Ellipsoid(Shape):
    """Axis-aligned ellipsoid, optionally clipped to a box ``clip_lo``..``clip_hi`` (mm)."""

    center: tuple[float, float, float]
    semi_mm: tuple[float, float, float]
    clip_lo: tuple[float, float, float] = (-1e9, -1e9, -1e9)
    clip_hi: tuple[float, float, float] = (1e9, 1e9, 1e9)

    def bbox(self):
        c, r = np.asarray(self.center), np.asarray(self.semi_mm)
        return np.maximum(c - r, self.clip_lo), np.minimum(c + r, self.clip_hi)

    def inside(self, x, y, z):
        (cx, cy, cz), (a, b, c) = self.center, self.semi_mm
        q = ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 + ((z - cz) / c) ** 2
        lo, hi = self.clip_lo, self.clip_hi
        box = (x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1]) & (z >= lo[2]) & (z <= hi[2])
        return (q <= 1.0) & box

    def shrunk(self, mm: float) -> Ellipsoid:
        return Ellipsoid(self.center, tuple(max(s - mm, 0.5) for s in self.semi_mm), self.clip_lo, self.clip_hi)


@dataclass(frozen=True)
class OrientedEllipsoid(Shape):
    """Ellipsoid whose semi-axes ``semi_mm`` lie along the columns of the rotation ``axes`` (3x3, LPS)."""

    center: tuple[float, float, float]
    semi_mm: tuple[float, float, float]
    axes: tuple[tuple[float, float, float], ...]

    def bbox(self):
        half = np.sqrt(((np.asarray(self.axes) * self.semi_mm) ** 2).sum(axis=1))
        return np.asarray(self.center) - half, np.asarray(self.center) + half

    def inside(self, x, y, z):
        r, c = np.asarray(self.axes, float), self.center
        dx, dy, dz = x - c[0], y - c[1], z - c[2]
        q = sum(((r[0, j] * dx + r[1, j] * dy + r[2, j] * dz) / self.semi_mm[j]) ** 2 for j in range(3))
        return q <= 1.0


@dataclass(frozen=True)
class Capsule(Shape):
    """Segment a-b swept by a sphere whose radius goes linearly from ``ra`` to ``rb`` (mm)."""

    a: tuple[float, float, float]
    b: tuple[float, float, float]
    ra: float
    rb: float

    def bbox(self):
        a, b, r = np.asarray(self.a), np.asarray(self.b), max(self.ra, self.rb)
        return np.minimum(a, b) - r, np.maximum(a, b) + r

    def inside(self, x, y, z):
        a, b = np.asarray(self.a, float), np.asarray(self.b, float)
        d = b - a
        t = ((x - a[0]) * d[0] + (y - a[1]) * d[1] + (z - a[2]) * d[2]) / max(float(d @ d), 1e-12)  # a == b: a ball
        t = np.clip(t, 0.0, 1.0)
        dist2 = (x - a[0] - t * d[0]) ** 2 + (y - a[1] - t * d[1]) ** 2 + (z - a[2] - t * d[2]) ** 2
        return dist2 <= (self.ra + t * (self.rb - self.ra)) ** 2

    def shrunk(self, mm: float) -> Capsule:
        return Capsule(self.a, self.b, max(self.ra - mm, 0.5), max(self.rb - mm, 0.5))


def tube(points, radii) -> list[Capsule]:
    """A polyline tube as capsules; ``radii`` is one radius or one per point (mm)."""
    radii = np.broadcast_to(np.asarray(radii, float), (len(points),))
    return [Capsule(tuple(points[i]), tuple(points[i + 1]), radii[i], radii[i + 1]) for i in range(len(points) - 1)]


def box_slices(grid: Grid, lo, hi) -> tuple[slice, slice, slice] | None:
    """z, y, x slices of the grid covering the box lo..hi (mm), or None when empty."""
    sl = [grid.index_range(ax, lo[ax], hi[ax]) for ax in (2, 1, 0)]
    if any(s.stop <= s.start for s in sl):
        return None
    return tuple(sl)


def rasterise(shape: Shape, grid: Grid):
    """(z, y, x slices, boolean mask inside them) of a shape on a grid, or None when outside."""
    lo, hi = shape.bbox()
    sl = box_slices(grid, lo, hi)
    if sl is None:
        return None
    z = grid.axis_mm(2)[sl[0]][:, None, None]
    y = grid.axis_mm(1)[sl[1]][None, :, None]
    x = grid.axis_mm(0)[sl[2]][None, None, :]
    return sl, np.broadcast_to(shape.inside(x, y, z), (len(z), y.shape[1], x.shape[2]))


def paint(target: np.ndarray, shape: Shape, grid: Grid, value) -> None:
    """Set ``target`` (z, y, x on ``grid``) to ``value`` inside the shape."""
    hit = rasterise(shape, grid)
    if hit is not None:
        sl, mask = hit
        target[sl][mask] = value
