"""NIfTI lesion label map with a JSON sidecar describing each label.

The label map is the lesion label image (PET grid, 0 = background, value =
``Lesion.label``) written by ``localize.export.nifti.write_nifti`` (RAS affine, as
NIfTI requires). The sidecar maps each label value to the lesion's id, region,
site, SUVs and its points, given both in RAS mm (to use with the NIfTI) and in
LPS mm (as in findings.json), in the PET frame of reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import SimpleITK as sitk

from localize.export.nifti import lps_to_ras, write_nifti
from localize.findings import Findings, Lesion


def _lesion_entry(lesion: Lesion) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": lesion.id, "region": lesion.region, "site": lesion.site, "mitnm": lesion.mitnm,
        "suv_max": lesion.suv_max, "suv_peak": lesion.suv_peak, "suv_mean": lesion.suv_mean,
        "volume_ml": lesion.volume_ml,
    }
    for name in ("target", "peak", "centroid"):
        lps = getattr(lesion, f"{name}_lps_mm")
        entry[f"{name}_lps_mm"] = [float(v) for v in lps]
        entry[f"{name}_ras_mm"] = [float(v) for v in lps_to_ras(lps)]
    return entry


def labelmap_sidecar(findings: Findings) -> dict[str, Any]:
    """The JSON sidecar: ``{"labels": {"<label value>": {...lesion...}}, ...}``."""
    return {
        "description": "PET lesion label map; 0 = background",
        "coordinate_system": "RAS (NIfTI world); *_lps_mm fields are DICOM LPS",
        "frame_of_reference_uid": findings.frame_of_reference_uid,
        "study_instance_uid": findings.study.get("study_instance_uid"),
        "labels": {str(lesion.label): _lesion_entry(lesion) for lesion in sorted(findings.lesions, key=lambda x: x.id)},
    }


def write_labelmap(path: str | Path, findings: Findings, label_image: sitk.Image) -> Path:
    """Write the label map (.nii.gz) and its .json sidecar; returns the NIfTI path."""
    return write_nifti(sitk.Cast(label_image, sitk.sitkUInt16), path, labelmap_sidecar(findings))
