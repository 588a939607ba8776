"""The ``Anatomy`` of one study: organ and region masks on the PET grid, key levels, midline."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk


@dataclass
class Anatomy:
    """Masks (name -> bool numpy array z, y, x on the PET grid) plus landmarks in LPS mm.

    ``grid`` is the PET image whose geometry the masks share (its pixels are not used).
    ``levels_z_mm`` holds axial levels (LPS z, mm) such as ``aortic_bifurcation``,
    ``common_iliac_bifurcation``, ``pelvic_inlet``, ``symphysis_top``,
    ``symphysis_bottom``, ``diaphragm`` and vertebral body centres ``L3``...
    ``midline_x_mm`` is the patient's left-right midline (LPS x, mm): x greater
    than it is the patient's left. ``sources`` says where each mask came from
    (``ct``, ``pet``, ``rtstruct`` or ``label_map``). ``dropped`` names each built-in
    structure that failed its own check (``anatomy.checks``) and why; a warning says the same.
    """

    grid: sitk.Image
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    levels_z_mm: dict[str, float] = field(default_factory=dict)
    midline_x_mm: float | None = None
    sources: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)

    def mask(self, name: str) -> np.ndarray | None:
        """The mask called ``name`` (None when this study has none)."""
        return self.masks.get(name)

    def to_image(self, name: str) -> sitk.Image:
        """The mask ``name`` as a UInt8 SimpleITK image on the PET grid."""
        image = sitk.GetImageFromArray(self.masks[name].astype(np.uint8))
        image.CopyInformation(self.grid)
        return image
