"""One DICOM image series -> one SimpleITK image in LPS, with its per-slice geometry.

Slices are ordered by their position along the slice normal (row cosine x column
cosine, DICOM PS3.3 C.7.6.2.1.1; docs/coordinates.md#dicom-patient-coordinates), never by InstanceNumber or file
name. Pixel values are rescaled per slice (RescaleSlope/Intercept, so CT is in HU)
into one float32 volume.

Grid policy (the image is always a regular, orthogonal grid):

* clean series: origin = first slice's ImagePositionPatient, direction columns =
  (row cosine, column cosine, normal), slice spacing = (last - first) / (n - 1);
  the same geometry as SimpleITK's ImageSeriesReader;
* gantry tilt (slice positions not along the normal): each slice is shifted in its
  own plane onto the untilted grid (bilinear), as dcm2niix does; a warning says so;
* spacing that varies within a few percent (bed overlaps): one grid at the mean
  spacing with the source's slice count, as ImageSeriesReader and dcm2niix; a
  warning gives the range;
* missing slices or beds (steps of 1.5x the median or more, the others regular):
  warning naming each gap and its position, the gap filled by linear interpolation
  along the normal at the median step (``strict=True`` raises instead);
* other non-uniform spacing: resampled by linear interpolation along the normal onto a
  uniform grid at the smallest spacing, with a warning (``strict=True`` raises);
* several slices at one position (echoes, phases, acquisitions): refused with a
  message naming the attribute to split by (see ``split_series``).

When the grid was resampled, ``Volume.resampled`` is True and ``headers``,
``sop_instance_uids`` and ``positions_lps_mm`` still describe the source slices
(sorted along the normal): map contours to source slices through the positions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from scipy import ndimage

from localize.errors import DicomReadError, ResourceLimitError, SeriesError
from localize.load.limits import DEFAULT_LIMITS, Limits, read_dataset

#: Two slices closer than this along the normal are at "the same position" (mm).
DUPLICATE_TOL_MM = 0.01
#: In-plane drift of slice positions below this is rounding, not gantry tilt (mm).
TILT_TOL_MM = 0.01
#: Positions within this fraction of the slice spacing of a uniform grid are uniform.
UNIFORM_TOL = 0.01
#: Steps within this fraction of their median are one grid at the mean spacing (bed overlaps).
NEAR_UNIFORM_TOL = 0.05
#: A step at least this many times the median is a gap: a missing slice or bed.
GAP_FACTOR = 1.5
#: Direction cosines of two slices differing by less than this are one orientation.
ORIENTATION_TOL = 1e-4

#: Attributes that tell apart slices sharing one position, in the order tried.
SPLIT_ATTRIBUTES = (
    "AcquisitionNumber",
    "EchoNumbers",
    "EchoTime",
    "TemporalPositionIdentifier",
    "TriggerTime",
    "DiffusionBValue",
    "ImageType",
    "SeriesNumber",
)


@dataclass
class Volume:
    """A series as one image plus the geometry of its source slices.

    ``image``: float32 SimpleITK image, LPS mm (origin, spacing, 3x3 direction);
    its numpy view is z, y, x. ``headers``: one header-only dataset per source
    slice (multi-frame: per frame, functional groups merged in), sorted along the
    slice normal. ``positions_lps_mm``: (n, 3) ImagePositionPatient of those
    slices. ``frame_numbers``: 1-based frame per slice for multi-frame files.
    """

    image: sitk.Image
    headers: list[Dataset]
    sop_instance_uids: list[str]
    positions_lps_mm: np.ndarray
    paths: list[Path]
    frame_numbers: list[int] | None = None
    warnings: list[str] = field(default_factory=list)
    resampled: bool = False

    @property
    def frame_of_reference_uid(self) -> str:
        """The series' FrameOfReferenceUID ("" when the header has none)."""
        return str(self.headers[0].get("FrameOfReferenceUID", ""))


@dataclass
class _Slice:
    header: Dataset
    path: Path
    frame: int | None  # 1-based frame number in a multi-frame file
    pixels: np.ndarray  # stored values, rows x columns


