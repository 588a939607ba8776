"""Operations on bool masks (numpy z, y, x) slice by axial slice: in-plane connectivity and hole filling.

A hole is a background region of an axial slice that does not reach the slice's edge: a marrow cavity
inside its cortex, the lungs inside the chest wall. Filling in-plane leaves regions open along z (the
spinal canal, a bowel loop) unfilled only where they open in the slice itself.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# 4-connected within an axial slice, never across slices
IN_SLICE = np.array([[[0, 0, 0], [0, 0, 0], [0, 0, 0]],
                     [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
                     [[0, 0, 0], [0, 0, 0], [0, 0, 0]]], bool)


def slice_holes(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels, hole): the background of ``mask`` labelled in-plane (``IN_SLICE``) and, per label, whether
    it is a hole of its axial slice."""
    labels, n = ndimage.label(~mask, structure=IN_SLICE)
    hole = np.ones(n + 1, bool)
    hole[0] = False
    hole[labels[:, [0, -1], :]] = False
    hole[labels[:, :, [0, -1]]] = False
    return labels, hole


def fill_slices(mask: np.ndarray) -> np.ndarray:
    """``mask`` with every hole of each axial slice filled (``binary_fill_holes`` in-plane)."""
    labels, hole = slice_holes(mask)
    return mask | hole[labels]


def fill_small_holes(mask: np.ndarray, max_pixels: float) -> np.ndarray:
    """``mask`` with the holes of each axial slice filled when at most ``max_pixels`` in area."""
    labels, hole = slice_holes(mask)
    small = hole & (np.bincount(labels.ravel(), minlength=hole.size) <= max_pixels)
    return mask | small[labels]
