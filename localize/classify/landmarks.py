"""Landmarks the site rules need, read off an ``Anatomy`` (PET grid, LPS mm).

Axial levels (LPS z, mm) of the aortic and common-iliac bifurcations follow
docs/classification.md#landmark-levels: from the vessel masks when the anatomy has them (aorta:
its most caudal slice; common iliac: where the side's iliac artery splits into
two lumens, extrapolated back to where the branches meet), otherwise from the
vertebral fallbacks (L4/L5 and L5/S1 discs) that ``build_anatomy`` records.
Mask arrays are numpy ``z, y, x``; every point here is LPS mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from scipy import ndimage
from scipy.spatial import Delaunay, QhullError, cKDTree

from localize.anatomy.model import Anatomy
from localize.anatomy.names import NAMED_BONES
from localize.detection.metrics import lps_to_zyx, spacing_zyx_mm, zyx_to_lps

# Top of L5 + half a disc above the L5 centre (adult lumbar body ~27 mm tall, disc ~10 mm [R]):
# the L4/L5 disc, the fallback for the aortic bifurcation when L4 is out of view
# (docs/classification.md#landmark-levels).
L5_CENTRE_TO_L4_L5_DISC_MM = 18.0


@dataclass
class Landmarks:
    """Point queries on the masks of one ``anatomy`` plus the levels of docs/classification.md#landmark-levels."""

    anatomy: Anatomy
    _trees: dict[str, cKDTree | None] = field(default_factory=dict, repr=False)
    _hulls: dict[str, Delaunay | None] = field(default_factory=dict, repr=False)
    _derived: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # masks made here, never put in anatomy

    def mask(self, name: str) -> np.ndarray | None:
        return self._derived.get(name, self.anatomy.masks.get(name))

    def _present(self, name: str) -> np.ndarray:
        """Mask ``name``, which the caller knows is there (KeyError otherwise)."""
        mask = self.mask(name)
        if mask is None:
            raise KeyError(name)
        return mask

    @cached_property
    def spacing(self) -> np.ndarray:
        return spacing_zyx_mm(self.anatomy.grid)

    def has(self, name: str) -> bool:
        mask = self.mask(name)
        return mask is not None and bool(mask.any())

    def index(self, point_lps_mm) -> tuple[int, int, int] | None:
        """Nearest voxel (z, y, x) of the grid to an LPS point, None outside the grid."""
        zyx = np.rint(lps_to_zyx(self.anatomy.grid, np.asarray(point_lps_mm, float))).astype(int)
        shape = self.anatomy.grid.GetSize()[::-1]
        if np.any(zyx < 0) or np.any(zyx >= shape):
            return None
        return int(zyx[0]), int(zyx[1]), int(zyx[2])

    def at(self, name: str, point_lps_mm) -> bool:
        """Whether the voxel nearest the point lies in mask ``name``."""
        ijk = self.index(point_lps_mm)
        return ijk is not None and self.has(name) and bool(self._present(name)[ijk])

    def points(self, name: str) -> np.ndarray:
        """LPS mm centres (N, 3) of the voxels of mask ``name`` (empty when absent)."""
        if not self.has(name):
            return np.empty((0, 3))
        return zyx_to_lps(self.anatomy.grid, np.argwhere(self._present(name)).astype(float))

    def distance_mm(self, name: str, point_lps_mm) -> float:
        """Distance from the point to the nearest voxel centre of mask ``name`` (inf when absent)."""
        if name not in self._trees:
            pts = self.points(name)
            self._trees[name] = cKDTree(pts) if len(pts) else None
        tree = self._trees[name]
        return float("inf") if tree is None else float(tree.query(np.asarray(point_lps_mm, float))[0])

    def in_hull(self, name: str, point_lps_mm) -> bool:
        """Whether the point lies in the convex hull of the voxel centres of mask ``name`` (False when absent
        or flat)."""
        if name not in self._hulls:
            pts = self.points(name)
            try:
                self._hulls[name] = Delaunay(pts) if len(pts) >= 4 else None
            except QhullError:  # coplanar voxels: no volume to lie in
                self._hulls[name] = None
        hull = self._hulls[name]
        return hull is not None and bool(hull.find_simplex(np.asarray(point_lps_mm, float)) >= 0)

    def depth_mm(self, name: str, point_lps_mm) -> float:
        """Distance from a point inside mask ``name`` to the nearest voxel centre on its surface."""
        key = f"{name}/surface"
        if key not in self._trees:
            mask = self._present(name)
            surface = mask & ~ndimage.binary_erosion(mask)
            pts = zyx_to_lps(self.anatomy.grid, np.argwhere(surface).astype(float))
            self._trees[key] = cKDTree(pts) if len(pts) else None
        tree = self._trees[key]
        return 0.0 if tree is None else float(tree.query(np.asarray(point_lps_mm, float))[0])

    def fraction_in(self, name: str, point_lps_mm, radius_mm: float) -> float:
        """Fraction of the voxels within ``radius_mm`` of the point that lie in mask ``name``."""
        ijk = self.index(point_lps_mm)
        if ijk is None or not self.has(name):
            return 0.0
        half = np.maximum(np.ceil(radius_mm / self.spacing).astype(int), 1)
        lo = np.maximum(np.array(ijk) - half, 0)
        hi = np.minimum(np.array(ijk) + half + 1, self._present(name).shape)
        grids = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
        dist2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, ijk, self.spacing))
        ball = dist2 <= radius_mm**2
        crop = self._present(name)[tuple(slice(a, b) for a, b in zip(lo, hi))]
        return float(crop[ball].mean()) if ball.any() else 0.0

    def level(self, name: str) -> float | None:
        return self.anatomy.levels_z_mm.get(name)

    @cached_property
    def bone_mask_name(self) -> str:
        """``imported_bone`` (union of imported named bones) when the anatomy has any, else ``bone``.

        The CT bone mask fills in-plane holes, so inside a closed axial bony ring (true
        pelvis at the sacroiliac level, obturator region) it covers soft tissue too;
        imported bone masks (label map, RTSTRUCT) do not.
        """
        imported = [m for name, m in self.anatomy.masks.items()
                    if name.startswith(NAMED_BONES) and self.anatomy.sources.get(name) not in (None, "ct")]
        if imported:
            self._derived["imported_bone"] = np.logical_or.reduce(imported)
            return "imported_bone"
        return "bone"

    @cached_property
    def diaphragm_z_mm(self) -> float | None:
        """Top of the abdomen: the recorded diaphragm level, else the lowest voxel of imported lungs when it
        lies above the grid's lowest slice (lungs reaching the field's edge have their bases below it)."""
        if self.level("diaphragm") is not None:
            return self.level("diaphragm")
        if self.anatomy.sources.get("lung_left") == "ct" or self.anatomy.sources.get("lung_right") == "ct":
            return None  # the CT rules record the level whenever they can tell it
        lungs = [self.points(n) for n in ("lung_left", "lung_right") if self.has(n)]
        if not lungs:
            return None
        bottom = float(min(p[:, 2].min() for p in lungs))
        grid_bottom = float(min(zyx_to_lps(self.anatomy.grid, np.array([k, 0.0, 0.0]))[2]
                                for k in (0, self.anatomy.grid.GetSize()[2] - 1)))
        return bottom if bottom > grid_bottom + 0.5 * float(self.spacing[0]) else None

    @cached_property
    def subdiaphragmatic_top_z_mm(self) -> float | None:
        """The highest level known to lie below the diaphragm: the centre of the highest lumbar vertebra,
        the pelvic levels, or the top of a CT field that shows no lung (``no_lung_below``); None without any.

        The lung bases reach down behind the liver to about T12-L1 [REC: standard anatomy], so thoracic
        vertebrae do not count."""
        names = ("L1", "L2", "L3", "L4", "L5", "aortic_bifurcation", "common_iliac_bifurcation", "pelvic_inlet",
                 "symphysis_top", "no_lung_below")
        found = [z for n in names if (z := self.level(n)) is not None]
        return max(found) if found else None

    @cached_property
    def aortic_bifurcation_z_mm(self) -> float | None:
        """Lowest slice of the aorta mask, else the L4/L5 disc level, else ~L5 centre + 18 mm.

        See docs/classification.md#landmark-levels."""
        if self.has("aorta") and self.has("iliac_artery_left"):
            return float(self.points("aorta")[:, 2].min())
        if self.level("aortic_bifurcation") is not None:
            return self.level("aortic_bifurcation")
        l5 = self.level("L5")
        if l5 is not None:
            return l5 + L5_CENTRE_TO_L4_L5_DISC_MM
        return None

    def ci_bifurcation_z_mm(self, side: str) -> float | None:
        """Common-iliac bifurcation of ``side`` from the iliac artery mask, else the L5/S1 disc level.

        See docs/classification.md#landmark-levels."""
        split = self._iliac_branches(side)
        if split is not None:
            return split[0]
        return self.level("common_iliac_bifurcation")

    def iliac_branch_points(self, side: str) -> tuple[np.ndarray, np.ndarray] | None:
        """LPS centre-line points (N, 3), one per slice, of the external and internal iliac artery of ``side``."""
        split = self._iliac_branches(side)
        return None if split is None else (split[1], split[2])

    @cached_property
    def _branches(self) -> dict[str, tuple[float, np.ndarray, np.ndarray] | None]:
        return {side: _split_iliac(self, side) for side in ("left", "right")}

    def _iliac_branches(self, side: str):
        return self._branches[side]

    @cached_property
    def pubis_y_mm(self) -> float | None:
        """Median LPS y of the pubic-symphysis mask (its centre front to back)."""
        return float(np.median(self.points("pubic_symphysis")[:, 1])) if self.has("pubic_symphysis") else None

    def hip_median_y_mm(self, side: str, z_mm: float, half_height_mm: float = 10.0) -> float | None:
        """Median LPS y of the ``side`` hip bone within ``half_height_mm`` of level ``z_mm``."""
        pts = self.points(f"hip_{side}")
        near = pts[np.abs(pts[:, 2] - z_mm) <= half_height_mm] if len(pts) else pts
        return float(np.median(near[:, 1])) if len(near) else None