def load_series(files: Sequence[Path], *, strict: bool = False, limits: Limits = DEFAULT_LIMITS) -> Volume:
    """Read the files of one series (any order) into a float32 LPS volume.

    ``strict`` turns missing slices and non-uniform spacing into ``SeriesError``.
    Raises ``DicomReadError`` for unreadable files, ``SeriesError`` when the files
    do not form one consistent volume, ``ResourceLimitError`` past a ceiling of
    ``limits`` (checked per file before decoding, and on the series' voxel count).
    """
    if not files:
        raise SeriesError("no files given for the series")
    slices: list[_Slice] = []
    voxels_read = 0
    for path in files:
        read = _read_file(Path(path), limits)
        slices += read
        voxels_read += sum(s.pixels.size for s in read)
        if voxels_read > limits.max_volume_voxels:
            raise ResourceLimitError(
                f"the series holds more than the ceiling of {limits.max_volume_voxels} voxels", path)
    first = slices[0].path
    row, col, spacing_rc = _common_plane(slices)
    normal = np.cross(row, col)
    ipp = np.array([_position(s) for s in slices], dtype=np.float64)
    along = ipp @ normal
    order = np.argsort(along, kind="stable")
    slices = [slices[i] for i in order]
    ipp, along = ipp[order], along[order]
    _refuse_duplicates(slices, along, first)

    warnings: list[str] = []
    offsets = ipp - ipp[0] - np.outer(along - along[0], normal)
    tilted = len(slices) > 1 and float(np.abs(offsets).max()) > TILT_TOL_MM
    voxels = _stack(slices)  # z, y, x float32
    if tilted:
        offset_rc = np.stack([offsets @ col, offsets @ row], axis=1)
        angle = np.degrees(np.arctan2(np.linalg.norm(offsets[-1]), along[-1] - along[0]))
        warnings.append(
            f"gantry tilt / sheared stack ({angle:.2f} deg between the slice stack and the slice"
            " normal): slices shifted in-plane onto an orthogonal grid"
        )
        _untilt(voxels, offset_rc, spacing_rc)

    slice_mm, grid_warnings, resample = _slice_spacing(slices, along, strict)
    warnings += grid_warnings
    resampled = tilted or resample
    if resample:
        voxels = _resample_along_normal(voxels, along - along[0], slice_mm)

    image = sitk.GetImageFromArray(voxels, isVector=False)
    del voxels
    image.SetOrigin(tuple(float(v) for v in ipp[0]))
    image.SetSpacing((float(spacing_rc[1]), float(spacing_rc[0]), float(slice_mm)))
    image.SetDirection(tuple(float(v) for v in np.column_stack([row, col, normal]).ravel()))
    multiframe = any(s.frame is not None for s in slices)
    return Volume(
        image=image,
        headers=[s.header for s in slices],
        sop_instance_uids=[str(s.header.get("SOPInstanceUID", "")) for s in slices],
        positions_lps_mm=ipp,
        paths=[s.path for s in slices],
        frame_numbers=[s.frame or 1 for s in slices] if multiframe else None,
        warnings=warnings,
        resampled=resampled,
    )


def split_series(files: Sequence[Path]) -> list[list[Path]]:
    """Split files of one SeriesInstanceUID into loadable groups (headers only).

    Groups by orientation, then, where slices share a position, by the first of
    ``SPLIT_ATTRIBUTES`` whose values make every group free of duplicates.
    Returns one group when nothing needs splitting.
    """
    headers = {Path(p): _read_header(Path(p)) for p in files}
    by_plane: dict[tuple, list[Path]] = defaultdict(list)
    for path, ds in headers.items():
        iop = ds.get("ImageOrientationPatient")
        by_plane[tuple(np.round(np.asarray(iop, float), 3)) if iop else ()].append(path)
    groups: list[list[Path]] = []
    for paths in by_plane.values():
        attribute = _splitting_attribute([headers[p] for p in paths])
        if attribute is None:
            groups.append(paths)
            continue
        parts: dict[str, list[Path]] = defaultdict(list)
        for p in paths:
            parts[str(headers[p].get(attribute, ""))].append(p)
        groups += list(parts.values())
    return groups


