"""Index a folder tree of DICOM files: patient -> study -> series, headers only.

``index_folder`` walks any tree (any names and nesting, several patients and
studies mixed, non-DICOM files, DICOMDIRs), reads only the header elements it
needs from each file and groups instances by SeriesInstanceUID. A file that
looks like DICOM but cannot be read is listed in ``Archive.unreadable`` with a
one-line reason and never stops the scan; plain non-DICOM files are counted as
skipped. Nothing is ever written under the input folder.

Positions are DICOM LPS millimetres; the slice "z" range of a series is the
projection of ImagePositionPatient on the slice normal (row cosine x column
cosine), so it is meaningful for any orientation.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.multival import MultiValue
from pydicom.tag import Tag

from localize.errors import DicomReadError, LocalizeError, StudyError
from localize.load.limits import (
    DEFAULT_LIMITS,
    Limits,
    check_dataset,
    check_file,
    looks_like_dicom_without_preamble,
    too_deep,
)
from localize.load.tracer import identify_tracer

INDEX_FORMAT = "localize-index/1"

# Media Storage Directory Storage (PS3.4 Annex B.5): a DICOMDIR is an index of
# files, not an image.
_DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"

# Suffixes DICOM files are commonly stored under. A non-DICOM file with one of
# these (or with none, or a UID-like numeric suffix) is reported, not skipped.
# Modalities of objects without pixel data (PS3.3 C.7.3.1.1.1).
_NO_PIXEL_MODALITIES = {"RTSTRUCT", "RTPLAN", "RTRECORD", "SR", "KO", "PR", "REG", "RWV",
                        "FID", "PLAN", "DOC", "AU", "ECG", "HD"}

_DICOM_SUFFIXES = {"", ".dcm", ".dicom", ".dic", ".ima", ".img"}

# A slice plane is called "oblique" when its normal is more than this many
# degrees from the nearest patient axis.
OBLIQUE_TOLERANCE_DEG = 1.0
# Two orientations (direction cosines) are the same when no component differs
# by more than this.
_ORIENTATION_ATOL = 1e-4
# Positions along the normal closer than this count as one position.
_POSITION_DECIMALS_MM = 2

# Walking more files than this uses a process pool (the pool costs ~0.1 s).
_PARALLEL_MIN_FILES = 2000
_CHUNK_FILES = 256

_HEADER_KEYWORDS = (
        "SOPClassUID",
        "SOPInstanceUID",
        "StudyDate",
        "SeriesDate",
        "StudyTime",
        "SeriesTime",
        "AccessionNumber",
        "Modality",
        "StudyDescription",
        "SeriesDescription",
        "ReferencedSeriesSequence",
        "StudiesContainingOtherReferencedInstancesSequence",
        "PatientName",
        "PatientID",
        "SliceThickness",
        "RadiopharmaceuticalInformationSequence",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SeriesNumber",
        "ImagePositionPatient",
        "ImageOrientationPatient",
        "FrameOfReferenceUID",
        "NumberOfFrames",
        "Rows",
        "Columns",
        "PixelSpacing",
        "SharedFunctionalGroupsSequence",
        "PerFrameFunctionalGroupsSequence",
        "ReferencedFrameOfReferenceSequence",
        "RegistrationSequence",
)
_HEADER_TAGS = [Tag(keyword) for keyword in _HEADER_KEYWORDS]


@dataclass(frozen=True)
class TracerSummary:
    """The tracer of a PET series (see ``localize.load.tracer``)."""

    family: str
    agent: str | None
    radionuclide: str | None


@dataclass(frozen=True)
class Geometry:
    """What a series' headers say about its sampling, without reading pixels.

    ``pixel_spacing_mm`` is DICOM PixelSpacing: (row spacing, column spacing).
    ``z_min_mm``/``z_max_mm`` are positions along the slice normal
    (row cosine x column cosine) in LPS mm; ``n_positions`` counts distinct
    positions (to 0.01 mm); ``n_frames`` sums NumberOfFrames (1 per
    single-frame instance). ``orientation`` is axial, coronal, sagittal,
    oblique (normal > ``OBLIQUE_TOLERANCE_DEG`` from every axis), mixed
    (instances disagree) or unknown (no ImageOrientationPatient).
    """

    rows: int | None
    columns: int | None
    pixel_spacing_mm: tuple[float, float] | None
    slice_thickness_mm: float | None
    orientation: str
    image_orientation: tuple[float, ...] | None
    obliquity_deg: float | None
    z_min_mm: float | None
    z_max_mm: float | None
    n_positions: int
    n_frames: int
    multiframe: bool


@dataclass(frozen=True)
class Series:
    """One series: identity, files (sorted), geometry summary, tracer, references."""

    series_instance_uid: str
    modality: str | None
    sop_class_uid: str | None
    series_number: int | None
    description: str | None
    frame_of_reference_uid: str | None
    study_instance_uid: str
    study_date: str | None
    study_time: str | None
    series_date: str | None
    series_time: str | None
    instance_count: int
    files: tuple[str, ...]
    geometry: Geometry
    tracer: TracerSummary | None = None
    referenced_series_uids: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass
class Study:
    """One study: its series keyed by SeriesInstanceUID."""

    study_instance_uid: str
    study_date: str | None
    study_time: str | None
    description: str | None
    accession_number: str | None
    series: dict[str, Series] = field(default_factory=dict)

    def series_of(self, modality: str) -> list[Series]:
        """Series of one modality ("PT", "CT", "MR", ...), largest first."""
        found = [s for s in self.series.values() if s.modality == modality]
        return sorted(found, key=lambda s: (-s.geometry.n_frames, s.series_number or 0))

    def pet_series(self) -> list[Series]:
        """PET series of the study, largest first."""
        return self.series_of("PT")

    def mr_series(self) -> list[Series]:
        """MR series of the study, largest first."""
        return self.series_of("MR")

    def ct_for(self, pet: Series) -> Series | None:
        """The CT to pair with ``pet``: same frame of reference first, then largest."""
        cts = self.series_of("CT")
        same_frame = [s for s in cts if pet.frame_of_reference_uid and
                      s.frame_of_reference_uid == pet.frame_of_reference_uid]
        found = same_frame or cts
        return found[0] if found else None


@dataclass
class Patient:
    """One patient (by PatientID): studies keyed by StudyInstanceUID."""

    patient_id: str | None
    patient_name: str | None
    studies: dict[str, Study] = field(default_factory=dict)


@dataclass
class Archive:
    """The index of a folder tree.

    ``unreadable`` holds (path, reason) for files that look like DICOM but
    could not be indexed; ``skipped`` counts plain non-DICOM files;
    ``dicomdirs`` lists DICOMDIR index files (recognised, not read as images).
    """

    root: str
    patients: dict[str, Patient] = field(default_factory=dict)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    skipped: int = 0
    dicomdirs: list[str] = field(default_factory=list)
    files_seen: int = 0

    def studies(self) -> Iterator[Study]:
        """All studies, patient by patient."""
        for patient in self.patients.values():
            yield from patient.studies.values()

    def all_series(self) -> Iterator[Series]:
        """All series, study by study."""
        for study in self.studies():
            yield from study.series.values()

    def series(self, uid: str) -> Series:
        """The series with SeriesInstanceUID ``uid``; StudyError if absent."""
        for series in self.all_series():
            if series.series_instance_uid == uid:
                return series
        raise StudyError(f"no series with SeriesInstanceUID {uid} in the index", self.root)

    def study(self, uid: str) -> Study:
        """The study with StudyInstanceUID ``uid``; StudyError if absent."""
        for study in self.studies():
            if study.study_instance_uid == uid:
                return study
        raise StudyError(f"no study with StudyInstanceUID {uid} in the index", self.root)

    def studies_with_pet(self) -> list[Study]:
        """Studies holding at least one PET (PT) series."""
        return [study for study in self.studies() if study.pet_series()]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values; keys are documented in ``to_json``."""
        return {
            "format": INDEX_FORMAT,
            "root": self.root,
            "files_seen": self.files_seen,
            "skipped": self.skipped,
            "dicomdirs": list(self.dicomdirs),
            "unreadable": [{"path": p, "reason": r} for p, r in self.unreadable],
            "patients": [
                {
                    "patient_id": patient.patient_id,
                    "patient_name": patient.patient_name,
                    "studies": [_study_dict(study) for study in patient.studies.values()],
                }
                for patient in self.patients.values()
            ],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The index as JSON.

        Top level: ``format`` ("localize-index/1"), ``root``, ``files_seen``,
        ``skipped``, ``dicomdirs`` (paths), ``unreadable`` ([{path, reason}]),
        ``patients`` ([{patient_id, patient_name, studies}]). A study has
        ``study_instance_uid``, ``study_date``, ``study_time``,
        ``description``, ``accession_number``, ``series``. A series has the
        fields of ``Series`` (``geometry`` as an object with the fields of
        ``Geometry``, lengths in mm; ``tracer`` null or {family, agent,
        radionuclide}; ``files`` sorted paths).
        """
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)


def _study_dict(study: Study) -> dict[str, Any]:
    series = []
    for s in study.series.values():
        entry = {
            "series_instance_uid": s.series_instance_uid,
            "modality": s.modality,
            "sop_class_uid": s.sop_class_uid,
            "series_number": s.series_number,
            "description": s.description,
            "frame_of_reference_uid": s.frame_of_reference_uid,
            "study_date": s.study_date,
            "study_time": s.study_time,
            "series_date": s.series_date,
            "series_time": s.series_time,
            "instance_count": s.instance_count,
            "geometry": {k: (list(v) if isinstance(v, tuple) else v)
                         for k, v in s.geometry.__dict__.items()},
            "tracer": None if s.tracer is None else dict(s.tracer.__dict__),
            "referenced_series_uids": list(s.referenced_series_uids),
            "warnings": list(s.warnings),
            "files": list(s.files),
        }
        series.append(entry)
    return {
        "study_instance_uid": study.study_instance_uid,
        "study_date": study.study_date,
        "study_time": study.study_time,
        "description": study.description,
        "accession_number": study.accession_number,
        "series": series,
    }


# --------------------------------------------------------------------------
# Reading one file


@dataclass(frozen=True, slots=True)
class _Header:
    """What one instance contributes to the index (plain values, picklable)."""

    path: str
    patient_id: str | None
    patient_name: str | None
    study_uid: str
    study_date: str | None
    study_time: str | None
    study_description: str | None
    accession_number: str | None
    series_uid: str
    series_number: int | None
    series_date: str | None
    series_time: str | None
    series_description: str | None
    modality: str | None
    sop_class_uid: str | None
    frame_of_reference_uid: str | None
    rows: int | None
    columns: int | None
    pixel_spacing_mm: tuple[float, float] | None
    slice_thickness_mm: float | None
    orientation: tuple[float, ...] | None
    positions_mm: tuple[tuple[float, float, float], ...]
    n_frames: int
    multiframe: bool
    tracer: TracerSummary | None
    referenced_series_uids: tuple[str, ...]


# Outcome of reading one path: ("header", _Header) | ("unreadable", reason)
# | ("skipped", "") | ("dicomdir", "").
_Outcome = tuple[str, Any]


# Value representations whose raw bytes are plain ASCII (PS3.5 6.2): decoded
# directly, which is several times faster than pydicom's validated conversion.
_ASCII_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI"}
_NESTED_KEYWORDS = ("SliceThickness", "PixelSpacing", "ImagePositionPatient",
                    "ImageOrientationPatient", "SeriesInstanceUID")
_TAG_VR = {kw: (Tag(kw), dictionary_VR(kw)) for kw in _HEADER_KEYWORDS + _NESTED_KEYWORDS}


def _text(ds: pydicom.Dataset, keyword: str) -> str | None:
    """A header value as stripped text (multi-values joined by backslash), or None."""
    tag, vr = _TAG_VR[keyword]
    elem = ds.get_item(tag)
    if elem is None or elem.value is None:
        return None
    if isinstance(elem.value, bytes) and vr in _ASCII_VRS:
        text = elem.value.decode("ascii", errors="replace")
    else:
        value = ds[tag].value
        text = "\\".join(map(str, value)) if isinstance(value, MultiValue) else str(value)
    text = text.strip(" \x00")
    return text or None


def _numbers(ds: pydicom.Dataset, keyword: str) -> list[float] | None:
    """A numeric (DS/IS/US) header value as floats, or None when absent or empty."""
    text = _text(ds, keyword)
    if text is None:
        return None
    return [float(v) for v in text.split("\\")]


def _vector(values: list[float] | None, count: int) -> tuple[float, ...] | None:
    """``values`` as a tuple of ``count`` finite numbers; ValueError otherwise."""
    if values is None:
        return None
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise ValueError(f"expected {count} finite numbers, got {values}")
    return tuple(values)


def _pair(values: list[float] | None) -> tuple[float, float] | None:
    """``values`` as two finite numbers (e.g. PixelSpacing); ValueError otherwise."""
    vector = _vector(values, 2)
    return None if vector is None else (vector[0], vector[1])


def _point(values: list[float]) -> tuple[float, float, float]:
    """``values`` as one point of three finite numbers; ValueError otherwise."""
    _vector(values, 3)
    return values[0], values[1], values[2]


def _integer(ds: pydicom.Dataset, keyword: str) -> int | None:
    values = _numbers(ds, keyword)
    return None if not values else int(values[0])


def _first_item(ds: pydicom.Dataset | None, keyword: str) -> pydicom.Dataset | None:
    seq = None if ds is None else ds.get(keyword)
    return seq[0] if seq else None


def _frame_geometry(
    ds: pydicom.Dataset,
) -> tuple[list[float] | None, list[float] | None, list[float] | None, list[list[float]]]:
    """(orientation, pixel spacing, thickness, positions) of a single- or multi-frame instance.

    Enhanced (multi-frame) objects carry them in the shared and per-frame
    functional groups (PlaneOrientation, PixelMeasures, PlanePosition).
    """
    orientation = _numbers(ds, "ImageOrientationPatient")
    spacing = _numbers(ds, "PixelSpacing")
    thickness = _numbers(ds, "SliceThickness")
    positions = [_numbers(ds, "ImagePositionPatient")]
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    for group in (shared, per_frame[0] if per_frame else None):
        plane = _first_item(group, "PlaneOrientationSequence")
        if plane is not None:
            orientation = orientation or _numbers(plane, "ImageOrientationPatient")
        measures = _first_item(group, "PixelMeasuresSequence")
        if measures is not None:
            spacing = spacing or _numbers(measures, "PixelSpacing")
            thickness = thickness or _numbers(measures, "SliceThickness")
    frame_planes = [_first_item(frame, "PlanePositionSequence") for frame in per_frame]
    planes = [p for p in frame_planes if p is not None]
    if frame_planes and len(planes) == len(frame_planes):
        positions = [_numbers(p, "ImagePositionPatient") for p in planes]
    return orientation, spacing, thickness, [p for p in positions if p is not None]


def _references(ds: pydicom.Dataset) -> tuple[str, ...]:
    """SeriesInstanceUIDs an RTSTRUCT / SEG / REG (or any instance) refers to."""
    uids: list[str] = []
    for item in ds.get("ReferencedSeriesSequence") or []:
        uids.append(item.get("SeriesInstanceUID"))
    for study in ds.get("StudiesContainingOtherReferencedInstancesSequence") or []:
        for item in study.get("ReferencedSeriesSequence") or []:
            uids.append(item.get("SeriesInstanceUID"))
    for frame in ds.get("ReferencedFrameOfReferenceSequence") or []:
        for study in frame.get("RTReferencedStudySequence") or []:
            for item in study.get("RTReferencedSeriesSequence") or []:
                uids.append(item.get("SeriesInstanceUID"))
    return tuple(dict.fromkeys(str(u).strip() for u in uids if u))


def _header(path: str, ds: pydicom.Dataset, tracers: dict[str, TracerSummary]) -> _Header:
    """The index fields of one data set; DicomReadError or ValueError on bad values.

    ``tracers`` caches the tracer per series: it is recognised once per series
    and chunk of files, from the first PET instance read.
    """
    series_uid = _text(ds, "SeriesInstanceUID")
    if series_uid is None:
        raise DicomReadError("DICOM but no SeriesInstanceUID (0020,000E)", path)
    orientation, spacing, thickness, positions = _frame_geometry(ds)
    n_frames = _integer(ds, "NumberOfFrames") or 1
    modality = _text(ds, "Modality")
    tracer = None
    if modality == "PT":
        tracer = tracers.get(series_uid)
        if tracer is None:
            info = identify_tracer(ds)
            tracer = tracers[series_uid] = TracerSummary(info.family, info.agent, info.radionuclide)
    return _Header(
        path=path,
        patient_id=_text(ds, "PatientID"),
        patient_name=_text(ds, "PatientName"),
        study_uid=_text(ds, "StudyInstanceUID") or "",
        study_date=_text(ds, "StudyDate"),
        study_time=_text(ds, "StudyTime"),
        study_description=_text(ds, "StudyDescription"),
        accession_number=_text(ds, "AccessionNumber"),
        series_uid=series_uid,
        series_number=_integer(ds, "SeriesNumber"),
        series_date=_text(ds, "SeriesDate"),
        series_time=_text(ds, "SeriesTime"),
        series_description=_text(ds, "SeriesDescription"),
        modality=modality,
        sop_class_uid=_text(ds, "SOPClassUID"),
        frame_of_reference_uid=_text(ds, "FrameOfReferenceUID"),
        rows=_integer(ds, "Rows"),
        columns=_integer(ds, "Columns"),
        pixel_spacing_mm=_pair(spacing),
        slice_thickness_mm=None if not thickness else thickness[0],
        orientation=_vector(orientation, 6),
        positions_mm=tuple(_point(p) for p in positions),
        n_frames=n_frames,
        multiframe=n_frames > 1,
        tracer=tracer,
        referenced_series_uids=_references(ds),
    )


def _is_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\r\n\t" for c in text)


def _suffix(path: str) -> str:
    """The file name's suffix, lower case ("" without one)."""
    return os.path.splitext(os.path.basename(path))[1].lower()


def _dicom_suffix(path: str) -> bool:
    """A name whose suffix says DICOM (.dcm, .dicom ...): a text file under it is reported, not skipped."""
    return _suffix(path) in _DICOM_SUFFIXES - {""}


def _suspicious_name(path: str) -> bool:
    """Names under which a DICOM file could hide (no suffix, .dcm..., UID-like)."""
    if os.path.basename(path).startswith("."):
        return False
    suffix = _suffix(path)
    return suffix in _DICOM_SUFFIXES or suffix[1:].isdigit()


def _truncation(ds: pydicom.Dataset) -> str | None:
    """Why a data set read to the end of its file is cut short, or None if it is whole.

    stop_before_pixels leaves the file position before PixelData, so an image
    whose header runs to the end of the file lost its pixels; an element whose
    value is shorter than its declared length was cut inside.
    """
    if _text(ds, "Modality") not in _NO_PIXEL_MODALITIES:
        return "truncated: the file ends before its pixel data"
    for elem in ds.elements():
        if (isinstance(elem, RawDataElement) and elem.value is not None
                and elem.length != 0xFFFFFFFF and len(elem.value) < elem.length):
            return f"truncated: the file ends inside element {elem.tag}"
    return None


def _read_one(path: str, tracers: dict[str, TracerSummary], limits: Limits = DEFAULT_LIMITS) -> _Outcome:
    """Classify and read one file within ``limits``; never raises."""
    try:
        check_file(path, limits)
        with open(path, "rb") as handle:
            head = handle.read(132)
            if not head:
                return ("unreadable", "empty file (0 bytes)") if _suspicious_name(path) else ("skipped", "")
            has_prefix = head[128:132] == b"DICM"
            if not has_prefix and not looks_like_dicom_without_preamble(head):
                if _suspicious_name(path) and (not _is_text(head) or _dicom_suffix(path)):
                    if len(head) < 132 and not head.strip(b"\x00"):
                        return ("unreadable", f"truncated: {len(head)} bytes, no DICM prefix")
                    return ("unreadable", "not DICOM: no DICM prefix and no recognisable data set")
                return ("skipped", "")
            handle.seek(0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(handle, stop_before_pixels=True, force=not has_prefix,
                                     specific_tags=_HEADER_TAGS)
                meta = getattr(ds, "file_meta", None) or {}
                sop_class = meta.get("MediaStorageSOPClassUID")
                if os.path.basename(path).upper() == "DICOMDIR" or str(sop_class) == _DICOMDIR_SOP_CLASS:
                    return ("dicomdir", "")
                check_dataset(ds, path, limits)
                if handle.tell() >= os.fstat(handle.fileno()).st_size:
                    reason = _truncation(ds)
                    if reason:
                        return ("unreadable", reason)
                return ("header", _header(path, ds, tracers))
    except LocalizeError as exc:
        return ("unreadable", exc.reason)
    except RecursionError:  # pydicom parses undefined-length sequences recursively
        return ("unreadable", too_deep(path, limits.max_sequence_depth).reason)
    except Exception as exc:  # any parser failure is this file's problem, not the scan's
        reason = " ".join(f"cannot parse header ({type(exc).__name__}: {exc})".split())
        return ("unreadable", reason[:240])


def _read_chunk(paths: Sequence[str], limits: Limits = DEFAULT_LIMITS) -> list[_Outcome]:
    tracers: dict[str, TracerSummary] = {}
    return [_read_one(p, tracers, limits) for p in paths]


# --------------------------------------------------------------------------
# Walking and grouping


def _walk(root: str, unreadable: list[tuple[str, str]]) -> list[str]:
    """Every regular file under root (symlinked folders are not followed)."""
    files: list[str] = []

    def on_error(exc: OSError) -> None:
        unreadable.append((str(exc.filename), f"folder not readable: {exc.strerror}"))

    for folder, _dirs, names in os.walk(root, onerror=on_error):
        files.extend(os.path.join(folder, n) for n in names)
    return files


def _orientation_name(orientation: tuple[float, ...]) -> tuple[str, float]:
    """(axial|coronal|sagittal|oblique, angle of the normal to the nearest axis in degrees)."""
    normal = np.cross(orientation[:3], orientation[3:])
    norm = float(np.linalg.norm(normal))
    if norm < 1e-6:
        raise ValueError("ImageOrientationPatient row and column cosines are parallel")
    normal = np.abs(normal / norm)
    axis = int(np.argmax(normal))
    angle_deg = math.degrees(math.acos(min(1.0, float(normal[axis]))))
    if angle_deg > OBLIQUE_TOLERANCE_DEG:
        return "oblique", angle_deg
    return ("sagittal", "coronal", "axial")[axis], angle_deg


def _first_present(values: Iterable[Any]) -> Any:
    return next((v for v in values if v is not None), None)


def _series_geometry(headers: list[_Header]) -> tuple[Geometry, list[str]]:
    notes: list[str] = []
    orientations = {h.orientation for h in headers if h.orientation is not None}
    reference = _first_present(h.orientation for h in headers)
    distinct = [reference] if reference else []
    for o in orientations:
        if all(not np.allclose(o, d, atol=_ORIENTATION_ATOL) for d in distinct):
            distinct.append(o)
    z_min = z_max = None
    obliquity = None
    n_positions = len({p for h in headers for p in h.positions_mm})
    if not distinct:
        name = "unknown"
    elif len(distinct) > 1:
        name = "mixed"
        notes.append(f"{len(distinct)} different ImageOrientationPatient values")
    else:
        name, obliquity = _orientation_name(reference)
        normal = np.cross(reference[:3], reference[3:])
        normal /= np.linalg.norm(normal)
        along = np.round([float(np.dot(p, normal)) for h in headers for p in h.positions_mm],
                         _POSITION_DECIMALS_MM)
        if along.size:
            z_min, z_max = float(along.min()), float(along.max())
            n_positions = len(set(along.tolist()))
    sizes = {(h.rows, h.columns) for h in headers}
    if len(sizes) > 1:
        notes.append(f"{len(sizes)} different image sizes")
    first = headers[0]
    geometry = Geometry(
        rows=first.rows,
        columns=first.columns,
        pixel_spacing_mm=_first_present(h.pixel_spacing_mm for h in headers),
        slice_thickness_mm=_first_present(h.slice_thickness_mm for h in headers),
        orientation=name,
        image_orientation=reference,
        obliquity_deg=None if obliquity is None else round(obliquity, 3),
        z_min_mm=z_min,
        z_max_mm=z_max,
        n_positions=n_positions,
        n_frames=sum(h.n_frames for h in headers),
        multiframe=any(h.multiframe for h in headers),
    )
    return geometry, notes


def _build_series(headers: list[_Header]) -> Series:
    headers = sorted(headers, key=lambda h: h.path)
    first = headers[0]
    geometry, notes = _series_geometry(headers)
    for label, values in (
        ("Modality", {h.modality for h in headers}),
        ("SOPClassUID", {h.sop_class_uid for h in headers}),
        ("FrameOfReferenceUID", {h.frame_of_reference_uid for h in headers}),
        ("SeriesNumber", {h.series_number for h in headers}),
    ):
        if len(values) > 1:
            notes.append(f"{len(values)} different {label} values")
    tracers = {h.tracer for h in headers if h.tracer is not None}
    if len(tracers) > 1:
        notes.append("instances disagree on the tracer")
    references = tuple(dict.fromkeys(u for h in headers for u in h.referenced_series_uids))
    return Series(
        series_instance_uid=first.series_uid,
        modality=first.modality,
        sop_class_uid=first.sop_class_uid,
        series_number=first.series_number,
        description=_first_present(h.series_description for h in headers),
        frame_of_reference_uid=_first_present(h.frame_of_reference_uid for h in headers),
        study_instance_uid=first.study_uid,
        study_date=first.study_date,
        study_time=first.study_time,
        series_date=first.series_date,
        series_time=first.series_time,
        instance_count=len(headers),
        files=tuple(h.path for h in headers),
        geometry=geometry,
        tracer=_first_present(h.tracer for h in headers),
        referenced_series_uids=references,
        warnings=tuple(notes),
    )


def _group(headers: list[_Header], archive: Archive) -> None:
    by_series: dict[str, list[_Header]] = {}
    for h in headers:
        by_series.setdefault(h.series_uid, []).append(h)
    for series_uid in sorted(by_series, key=lambda u: by_series[u][0].path):
        members = by_series[series_uid]
        first = min(members, key=lambda h: h.path)
        series = _build_series(members)
        patient_key = first.patient_id or ""
        patient = archive.patients.setdefault(
            patient_key, Patient(first.patient_id, first.patient_name))
        study = patient.studies.setdefault(first.study_uid, Study(
            first.study_uid, first.study_date, first.study_time,
            first.study_description, first.accession_number))
        study.series[series_uid] = series


def index_folder(path: str | Path, *, workers: int | None = None, limits: Limits = DEFAULT_LIMITS) -> Archive:
    """Index every DICOM file under ``path`` (headers only; nothing is written).

    ``workers``: processes to read headers with; None picks 1 for small trees
    and the CPU count for trees of more than a few thousand files. A file past
    a ceiling of ``limits`` is listed as unreadable with the reason.
    Raises DicomReadError only when ``path`` is not a readable folder.
    """
    root = os.path.abspath(os.fspath(path))
    if not os.path.isdir(root):
        raise DicomReadError("not a folder", root)
    archive = Archive(root=root)
    files = sorted(_walk(root, archive.unreadable))
    archive.files_seen = len(files)
    if workers is None:
        workers = (os.cpu_count() or 1) if len(files) > _PARALLEL_MIN_FILES else 1
    if workers > 1:
        chunks = [files[i:i + _CHUNK_FILES] for i in range(0, len(files), _CHUNK_FILES)]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            outcomes = [o for chunk in pool.map(_read_chunk, chunks, [limits] * len(chunks)) for o in chunk]
    else:
        outcomes = _read_chunk(files, limits)
    headers: list[_Header] = []
    for file_path, (kind, value) in zip(files, outcomes):
        if kind == "header":
            headers.append(value)
        elif kind == "unreadable":
            archive.unreadable.append((file_path, value))
        elif kind == "dicomdir":
            archive.dicomdirs.append(file_path)
        else:
            archive.skipped += 1
    _group(headers, archive)
    return archive


# --------------------------------------------------------------------------
# Terminal output


def _series_line(series: Series, archive_uids: set[str]) -> str:
    g = series.geometry
    parts = [f"{series.modality or '?':<8}", f"#{series.series_number if series.series_number is not None else '-'}",
             f'"{series.description or ""}"', f"{series.instance_count} inst"]
    if g.multiframe:
        parts.append(f"{g.n_frames} frames")
    if g.rows and g.columns:
        parts.append(f"{g.columns}x{g.rows}")
    if g.pixel_spacing_mm:
        parts.append(f"{g.pixel_spacing_mm[1]:.3g}x{g.pixel_spacing_mm[0]:.3g} mm")
    if g.slice_thickness_mm is not None:
        parts.append(f"thick {g.slice_thickness_mm:.3g} mm")
    if g.orientation != "unknown":
        parts.append(g.orientation)
    if g.z_min_mm is not None:
        parts.append(f"z {g.z_min_mm:.1f}..{g.z_max_mm:.1f} mm ({g.n_positions} pos)")
    if series.frame_of_reference_uid:
        parts.append(f"FoR ..{series.frame_of_reference_uid[-8:]}")
    if series.tracer is not None:
        parts.append(f"tracer {series.tracer.family}"
                     f" ({series.tracer.agent or '?'}, {series.tracer.radionuclide or '?'})")
    line = "  ".join(parts)
    for uid in series.referenced_series_uids:
        line += f"\n        -> {uid} {'(in index)' if uid in archive_uids else '(not in index)'}"
    for note in series.warnings:
        line += f"\n        ! {note}"
    return line


def format_index(archive: Archive) -> str:
    """A readable patient -> study -> series tree for the terminal."""
    n_series = sum(1 for _ in archive.all_series())
    n_instances = sum(s.instance_count for s in archive.all_series())
    lines = [f"{archive.root}: {archive.files_seen} files, {n_instances} DICOM instances in "
             f"{n_series} series, {archive.skipped} skipped, {len(archive.unreadable)} unreadable, "
             f"{len(archive.dicomdirs)} DICOMDIR"]
    uids = {s.series_instance_uid for s in archive.all_series()}
    for patient in archive.patients.values():
        lines.append(f"Patient {patient.patient_name or '?'}  [ID {patient.patient_id or '?'}]")
        for study in patient.studies.values():
            when = " ".join(v for v in (study.study_date, study.study_time) if v) or "no date"
            lines.append(f"  Study {when}  \"{study.description or ''}\"  {study.study_instance_uid}")
            for series in study.series.values():
                lines.append("    " + _series_line(series, uids))
    if archive.unreadable:
        lines.append(f"Unreadable ({len(archive.unreadable)}):")
        lines.extend(f"  {path}: {reason}" for path, reason in archive.unreadable)
    return "\n".join(lines)
