"""RT Structure Set export (lesion contours + target points) and import (ROIs to masks).

Contour model (written and read the same way):

- One ``CLOSED_PLANAR`` contour per boundary on each slice plane of the
  referenced series (CT, or MR): the lesion label image is resampled onto the
  series grid (nearest neighbour), and ``skimage.measure.find_contours`` traces
  each slice of the zero-padded mask at level 0.5. Vertices therefore sit on
  voxel-edge midpoints (convex corners cut diagonally), so filling the polygon
  at pixel centres gives back exactly the voxels of the mask.
- Islands are separate contours. A hole is encoded as a separate contour on the
  same plane, lying inside its outer contour; readers combine the contours of
  one plane by XOR (even-odd rule), which is how the reader here fills them.
- Points are converted from (row, column) to LPS with the slice's own
  ImagePositionPatient, ImageOrientationPatient and PixelSpacing
  (DICOM PS3.3 C.7.6.2.1.1: ``P = IPP + col·Δc·X + row·Δr·Y``); each contour references
  the SOP instance of its slice. DS values are formatted to at most 16
  characters (``pydicom.valuerep.format_number_as_ds``).
- Each lesion is a ``GTV`` ROI named ``GTV_<id>_<region>`` and its target
  point a ``POINT`` ROI of type ``MARKER`` named ``TGT_<id>_<region>``
  (docs/coordinates.md#rt-structure-set; names kept within 16 characters for TPS structure IDs).
- A study without lesions still gets a structure set: the RT Structure Set IOD
  needs at least one ROI, so it holds one empty ``NO_LESION`` ROI (type
  ``CONTROL``, no contours), which a planner sees and a TPS accepts.

The file is written in Implicit VR Little Endian, so a long ContourData is
never limited to the 64 KB of an explicit-VR DS element (DICOM PS3.5 7.1.2).
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ImplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds
from scipy import ndimage
from skimage.draw import polygon
from skimage.measure import approximate_polygon, find_contours

from localize import __version__
from localize.atomic import atomic_write
from localize.errors import DicomReadError, SeriesError
from localize.findings import Findings, Lesion
from localize.load.limits import DEFAULT_LIMITS, Limits, read_dataset
from localize.safe_names import clean_label

if TYPE_CHECKING:
    from localize.load.volume import Volume

RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
STUDY_COMPONENT_MANAGEMENT = "1.2.840.10008.3.1.2.3.2"  # RTReferencedStudySequence class (PS3.3 C.8.8.5)

# ROI display colours (RGB) by region; the report uses the same ones.
REGION_COLORS_RGB: dict[str | None, tuple[int, int, int]] = {
    "local": (230, 25, 75),
    "nodal": (255, 180, 0),
    "distant": (0, 130, 200),
    None: (160, 160, 160),
}

Contour = tuple[int, np.ndarray]  # (slice index k of the series, points (n, 3) LPS mm)


def roi_names(lesion: Lesion) -> tuple[str, str]:
    """``(GTV name, target POINT name)`` of a lesion, e.g. ``GTV_01_nodal``, ``TGT_01_nodal``."""
    suffix = f"{lesion.id:02d}" + (f"_{lesion.region}" if lesion.region else "")
    return f"GTV_{suffix}", f"TGT_{suffix}"


def _slice_axes(header: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """``(IPP, X row direction, Y column direction, Δc column spacing, Δr row spacing)`` of one slice."""
    ipp = np.asarray(header.ImagePositionPatient, dtype=float)
    iop = np.asarray(header.ImageOrientationPatient, dtype=float)
    row_spacing, col_spacing = (float(v) for v in header.PixelSpacing)
    return ipp, iop[:3], iop[3:], col_spacing, row_spacing


def _slice_normal(series: Volume) -> np.ndarray:
    iop = np.asarray(series.headers[0].ImageOrientationPatient, dtype=float)
    return np.cross(iop[:3], iop[3:])


def _lesion_corners_lps(
    label_image: sitk.Image, transform: sitk.Transform | None
) -> dict[int, np.ndarray | None]:
    """Per label value, the 8 corners (LPS mm, series frame) of its box grown by one voxel.

    ``None`` means "anywhere" (the transform has no inverse to map the box).
    """
    labels = sitk.GetArrayViewFromImage(label_image)  # z, y, x
    inverse = None
    if transform is not None:
        try:
            inverse = transform.GetInverse()
        except RuntimeError:
            return {int(value): None for value in np.unique(labels) if value}
    corners: dict[int, np.ndarray | None] = {}
    for value, slices in enumerate(ndimage.find_objects(labels), start=1):
        if slices is None:
            continue
        lo = [s.start - 1 for s in reversed(slices)]  # x, y, z
        hi = [s.stop for s in reversed(slices)]
        points = [label_image.TransformContinuousIndexToPhysicalPoint((cx, cy, cz))
                  for cx in (lo[0], hi[0]) for cy in (lo[1], hi[1]) for cz in (lo[2], hi[2])]
        if inverse is not None:
            points = [inverse.TransformPoint(point) for point in points]
        corners[value] = np.array(points)
    return corners


def _slice_labels(
    label_image: sitk.Image, header: Dataset, corners_lps_mm: np.ndarray | None,
    transform: sitk.Transform | None,
) -> tuple[np.ndarray, int, int]:
    """Labels sampled (nearest neighbour) at the pixel centres of one source slice.

    Only the part of the slice around ``corners_lps_mm`` is sampled. Returns
    (rows x columns array, first column, first row).
    """
    ipp, x_dir, y_dir, col_spacing, row_spacing = _slice_axes(header)
    shape = np.array([int(header.Columns), int(header.Rows)])
    start, stop = np.zeros(2, int), shape
    if corners_lps_mm is not None:
        offsets = corners_lps_mm - ipp
        cr = np.column_stack([offsets @ x_dir / col_spacing, offsets @ y_dir / row_spacing])
        start = np.clip(np.floor(cr.min(axis=0)).astype(int) - 1, 0, shape)
        stop = np.clip(np.ceil(cr.max(axis=0)).astype(int) + 2, 0, shape)
    if np.any(stop <= start):
        return np.zeros((0, 0), np.uint16), 0, 0
    reference = sitk.Image([int(stop[0] - start[0]), int(stop[1] - start[1]), 1], sitk.sitkUInt16)
    reference.SetSpacing((col_spacing, row_spacing, 1.0))
    reference.SetDirection(tuple(np.column_stack([x_dir, y_dir, np.cross(x_dir, y_dir)]).ravel()))
    reference.SetOrigin(tuple(ipp + start[0] * col_spacing * x_dir + start[1] * row_spacing * y_dir))
    sampled = sitk.Resample(
        label_image, reference, transform or sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt16
    )
    return sitk.GetArrayFromImage(sampled)[0], int(start[0]), int(start[1])


def lesion_contours(
    label_image: sitk.Image, series: Volume, transform: sitk.Transform | None = None
) -> dict[int, list[Contour]]:
    """Closed planar contours of every label value, on the source slice planes of ``series``.

    ``label_image``: lesion labels (UInt16, PET grid, 0 = background), sampled at
    the pixel centres of each source slice (its own IPP/IOP/PixelSpacing, so a
    resampled or tilted series still gets contours on its real planes).
    ``transform`` maps series-frame LPS points to label-frame points (the
    resampling convention; None for a series in the label image's frame).
    Returns ``{label value: [(k, points (n, 3) LPS mm), ...]}``, k indexing ``series.headers``.
    """
    heights = np.asarray(series.positions_lps_mm, dtype=float) @ _slice_normal(series)
    steps = np.abs(np.diff(heights))
    reach = float(steps.max()) if len(steps) else 0.0
    contours: dict[int, list[Contour]] = {}
    for value, corners in _lesion_corners_lps(label_image, transform).items():
        candidates: range | np.ndarray
        if corners is None:
            candidates = range(len(series.headers))
        else:
            corner_heights = corners @ _slice_normal(series)
            candidates = np.flatnonzero((heights >= corner_heights.min() - reach)
                                        & (heights <= corner_heights.max() + reach))
        found: list[Contour] = []
        for k in candidates:
            header = series.headers[int(k)]
            labels_rc, col0, row0 = _slice_labels(label_image, header, corners, transform)
            mask = labels_rc == value
            if not mask.any():
                continue
            ipp, x_dir, y_dir, col_spacing, row_spacing = _slice_axes(header)
            for rc in find_contours(np.pad(mask, 1).astype(np.uint8), 0.5):
                # drop the repeated closing point and the vertices in the middle of straight runs
                rc = approximate_polygon(rc[:-1], tolerance=1e-3)
                if len(rc) < 3:
                    continue
                row = rc[:, 0] - 1 + row0
                col = rc[:, 1] - 1 + col0
                points = ipp + np.outer(col * col_spacing, x_dir) + np.outer(row * row_spacing, y_dir)
                found.append((int(k), points))
        contours[value] = found
    return contours


def _ds(values: np.ndarray) -> list[str]:
    return [format_number_as_ds(float(v)) for v in np.ravel(values)]


def _image_ref(header: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = header.SOPClassUID
    item.ReferencedSOPInstanceUID = header.SOPInstanceUID
    return item


def _nearest_slice(series: Volume, point_lps_mm: np.ndarray) -> int | None:
    """Index of the slice whose plane is within half a slice gap of the point, else None."""
    normal = _slice_normal(series)
    heights = np.asarray(series.positions_lps_mm, dtype=float) @ normal
    offsets = np.abs(heights - point_lps_mm @ normal)
    k = int(np.argmin(offsets))
    half_gap = 0.5 * (np.min(np.abs(np.diff(heights))) if len(heights) > 1 else series.image.GetSpacing()[2])
    return k if offsets[k] <= half_gap + 1e-3 else None


def _add_roi(ds: Dataset, number: int, name: str, description: str, interpreted_type: str,
             color: tuple[int, int, int], contour_items: list[Dataset], frame_uid: str) -> None:
    roi = Dataset()
    roi.ROINumber = number
    roi.ReferencedFrameOfReferenceUID = frame_uid
    roi.ROIName = name
    roi.ROIDescription = description
    roi.ROIGenerationAlgorithm = "AUTOMATIC"
    ds.StructureSetROISequence.append(roi)
    roi_contour = Dataset()
    roi_contour.ReferencedROINumber = number
    roi_contour.ROIDisplayColor = list(color)
    if contour_items:
        roi_contour.ContourSequence = Sequence(contour_items)
    ds.ROIContourSequence.append(roi_contour)
    observation = Dataset()
    observation.ObservationNumber = number
    observation.ReferencedROINumber = number
    observation.RTROIInterpretedType = interpreted_type
    observation.ROIInterpreter = ""
    ds.RTROIObservationsSequence.append(observation)


def _contour_item(points_lps_mm: np.ndarray, geometric_type: str, header: Dataset | None) -> Dataset:
    item = Dataset()
    if header is not None:
        item.ContourImageSequence = Sequence([_image_ref(header)])
    item.ContourGeometricType = geometric_type
    item.NumberOfContourPoints = len(points_lps_mm)
    item.ContourData = _ds(points_lps_mm)
    return item


def _header_dataset(series: Volume, label: str) -> Dataset:
    """Patient, study, series, equipment and structure-set header, references copied from the series."""
    first = series.headers[0]
    now = datetime.datetime.now()
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = RT_STRUCTURE_SET_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
                    "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber"):
        setattr(ds, keyword, first.get(keyword, ""))
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 900
    ds.SeriesDescription = f"{label} PET lesions"
    ds.OperatorsName = ""
    ds.FrameOfReferenceUID = first.FrameOfReferenceUID
    ds.PositionReferenceIndicator = first.get("PositionReferenceIndicator", "")
    ds.Manufacturer = "localize"
    ds.ManufacturerModelName = "localize"
    ds.SoftwareVersions = __version__
    ds.InstanceNumber = 1
    ds.StructureSetLabel = label[:16]
    ds.StructureSetName = "PET lesions"
    ds.StructureSetDate = ds.InstanceCreationDate
    ds.StructureSetTime = ds.InstanceCreationTime
    ds.ApprovalStatus = "UNAPPROVED"

    series_ref = Dataset()
    series_ref.SeriesInstanceUID = first.SeriesInstanceUID
    series_ref.ContourImageSequence = Sequence([_image_ref(h) for h in series.headers])
    study_ref = Dataset()
    study_ref.ReferencedSOPClassUID = STUDY_COMPONENT_MANAGEMENT
    study_ref.ReferencedSOPInstanceUID = first.StudyInstanceUID
    study_ref.RTReferencedSeriesSequence = Sequence([series_ref])
    frame_ref = Dataset()
    frame_ref.FrameOfReferenceUID = first.FrameOfReferenceUID
    frame_ref.RTReferencedStudySequence = Sequence([study_ref])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame_ref])
    ds.StructureSetROISequence = Sequence()
    ds.ROIContourSequence = Sequence()
    ds.RTROIObservationsSequence = Sequence()
    return ds


def build_rtstruct(
    findings: Findings, label_image: sitk.Image, series: Volume, *,
    transform: sitk.Transform | None = None, label: str = "localize",
) -> Dataset:
    """The RT Structure Set of ``findings`` on the slices of ``series`` (CT or MR).

    ``label_image``: lesion labels on the PET grid (UInt16, values = ``Lesion.label``).
    ``transform`` maps series-frame LPS points to PET-frame points (None for the
    PET/CT CT); with it, target points are ``target_mr_lps_mm`` when set, else
    the inverse-mapped ``target_lps_mm``.
    """
    ds = _header_dataset(series, label)
    frame_uid = series.headers[0].FrameOfReferenceUID
    contours = lesion_contours(label_image, series, transform)
    lesions = sorted(findings.lesions, key=lambda lesion: lesion.id)
    number = 0
    for lesion in lesions:
        gtv_name, target_name = roi_names(lesion)
        color = REGION_COLORS_RGB.get(lesion.region, REGION_COLORS_RGB[None])
        description = (f"{lesion.site or 'unknown site'}; SUVmax {lesion.suv_max:.2f}; "
                       f"SUVpeak {lesion.suv_peak:.2f}; MTV {lesion.volume_ml:.2f} ml")
        items = [_contour_item(points, "CLOSED_PLANAR", series.headers[k])
                 for k, points in contours.get(lesion.label, [])]
        number += 1
        _add_roi(ds, number, gtv_name, description, "GTV", color, items, frame_uid)
        target = _target_in_series_frame(lesion, transform)
        k = _nearest_slice(series, target)
        point_item = _contour_item(target[None, :], "POINT", None if k is None else series.headers[k])
        number += 1
        _add_roi(ds, number, target_name, "uptake-weighted centroid (target)", "MARKER", color,
                 [point_item], frame_uid)
    if not lesions:
        _add_roi(ds, 1, "NO_LESION", "no PET-avid lesion found", "CONTROL", REGION_COLORS_RGB[None],
                 [], frame_uid)
    return ds


def _target_in_series_frame(lesion: Lesion, transform: sitk.Transform | None) -> np.ndarray:
    if transform is None:
        return np.asarray(lesion.target_lps_mm, dtype=float)
    if lesion.target_mr_lps_mm is not None:
        return np.asarray(lesion.target_mr_lps_mm, dtype=float)
    return np.asarray(transform.GetInverse().TransformPoint(lesion.target_lps_mm), dtype=float)


def write_rtstruct(
    path: str | Path, findings: Findings, label_image: sitk.Image, series: Volume, *,
    transform: sitk.Transform | None = None, label: str = "localize",
) -> Path:
    """Write the RTSTRUCT of :func:`build_rtstruct` to ``path`` (atomically); returns ``path``."""
    ds = build_rtstruct(findings, label_image, series, transform=transform, label=label)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ImplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    path = Path(path)
    with atomic_write(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return path


# -- reading -----------------------------------------------------------------------------------


def _read_structure_set(path: Path, limits: Limits) -> Dataset:
    ds = read_dataset(path, limits)
    if ds.get("Modality") != "RTSTRUCT" or "StructureSetROISequence" not in ds:
        raise DicomReadError(f"not an RT Structure Set (Modality {ds.get('Modality')!r})", path)
    return ds


def rtstruct_to_masks(
    path: str | Path, reference: Volume, grid: sitk.Image | None = None, *, limits: Limits = DEFAULT_LIMITS
) -> dict[str, sitk.Image]:
    """Masks (UInt8, 1 inside) of the ROIs with CLOSED_PLANAR contours of an RTSTRUCT.

    ``reference`` is the series the contours were drawn on. Each contour is
    filled on the slice of ``reference.image`` its plane lies in (pixel centres
    inside the polygon); the contours of one slice are combined by XOR, so holes
    stay holes. The masks have the geometry of ``reference.image``, or are
    resampled (nearest neighbour) onto ``grid`` when given, e.g. the PET grid of
    the same frame of reference. ROIs without closed contours (points) are left
    out; a repeated ROI name gets its ROI number appended. ROI names are kept
    as one-line labels (control characters removed, length bounded).
    Raises ``SeriesError`` when the RTSTRUCT belongs to another frame of
    reference, references images that are not in ``reference``, or has a
    contour that is not in the plane of a slice.
    """
    path = Path(path)
    ds = _read_structure_set(path, limits)
    try:
        return _masks(ds, path, reference, grid)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:  # malformed values
        raise DicomReadError(f"malformed RT Structure Set ({type(exc).__name__}: {exc})", path) from exc


def _masks(ds: Dataset, path: Path, reference: Volume, grid: sitk.Image | None) -> dict[str, sitk.Image]:
    frame_uid = reference.headers[0].FrameOfReferenceUID
    series_uids = {str(uid) for uid in reference.sop_instance_uids}
    image = reference.image
    shape_zyx = sitk.GetArrayViewFromImage(image).shape
    # LPS mm -> continuous index (x, y, z): inverse of P = origin + D·diag(spacing)·ijk
    to_index = np.linalg.inv(np.asarray(image.GetDirection()).reshape(3, 3) @ np.diag(image.GetSpacing()))
    origin = np.asarray(image.GetOrigin())

    names = {}
    for roi in ds.StructureSetROISequence:
        roi_frame = roi.get("ReferencedFrameOfReferenceUID", frame_uid)
        if roi_frame != frame_uid:
            raise SeriesError(f"ROI {roi.get('ROIName', roi.ROINumber)!r} is in frame of reference {roi_frame}, "
                              f"not the series' {frame_uid}", path)
        names[int(roi.ROINumber)] = clean_label(roi.get("ROIName")) or f"ROI_{roi.ROINumber}"

    masks: dict[str, sitk.Image] = {}
    for roi_contour in ds.get("ROIContourSequence", []):
        number = int(roi_contour.ReferencedROINumber)
        name = names.get(number, f"ROI_{number}")
        closed = [c for c in roi_contour.get("ContourSequence", []) if c.get("ContourGeometricType") == "CLOSED_PLANAR"]
        if not closed:
            continue
        mask_zyx = np.zeros(shape_zyx, dtype=np.uint8)
        for contour in closed:
            for item in contour.get("ContourImageSequence", []):
                if str(item.ReferencedSOPInstanceUID) not in series_uids:
                    raise SeriesError(f"ROI {name!r} has a contour on image {item.ReferencedSOPInstanceUID}, "
                                      "which is not in the series", path)
            points = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
            ijk = (points - origin) @ to_index.T
            k = int(np.round(ijk[:, 2].mean()))
            if not 0 <= k < shape_zyx[0] or np.max(np.abs(ijk[:, 2] - k)) > 0.5:
                raise SeriesError(f"ROI {name!r} has a contour that is not in the plane of a slice "
                                  f"(slice index {ijk[:, 2].min():.2f} to {ijk[:, 2].max():.2f})", path)
            rr, cc = polygon(ijk[:, 1], ijk[:, 0], shape=shape_zyx[1:])
            mask_zyx[k, rr, cc] ^= 1
        mask = sitk.GetImageFromArray(mask_zyx)
        mask.CopyInformation(image)
        if grid is not None:
            mask = sitk.Resample(mask, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        masks[f"{name} ({number})" if name in masks else name] = mask
    return masks
