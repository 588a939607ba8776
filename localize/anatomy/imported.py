"""Imported anatomy: RTSTRUCT masks, TotalSegmentator-style outputs, NIfTI label maps.

Everything is resampled onto the PET grid and named canonically
(``names.canonical_name``): a class is recognised by its name, never by its
index (TotalSegmentator indices differ between tasks and versions: its
``map_to_binary.py``). NIfTI files are read through SimpleITK, which turns the RAS affine
into LPS geometry; the ``totalsegmentator`` package is never imported.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from localize.anatomy.names import canonical_name
from localize.errors import StudyError

_NIFTI_SUFFIXES = (".nii.gz", ".nii")


def resample_mask(mask: sitk.Image, grid: sitk.Image) -> np.ndarray:
    """Bool z, y, x array of ``mask`` (any grid, same patient space) on ``grid``: linear weights >= 0.5."""
    as_float = sitk.Cast(mask > 0, sitk.sitkFloat32)
    on_grid = sitk.Resample(as_float, grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayViewFromImage(on_grid) >= 0.5


def masks_from_images(masks: dict[str, sitk.Image], grid: sitk.Image) -> dict[str, np.ndarray]:
    """Named masks (e.g. RTSTRUCT ROIs) -> canonical name -> bool array on ``grid``; same names are united."""
    out: dict[str, np.ndarray] = {}
    for name, image in masks.items():
        key = canonical_name(name)
        array = resample_mask(image, grid)
        out[key] = out[key] | array if key in out else array
    return out


def masks_from_label_map(label_map: sitk.Image, label_names: dict[int, str], grid: sitk.Image) -> dict[str, np.ndarray]:
    """A multilabel image and its value -> class-name table -> canonical name -> bool array on ``grid``."""
    on_grid = sitk.Resample(label_map, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, label_map.GetPixelID())
    values = sitk.GetArrayFromImage(on_grid)
    out: dict[str, np.ndarray] = {}
    for value, name in label_names.items():
        if value == 0:
            continue
        array = values == value
        if not array.any():
            continue
        key = canonical_name(name)
        out[key] = out[key] | array if key in out else array
    return out


def read_label_map(path: str | Path, label_names: dict[int, str] | str | Path | None = None
                   ) -> tuple[sitk.Image, dict[int, str]]:
    """Read a multilabel NIfTI and its names: ``label_names`` (dict or JSON file) or the TotalSegmentator XML header
    extension."""
    path = Path(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise StudyError(f"cannot read label map: {str(exc).splitlines()[0]}", path) from None
    if isinstance(label_names, (str, Path)):
        label_names = _json_names(Path(label_names))
    if label_names is None:
        label_names = _xml_names(path)
    if not label_names:
        raise StudyError("label map has no class names: give a value -> name mapping", path)
    return sitk.Cast(image, sitk.sitkUInt16), label_names


def read_mask_folder(folder: str | Path) -> dict[str, sitk.Image]:
    """A TotalSegmentator-style folder of ``<class>.nii.gz`` binary masks -> class name -> mask image."""
    folder = Path(folder)
    out = {}
    for file in sorted(folder.iterdir()):
        name = next((file.name[: -len(s)] for s in _NIFTI_SUFFIXES if file.name.endswith(s)), None)
        if name is None:
            continue
        try:
            out[name] = sitk.ReadImage(str(file))
        except RuntimeError as exc:
            raise StudyError(f"cannot read mask: {str(exc).splitlines()[0]}", file) from None
    if not out:
        raise StudyError("no NIfTI masks in this folder", folder)
    return out


def _json_names(path: Path) -> dict[int, str]:
    try:
        doc = json.loads(path.read_text())
        return {int(k): str(v) for k, v in doc.items()}
    except (OSError, ValueError, AttributeError) as exc:
        raise StudyError(f"cannot read label names (JSON object value -> name expected): {exc}", path) from None


def _xml_names(path: Path) -> dict[int, str]:
    """Names from a Caret/CIFTI ``LabelTable`` XML header extension, as TotalSegmentator ``--ml`` writes."""
    try:
        header = nib.load(str(path)).header
    except Exception:  # nibabel raises many kinds on a file SimpleITK could read; no names then
        return {}
    names: dict[int, str] = {}
    for extension in getattr(header, "extensions", ()):  # NIfTI headers have them, not every nibabel header
        content = extension.get_content()
        text = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)
        if "<Label" not in text:
            continue
        try:
            root = ET.fromstring(text[text.index("<") :].rstrip("\x00"))
        except ET.ParseError:
            continue
        for label in root.iter("Label"):
            key = label.get("Key")
            if key is not None and label.text:
                names[int(key)] = label.text.strip()
    return names
