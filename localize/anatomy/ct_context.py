"""What the CT anatomy rules read (``CTContext``) and what they build (``CTParts``).

Arrays are numpy ``z, y, x`` on the PET (working) grid; coordinates are LPS mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from localize.anatomy.checks import rejection


@dataclass(frozen=True)
class CTContext:
    """One study's CT and PET on ``grid`` with the geometry and the first masks every CT rule reads.

    ``hu``: CT in HU; ``suv``: PET SUVbw; ``spacing``: voxel size (z, y, x) in mm; ``z_mm``,
    ``y_mm``, ``x_mm``: LPS coordinates (mm) of the slices, rows and columns; ``voxel_ml``: one
    voxel's volume; ``body``, ``bone``: bool masks; ``midline_x_mm``: the patient's midline (LPS x, mm).
    """

    hu: np.ndarray
    suv: np.ndarray
    grid: sitk.Image
    spacing: np.ndarray
    z_mm: np.ndarray
    y_mm: np.ndarray
    x_mm: np.ndarray
    voxel_ml: float
    body: np.ndarray
    bone: np.ndarray
    midline_x_mm: float


@dataclass
class CTParts:
    """What CT rules built: masks (bool z, y, x), levels (LPS z, mm), warnings, and the structures
    left out because they failed their own check (name -> why; a warning says the same)."""

    masks: dict[str, np.ndarray] = field(default_factory=dict)
    levels: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)

    @classmethod
    def rejected(cls, names: list[str], why: str) -> CTParts:
        """The parts saying that the structures ``names`` were left out, and why."""
        warning, dropped = rejection(names, why)
        return cls(warnings=[warning], dropped=dropped)

    def add(self, other: CTParts) -> None:
        """Take in ``other``'s masks, levels, warnings and dropped structures (``other``'s win)."""
        self.masks.update(other.masks)
        self.levels.update(other.levels)
        self.warnings += other.warnings
        self.dropped.update(other.dropped)
