"""Anatomy on the PET grid: built in from CT (+ PET), overridden by imported structures.

``build_anatomy`` combines three sources, an imported structure winning over a
built-in one of the same name: CT heuristics (``ct_heuristics``), an RTSTRUCT
of planning structures (TG-263 names and synonyms) and a label map such as
TotalSegmentator output (classes mapped by name, ``imported``). Masks are bool
numpy arrays (z, y, x) on the PET grid.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from localize.anatomy.checks import check_anatomy
from localize.anatomy.ct_heuristics import ct_anatomy, ct_on_grid
from localize.anatomy.grids import masks_to_grid, working_grid
from localize.anatomy.imported import masks_from_images, masks_from_label_map, read_label_map, read_mask_folder
from localize.anatomy.model import Anatomy
from localize.anatomy.names import canonical_name
from localize.anatomy.pet_organs import pet_organs
from localize.detection.metrics import zyx_to_lps

__all__ = [
    "Anatomy",
    "build_anatomy",
    "canonical_name",
    "read_label_map",
    "read_mask_folder",
]

_BONES = ("sacrum", "hip_left", "hip_right", "femur_left", "femur_right", "pubic_symphysis")


def build_anatomy(
    ct: sitk.Image | None,
    pet: sitk.Image,
    *,
    rtstruct_masks: dict[str, sitk.Image] | None = None,
    label_map: sitk.Image | None = None,
    label_names: dict[int, str] | None = None,
    pet_patterns: tuple[str, ...] = (),
) -> Anatomy:
    """Masks on the PET grid for one study; ``ct`` in HU, ``pet`` in SUVbw, same patient space.

    ``rtstruct_masks``: ROI name -> mask image (any grid); ``label_map`` with
    ``label_names`` (value -> class name): a multilabel image such as
    TotalSegmentator's. Imported structures override the CT heuristics; the
    label map overrides the RTSTRUCT. Each structure left from the CT then checks
    itself against its neighbours (``checks``); one that fails is dropped with a warning. ``pet_patterns``: organs to
    find on the PET alone where no other source gave them (see ``pet_organs``).
    """
    anatomy = Anatomy(grid=pet)
    suv = sitk.GetArrayViewFromImage(pet).astype(np.float32)
    if ct is not None:
        work = working_grid(pet)  # the PET grid, or a coarser one over the same field for a fine PET
        work_pet = pet if work is pet else sitk.Resample(pet, work, sitk.Transform(), sitk.sitkLinear, 0.0)
        work_suv = suv if work is pet else sitk.GetArrayViewFromImage(work_pet).astype(np.float32)
        parts, midline = ct_anatomy(ct_on_grid(ct, work_pet), work_suv, work_pet, ct)
        masks = masks_to_grid(parts.masks, work_pet, pet)
        anatomy.warnings += parts.warnings
        anatomy.dropped.update(parts.dropped)
        anatomy.masks.update(masks)
        anatomy.sources.update({name: "ct" for name in masks})
        anatomy.levels_z_mm.update(parts.levels)
        anatomy.midline_x_mm = midline
    else:
        anatomy.warnings.append("no CT: built-in anatomy skipped, only imported structures are used")
    if rtstruct_masks:
        imported = masks_from_images(rtstruct_masks, pet)
        anatomy.masks.update(imported)
        anatomy.sources.update({name: "rtstruct" for name in imported})
    if label_map is not None:
        if not label_names:
            anatomy.warnings.append("label map without class names ignored: classes are matched by name only")
        else:
            imported = masks_from_label_map(label_map, label_names, pet)
            anatomy.masks.update(imported)
            anatomy.sources.update({name: "label_map" for name in imported})
    check_anatomy(anatomy)
    if pet_patterns:
        missing = tuple(n for n in pet_patterns if not any(m.startswith(n.rstrip("s")) for m in anatomy.masks))
        found = pet_organs(pet, wanted=missing) if missing else {}
        anatomy.masks.update(found)
        anatomy.sources.update({name: "pet" for name in found})
    _derive(anatomy)
    return anatomy


def _derive(anatomy: Anatomy) -> None:
    """Fill the combined masks and levels that imported structures imply (bone, levels, midline)."""
    masks = anatomy.masks
    vertebrae = {name: m for name, m in masks.items() if name.startswith("vertebrae_")}
    imported_bones = [m for name, m in masks.items() if anatomy.sources.get(name) != "ct"
                      and (name in _BONES or name in vertebrae or name.startswith("rib_"))]
    if imported_bones:
        bone = np.logical_or.reduce(imported_bones)
        masks["bone"] = masks["bone"] | bone if "bone" in masks else bone
    for name, mask in vertebrae.items():
        if anatomy.sources.get(name) == "ct" or not mask.any():
            continue
        centre = zyx_to_lps(anatomy.grid, np.argwhere(mask).mean(0))
        anatomy.levels_z_mm[name.removeprefix("vertebrae_")] = float(centre[2])
    _disc_level(anatomy, "aortic_bifurcation", "vertebrae_L4", "vertebrae_L5")
    _disc_level(anatomy, "common_iliac_bifurcation", "vertebrae_L5", "sacrum")
    if anatomy.midline_x_mm is None:
        spine = [m for m in vertebrae.values() if m.any()] + ([masks["sacrum"]] if "sacrum" in masks else [])
        if spine:
            anatomy.midline_x_mm = float(zyx_to_lps(anatomy.grid, np.argwhere(np.logical_or.reduce(spine)).mean(0))[0])


def _disc_level(anatomy: Anatomy, level: str, upper: str, lower: str) -> None:
    """Set ``level`` midway between the bottom of ``upper`` and the top of ``lower`` when both were imported."""
    masks = anatomy.masks
    if upper not in masks or lower not in masks or "ct" in (anatomy.sources.get(upper), anatomy.sources.get(lower)):
        return
    if not masks[upper].any() or not masks[lower].any():
        return
    z_upper = zyx_to_lps(anatomy.grid, np.argwhere(masks[upper]).astype(float))[:, 2].min()
    z_lower = zyx_to_lps(anatomy.grid, np.argwhere(masks[lower]).astype(float))[:, 2].max()
    anatomy.levels_z_mm[level] = float((z_upper + z_lower) / 2)
