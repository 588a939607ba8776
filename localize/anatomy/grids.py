"""The grid the CT anatomy is built on, and masks moved from it to the PET grid.

Organs, bones and levels are tens of millimetres across: ``WORK_MM`` voxels resolve them. A PET
reconstructed finer (2-2.7 mm voxels over a 70 cm field: 25-60 million voxels) is not worth the
anatomy's time at its own resolution, so the anatomy is built on a grid of the same field, frame and
direction with voxels of at least ``WORK_MM`` and moved back (nearest neighbour) afterwards. A PET with
voxels of ``WORK_MM`` or more is its own working grid.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

WORK_MM = 4.0  # [REC] the coarsest common clinical PET voxel (4-5.5 mm) the CT rules were written for

_BITS = 64  # masks packed per unsigned 64-bit image when moved between grids


def working_grid(pet: sitk.Image) -> sitk.Image:
    """``pet`` itself when no axis is finer than ``WORK_MM``, else an empty image over the same field
    (same first-voxel corner, direction and extent) with voxels of max(its spacing, ``WORK_MM``) mm."""
    spacing = np.array(pet.GetSpacing())
    if spacing.min() >= WORK_MM - 1e-6:
        return pet
    size = np.array(pet.GetSize())
    coarse = np.maximum(spacing, WORK_MM)
    new_size = np.maximum(np.round(size * spacing / coarse).astype(int), 1)
    coarse = size * spacing / new_size  # the same extent exactly
    direction = np.array(pet.GetDirection()).reshape(3, 3)
    corner = np.array(pet.GetOrigin()) - direction @ (spacing / 2)  # the first voxel's outer corner, LPS mm
    grid = sitk.Image([int(n) for n in new_size], sitk.sitkUInt8)
    grid.SetSpacing([float(c) for c in coarse])
    grid.SetDirection(pet.GetDirection())
    grid.SetOrigin([float(v) for v in corner + direction @ (coarse / 2)])
    return grid


def bounding_box(mask: np.ndarray, pad: int = 0) -> tuple[slice, ...] | None:
    """Index box (one slice per axis) of the True voxels of ``mask`` grown by ``pad`` voxels within the
    array; None when ``mask`` is empty."""
    out = []
    for axis in range(mask.ndim):
        index = np.flatnonzero(mask.any(tuple(a for a in range(mask.ndim) if a != axis)))
        if index.size == 0:
            return None
        out.append(slice(max(int(index[0]) - pad, 0), min(int(index[-1]) + 1 + pad, mask.shape[axis])))
    return tuple(out)


def mean_index(mask: np.ndarray) -> np.ndarray:
    """Mean (z, y, x) voxel index of the True voxels of ``mask``, read within their bounding box."""
    box = bounding_box(mask) or tuple(slice(0, n) for n in mask.shape)
    return (np.argwhere(mask[box]) + [b.start for b in box]).mean(0)


def masks_to_grid(masks: dict[str, np.ndarray], source: sitk.Image, grid: sitk.Image) -> dict[str, np.ndarray]:
    """Bool z, y, x ``masks`` on ``source`` -> the same masks on ``grid`` (nearest neighbour, same patient space)."""
    if source is grid:
        return masks
    names = list(masks)
    boxes = {name: bounding_box(masks[name]) for name in names}
    shape = sitk.GetArrayViewFromImage(grid).shape
    out: dict[str, np.ndarray] = {}
    for start in range(0, len(names), _BITS):
        chunk = names[start:start + _BITS]
        packed = np.zeros(next(iter(masks.values())).shape, np.uint64)
        for bit, name in enumerate(chunk):
            if boxes[name] is not None:
                packed[boxes[name]] |= masks[name][boxes[name]].astype(np.uint64) << np.uint64(bit)
        image = sitk.GetImageFromArray(packed)
        image.CopyInformation(source)
        on_grid = sitk.Resample(image, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        moved = sitk.GetArrayViewFromImage(on_grid)
        for bit, name in enumerate(chunk):
            out[name] = np.zeros(shape, bool)
            source_box = boxes[name]
            if source_box is not None:
                box = _box_on(source_box, source, grid)
                out[name][box] = (moved[box] & np.uint64(1 << bit)) != 0
    return out


def _box_on(box: tuple[slice, ...], source: sitk.Image, grid: sitk.Image) -> tuple[slice, ...]:
    """Index box (z, y, x) of ``grid`` holding every voxel whose nearest ``source`` voxel lies in ``box``
    (z, y, x on ``source``), with a voxel to spare."""
    lo = [b.start - 0.5 for b in box[::-1]]  # x, y, z continuous index: the outer faces of the box
    hi = [b.stop - 0.5 for b in box[::-1]]
    corners = np.array([grid.TransformPhysicalPointToContinuousIndex(
        source.TransformContinuousIndexToPhysicalPoint([(lo, hi)[bit][k] for k, bit in enumerate(bits)]))
        for bits in np.ndindex(2, 2, 2)])[:, ::-1]  # z, y, x
    size = grid.GetSize()[::-1]
    return tuple(slice(max(int(np.floor(a)) - 1, 0), min(int(np.ceil(b)) + 2, n))
                 for a, b, n in zip(corners.min(0), corners.max(0), size))