def _read_header(path: Path) -> Dataset:
    return read_dataset(path, stop_before_pixels=True)


def _read_file(path: Path, limits: Limits) -> list[_Slice]:
    """Read one file into its slices (one, or one per frame), within ``limits``."""
    ds = read_dataset(path, limits)
    try:
        return _slices_of(ds, path)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:  # malformed header values
        raise DicomReadError(f"malformed image header ({type(exc).__name__}: {exc})", path) from exc


def _slices_of(ds: Dataset, path: Path) -> list[_Slice]:
    if "PixelData" not in ds:
        raise SeriesError(f"no pixel data (SOP class {ds.get('SOPClassUID', '?')})", path)
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise SeriesError("colour image (SamplesPerPixel > 1) is not a scalar volume", path)
    try:
        pixels = _native_pixels(ds)
        if pixels is None:
            pixels = pydicom.pixels.pixel_array(ds)
    except Exception as exc:  # missing decoder plugin, corrupt fragments, short data
        syntax = ds.file_meta.get("TransferSyntaxUID", "?") if hasattr(ds, "file_meta") else "?"
        name = getattr(syntax, "name", syntax)
        raise DicomReadError(f"pixel data not decodable ({name}): {exc}", path) from exc
    del ds.PixelData
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if "PerFrameFunctionalGroupsSequence" not in ds:
        if frames > 1:
            raise SeriesError(
                "multi-frame image without per-frame functional groups: no per-frame geometry", path
            )
        return [_Slice(ds, path, None, pixels)]
    pixels = pixels.reshape(frames, int(ds.Rows), int(ds.Columns))
    return [_Slice(_frame_header(ds, f), path, f + 1, pixels[f]) for f in range(frames)]


def _native_pixels(ds: Dataset) -> np.ndarray | None:
    """Stored values of an uncompressed little-endian single frame read straight from the
    buffer (the common case, without pydicom's decoder set-up); None for anything else."""
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    bits = int(ds.get("BitsAllocated", 0))
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    if (
        syntax not in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
        or bits not in (8, 16, 32)
        or int(ds.get("BitsStored", 0)) != bits
        or int(ds.get("NumberOfFrames", 1) or 1) != 1
        or len(ds.PixelData) < rows * cols * bits // 8
    ):
        return None
    kind = "i" if int(ds.get("PixelRepresentation", 0)) else "u"
    return np.frombuffer(ds.PixelData, f"<{kind}{bits // 8}", count=rows * cols).reshape(rows, cols)


def _frame_header(ds: Dataset, index: int) -> Dataset:
    """Header of frame ``index`` (0-based): top level + shared + per-frame groups.

    Each standard functional group is added and its item's attributes are also
    copied to the top level (ImagePositionPatient, RescaleSlope, ...); private
    groups are kept but not flattened (Philips repeats stale geometry in them).
    """
    skip = {"PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"}
    frame = Dataset()
    for elem in ds:
        if elem.keyword not in skip:
            frame.add(elem)
    shared = ds.get("SharedFunctionalGroupsSequence")
    per_frame = ds.PerFrameFunctionalGroupsSequence
    if index >= len(per_frame):
        raise SeriesError(f"frame {index + 1} has no per-frame functional group", ds.filename)
    items = ([shared[0]] if shared else []) + [per_frame[index]]
    for item in items:
        for group in item:
            frame.add(group)
            if group.VR == "SQ" and len(group.value) and not group.tag.is_private:
                for elem in group.value[0]:
                    frame.add(elem)
    return frame