# On the PET grid (2-5.5 mm) an iliac artery mask 8-12 mm wide breaks into two sections for a slice where it
# narrows or ends: TotalSegmentator's iliac_artery (common and external iliac, one lumen all the way) parted
# so for one 4 mm slice of the abdomen in tests/data, and phantom masks at their top, 50-85 mm above the
# bifurcation. Branches stay apart from the bifurcation down, though a thin internal iliac may fade out of the
# mask for a few slices: two consecutive slices show a split (training phantoms with their organ maps
# imported: the bifurcation within 20 mm of the true one, 8 mm or less in 9 of 10 checked) [REC].
SPLIT_MIN_SLICES = 2


def _split_iliac(marks: Landmarks, side: str) -> tuple[float, np.ndarray, np.ndarray] | None:
    """(bifurcation z, external points, internal points) of one side's iliac artery mask, or None.

    Below the bifurcation each axial slice of the artery mask shows two lumens: the
    anterior one is the external iliac, the posterior one the internal iliac (standard
    pelvic anatomy: the internal iliac dives posteriorly into the true pelvis). The
    bifurcation is where the two lumens' centres, extrapolated linearly upwards from
    the first slices where they are apart, meet. Two sections count in runs of
    ``SPLIT_MIN_SLICES`` consecutive slices or more.
    """
    name = f"iliac_artery_{side}"
    if not marks.has(name):
        return None
    mask = marks.anatomy.masks[name]
    grid = marks.anatomy.grid
    slices = np.flatnonzero(mask.any((1, 2)))
    z_of = {int(k): float(zyx_to_lps(grid, np.array([k, 0, 0], float))[2]) for k in slices}
    parted: dict[int, list[np.ndarray]] = {}  # slice -> centres (row, column) of its two largest sections
    for k in slices:
        labels, n = ndimage.label(mask[k])
        if n < 2:  # above the bifurcation (one lumen), or only one branch in this slice
            continue
        sizes = ndimage.sum_labels(mask[k], labels, index=np.arange(1, n + 1))
        parted[int(k)] = [np.argwhere(labels == v).mean(0) for v in np.argsort(sizes)[-2:] + 1]
    indices = np.array(sorted(parted), int)
    runs = np.split(indices, np.flatnonzero(np.diff(indices) != 1) + 1) if len(indices) else []
    ext: list[np.ndarray] = []
    inn: list[np.ndarray] = []
    seps: list[tuple[float, float]] = []
    kept = [int(index) for run in runs if len(run) >= SPLIT_MIN_SLICES for index in run]
    for index in sorted(kept, key=lambda index: -z_of[index]):  # top down
        centres = parted[index]
        front, back = sorted(range(2), key=lambda i: centres[i][0])  # row index grows posteriorly
        for i, out in ((front, ext), (back, inn)):  # branch centre lines: one point per slice
            out.append(zyx_to_lps(grid, np.array([index, *centres[i]], float)))
        if len(seps) < 3:
            a, b = (zyx_to_lps(grid, np.array([index, *c])) for c in centres)
            seps.append((z_of[index], float(np.linalg.norm((a - b)[:2]))))
    if not ext:
        return None
    z_split = seps[0][0]
    z_bif = z_split
    if len(seps) >= 2:
        zs, ds = np.array(seps).T
        slope, intercept = np.polyfit(zs, ds, 1)
        if slope < 0:
            z_bif = float(np.clip(-intercept / slope, z_split, z_split + 30.0))
    return z_bif, np.array(ext), np.array(inn)
