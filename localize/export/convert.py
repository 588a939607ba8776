"""Every image series under a folder -> one NIfTI (RAS affine) + JSON sidecar per series.

CT is in HU, MR in stored values x RescaleSlope + RescaleIntercept, PET in SUVbw
(computed at load by ``localize.load.pet``, its provenance in the sidecar). A series
that fails becomes a one-line error in the result and the others go on. Nothing
is written under the input folder.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from localize import __version__
from localize.errors import ConfigError, LocalizeError, SeriesError
from localize.export.nifti import affine_ras, write_nifti
from localize.load.index import Series, index_folder
from localize.load.volume import Volume, load_series, split_series
from localize.safe_names import safe_name, unique_name

#: Modalities whose instances are not images of the patient (nothing to convert).
NON_IMAGE_MODALITIES = frozenset(
    {"RTSTRUCT", "RTPLAN", "RTRECORD", "RTDOSE", "SEG", "SR", "PR", "KO", "REG", "RWV", "DOC", "PLAN"}
)
_UNITS = {"CT": "HU", "PT": "SUVbw (g/ml)"}


@dataclass
class ConvertedSeries:
    """Outcome for one series (or one part of a split series).

    ``nifti`` and ``sidecar`` are None when ``error`` (one line) says why not.
    """

    series_instance_uid: str
    modality: str | None
    description: str | None
    nifti: Path | None = None
    sidecar: Path | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


def convert_folder(path: str | Path, out_dir: str | Path, *, strict: bool = False) -> list[ConvertedSeries]:
    """Convert every image series under ``path`` into ``out_dir`` (created if missing).

    ``strict`` refuses series with missing slices or non-uniform spacing instead
    of resampling them. Raises ``ConfigError`` when ``out_dir`` lies inside ``path``.
    """
    root = Path(path).resolve()
    out = Path(out_dir).resolve()
    if out == root or root in out.parents:
        raise ConfigError("the output folder must not be inside the input folder", out)
    archive = index_folder(root)
    results: list[ConvertedSeries] = []
    taken: set[str] = set()  # stems written so far, lower-cased: no two series share a file
    for series in archive.all_series():
        if series.modality in NON_IMAGE_MODALITIES or series.geometry.rows is None:
            continue
        results += _convert_series(series, out, strict, taken)
    return results


def output_stem(series: Series, part: int | None = None) -> str:
    """File name stem: modality, sanitised description, short hash of the UID (see ``localize.safe_names``)."""
    text = f"{series.series_number or 0}_{series.description or 'series'}"
    short = hashlib.sha1(series.series_instance_uid.encode("utf-8", "replace")).hexdigest()[:8]
    suffix = f"_part{part}" if part is not None else ""
    modality = safe_name(series.modality, fallback="OT", max_length=16)
    return f"{modality}_{safe_name(text, fallback='series')}_{short}{suffix}"


def _convert_series(series: Series, out: Path, strict: bool, taken: set[str]) -> list[ConvertedSeries]:
    files = [Path(f) for f in series.files]
    try:
        return [_convert_files(series, files, out, strict, None, taken)]
    except SeriesError as first_error:  # several series under one UID: try them apart
        try:
            groups = split_series(files)
        except LocalizeError:
            groups = [files]
        if len(groups) < 2:
            return [_failed(series, first_error)]
    except LocalizeError as exc:  # e.g. a PET without what SUV needs: this series only
        return [_failed(series, exc)]
    results = []
    for part, group in enumerate(groups, start=1):
        try:
            results.append(_convert_files(series, group, out, strict, part, taken))
        except LocalizeError as exc:
            results.append(_failed(series, exc))
    return results


def _failed(series: Series, exc: LocalizeError) -> ConvertedSeries:
    return ConvertedSeries(series.series_instance_uid, series.modality, series.description, error=str(exc))


def whole_numbers_as_int16(image: sitk.Image) -> sitk.Image:
    """``image`` as Int16 when every value is a whole number in the int16 range (e.g. CT in HU), else as is.

    Lossless; halves the file and the time to compress it.
    """
    values = sitk.GetArrayViewFromImage(image)
    if values.size == 0 or values.min() < -32768 or values.max() > 32767:
        return image
    if not np.array_equal(values, np.rint(values)):
        return image
    return sitk.Cast(image, sitk.sitkInt16)


def _convert_files(series: Series, files: list[Path], out: Path, strict: bool, part: int | None,
                   taken: set[str]) -> ConvertedSeries:
    """Load one loadable group of files and write its NIfTI and sidecar."""
    suv: dict | None = None
    if series.modality == "PT":
        from localize.load.pet import load_pet

        pet = load_pet(files, strict=strict)
        image, volume = pet.image, pet.volume
        suv = pet.calibration.to_dict()
        warnings = list(volume.warnings) + list(pet.calibration.warnings)
    else:
        volume = load_series(files, strict=strict)
        image = whole_numbers_as_int16(volume.image)
        warnings = list(volume.warnings)
    sidecar = _sidecar(series, image, volume, warnings, suv, part)
    nifti = write_nifti(image, out / f"{unique_name(output_stem(series, part), taken, max_length=128)}.nii.gz", sidecar)
    return ConvertedSeries(
        series.series_instance_uid,
        series.modality,
        series.description,
        nifti=nifti,
        sidecar=nifti.with_name(nifti.name.removesuffix(".nii.gz") + ".json"),
        warnings=warnings,
    )


def _sidecar(
    series: Series, image: sitk.Image, volume: Volume, warnings: list[str], suv: dict | None, part: int | None
) -> dict:
    """Series identity, geometry (LPS, plus the RAS affine written) and provenance."""
    geometry: dict = {
        "size_ijk": list(image.GetSize()),
        "spacing_mm": list(image.GetSpacing()),
        "origin_lps_mm": list(image.GetOrigin()),
        "direction_lps": list(image.GetDirection()),
        "affine_ras": affine_ras(image).tolist(),
    }
    if volume is not None:
        geometry["resampled"] = volume.resampled
        geometry["slice_positions_lps_mm"] = volume.positions_lps_mm.tolist()
    return {
        "series_instance_uid": series.series_instance_uid,
        "study_instance_uid": series.study_instance_uid,
        "frame_of_reference_uid": series.frame_of_reference_uid,
        "modality": series.modality,
        "sop_class_uid": series.sop_class_uid,
        "series_number": series.series_number,
        "series_description": series.description,
        "part": part,
        "instance_count": series.instance_count,
        "sop_instance_uids": volume.sop_instance_uids if volume else None,
        "units": _UNITS.get(series.modality or "", "stored value x RescaleSlope + RescaleIntercept"),
        "geometry": geometry,
        "warnings": warnings,
        "suv": suv,
        "software": f"localize {__version__}",
    }