def _common_plane(slices: list[_Slice]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row and column cosines and (row, column) pixel spacing in mm shared by all slices."""
    first = slices[0]
    try:
        iop = np.array([[float(v) for v in s.header.ImageOrientationPatient] for s in slices])
        spacing = np.array([[float(v) for v in s.header.PixelSpacing] for s in slices])
    except (AttributeError, TypeError, ValueError) as exc:
        raise SeriesError(
            "no usable ImageOrientationPatient / PixelSpacing: not a volume image"
            " (e.g. a projection scout)",
            first.path,
        ) from exc
    if iop.shape[1] != 6 or spacing.shape[1] != 2 or (spacing <= 0).any():
        raise SeriesError("malformed ImageOrientationPatient or PixelSpacing", first.path)
    if np.abs(iop - iop[0]).max() > ORIENTATION_TOL:
        bad = slices[int(np.abs(iop - iop[0]).max(axis=1).argmax())].path
        raise SeriesError(f"mixed slice orientations in one series (also {bad})", first.path)
    if np.abs(spacing - spacing[0]).max() > 1e-4:
        raise SeriesError("PixelSpacing differs between slices of the series", first.path)
    shapes = {s.pixels.shape for s in slices}
    if len(shapes) != 1:
        raise SeriesError(f"slices of different sizes in one series: {sorted(shapes)}", first.path)
    row, col = iop[0, :3], iop[0, 3:]
    if abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(col) - 1) > 1e-3 or abs(row @ col) > 1e-3:
        raise SeriesError("ImageOrientationPatient is not two orthonormal vectors", first.path)
    col = col - (row @ col) * row
    return row / np.linalg.norm(row), col / np.linalg.norm(col), spacing[0]


def _position(s: _Slice) -> list[float]:
    try:
        ipp = [float(v) for v in s.header.ImagePositionPatient]
    except (AttributeError, TypeError, ValueError) as exc:
        raise SeriesError("no usable ImagePositionPatient", s.path) from exc
    if len(ipp) != 3 or not np.isfinite(ipp).all():
        raise SeriesError("malformed ImagePositionPatient", s.path)
    return ipp


def _refuse_duplicates(slices: list[_Slice], along: np.ndarray, first: Path) -> None:
    dup = np.flatnonzero(np.diff(along) < DUPLICATE_TOL_MM)
    if dup.size == 0:
        return
    attribute = _splitting_attribute([s.header for s in slices])
    how = (
        f"the slices differ in {attribute}: split the series by {attribute} (split_series)"
        if attribute
        else "no header attribute tells them apart"
    )
    raise SeriesError(
        f"{dup.size} slice(s) share a position with another (first at {along[dup[0]]:.2f} mm along"
        f" the slice normal; several acquisitions, echoes or phases?); {how}",
        first,
    )


def _splitting_attribute(headers: list[Dataset]) -> str | None:
    """First of SPLIT_ATTRIBUTES whose value groups have no duplicate positions."""
    def duplicated(group: list[Dataset]) -> bool:
        keys = [tuple(np.round(np.asarray(h.get("ImagePositionPatient", [0, 0, 0]), float), 2)) for h in group]
        return len(set(keys)) < len(keys)

    if not duplicated(headers):
        return None
    for attribute in SPLIT_ATTRIBUTES:
        parts: dict[str, list[Dataset]] = defaultdict(list)
        for h in headers:
            parts[str(h.get(attribute, ""))].append(h)
        if len(parts) > 1 and not any(duplicated(p) for p in parts.values()):
            return attribute
    return None


def _stack(slices: list[_Slice]) -> np.ndarray:
    """Stored values -> one preallocated float32 z, y, x array, rescaled slice by slice."""
    rows, cols = slices[0].pixels.shape
    voxels = np.empty((len(slices), rows, cols), dtype=np.float32)
    for k, s in enumerate(slices):
        try:
            slope = float(s.header.get("RescaleSlope", 1) or 1)
            intercept = float(s.header.get("RescaleIntercept", 0) or 0)
        except (TypeError, ValueError) as exc:
            raise SeriesError(f"RescaleSlope / RescaleIntercept is not a number ({exc})", s.path) from exc
        if not (np.isfinite(slope) and np.isfinite(intercept)):
            raise SeriesError("RescaleSlope / RescaleIntercept is not finite", s.path)
        voxels[k] = s.pixels * slope + intercept  # in float64, rounded once to float32
        s.pixels = voxels[k]  # drop the stored values as we go
    return voxels


def _untilt(voxels: np.ndarray, offset_rc_mm: np.ndarray, spacing_rc: np.ndarray) -> None:
    """Shift each slice in place so its in-plane offset from slice 0 becomes zero (bilinear)."""
    fill = float(voxels.min())
    for k in range(1, voxels.shape[0]):
        # source pixel (r, c) sits at output (r + dr, c + dc): shift by +offset / spacing
        voxels[k] = ndimage.shift(voxels[k], offset_rc_mm[k] / spacing_rc, order=1, mode="constant", cval=fill)


def _slice_spacing(slices: list[_Slice], along: np.ndarray, strict: bool) -> tuple[float, list[str], bool]:
    """(spacing of the output grid along the normal in mm, warnings, whether to resample).

    Gaps within ``NEAR_UNIFORM_TOL`` of their median (bed overlaps make real scanners write
    3.19-3.29 mm steps) are one grid at the mean spacing with the source's slice count, as
    SimpleITK's ImageSeriesReader and dcm2niix read them. A gap of at least
    ``GAP_FACTOR`` x the median step is a missing slice or bed, named with its position.
    """
    n = len(along)
    if n == 1:
        h = slices[0].header
        return float(h.get("SpacingBetweenSlices") or h.get("SliceThickness") or 1.0), [], False
    mean_mm = (along[-1] - along[0]) / (n - 1)
    deviation_mm = float(np.abs(along - along[0] - mean_mm * np.arange(n)).max())
    if deviation_mm <= max(UNIFORM_TOL * mean_mm, 1e-3):
        return float(mean_mm), [], False
    gaps = np.diff(along)
    median = float(np.median(gaps))
    where = slices[0].path
    if np.abs(gaps - median).max() <= NEAR_UNIFORM_TOL * median:
        return float(mean_mm), [
            f"slice spacing varies from {gaps.min():.3f} to {gaps.max():.3f} mm (within"
            f" {100 * NEAR_UNIFORM_TOL:.0f} % of the median): one grid at the mean {mean_mm:.3f} mm, slice"
            f" positions within {deviation_mm:.2f} mm of it"], False
    wide = np.flatnonzero(gaps >= GAP_FACTOR * median)
    rest = np.delete(gaps, wide)
    if wide.size and np.abs(rest - median).max() <= NEAR_UNIFORM_TOL * median:
        named = [
            f"{max(int(round(gaps[k] / median)) - 1, 1)} missing after the slice at LPS"
            f" ({', '.join(f'{v:.1f}' for v in _position(slices[k]))}) mm (gap {gaps[k]:.2f} mm)"
            for k in wide
        ]
        message = f"missing slice(s) at {median:.2f} mm spacing: " + "; ".join(named)
        if strict:
            raise SeriesError(message, where)
        return median, [message + "; filled by linear interpolation along the slice normal"], True
    step = float(gaps.min())
    message = f"slice spacing varies from {step:.3f} to {gaps.max():.3f} mm"
    if strict:
        raise SeriesError(message, where)
    return step, [message + f"; resampled to a uniform {step:.3f} mm grid by linear interpolation"], True


def _resample_along_normal(voxels: np.ndarray, along_mm: np.ndarray, step_mm: float) -> np.ndarray:
    """Linear interpolation of z, y, x slices at ``along_mm`` onto 0, step, 2 step, ... (mm)."""
    count = int(round(along_mm[-1] / step_mm)) + 1
    target = np.minimum(np.arange(count) * step_mm, along_mm[-1])
    upper = np.clip(np.searchsorted(along_mm, target, side="right"), 1, len(along_mm) - 1)
    lower = upper - 1
    weight = ((target - along_mm[lower]) / (along_mm[upper] - along_mm[lower])).astype(np.float32)
    out = np.empty((count,) + voxels.shape[1:], dtype=np.float32)
    for m in range(count):
        np.multiply(voxels[lower[m]], 1 - weight[m], out=out[m])
        out[m] += weight[m] * voxels[upper[m]]
    return out
