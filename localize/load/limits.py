"""Resource ceilings for untrusted DICOM: refuse before memory is spent.

A header claiming absurd dimensions, a compressed stream that would expand past
a ceiling (deflated data sets, JPEG / JPEG 2000 frames larger than their
header says), sequences nested thousands deep, or a huge file each raise a
one-line ``ResourceLimitError`` naming the file, before the pixels are decoded
or the file is read whole. ``Limits`` holds the ceilings; every reader takes
one (``index_folder``, ``load_series``, ``rtstruct_to_masks``), the defaults
being ``DEFAULT_LIMITS``.

The defaults are engineering choices, far above clinical images: a whole-body
CT of 1,000 slices of 512 x 512 at 16 bits is 0.5 GiB of stored values, an
enhanced multi-frame MR a few hundred MiB, and standard IODs nest sequences a
few levels deep (RT Structure Set: 3; Enhanced MR functional groups: 2).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragmented_frames
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.pixels.utils import _get_jpg_parameters
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from localize.errors import DicomReadError, LocalizeError, ResourceLimitError

_GIB = 2**30


@dataclass(frozen=True)
class Limits:
    """Ceilings on one input. Sizes in bytes, pixel counts in pixels, depth in levels."""

    max_file_bytes: int = 4 * _GIB  # one DICOM file on disk
    max_pixel_bytes: int = 2 * _GIB  # decoded pixel data one file declares (rows x columns x frames x samples x bits)
    max_frame_pixels: int = 2**28  # rows x columns of one frame (16384 x 16384)
    max_volume_voxels: int = 2**30  # voxels of one loaded series (4 GiB as float32)
    max_sequence_depth: int = 32  # nesting of sequences within sequences
    max_inflated_bytes: int = 2 * _GIB  # a deflated data set once inflated


DEFAULT_LIMITS = Limits()

# JPEG and JPEG-LS codestreams start with SOI (ITU-T T.81 B.1.1.3); JPEG 2000 ones with
# SOC + SIZ (ITU-T T.800 A.5.1), possibly inside a JP2 file's boxes.
_JPEG_SOI = b"\xff\xd8"
_J2K_SOC_SIZ = b"\xff\x4f\xff\x51"


def _gib(n: int) -> str:
    return f"{n / _GIB:.3g} GiB"


def check_file(path: str | Path, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse a file above ``max_file_bytes``, or a deflated data set inflating past ``max_inflated_bytes``.

    Reads at most the file meta information and streams a deflated body in
    bounded chunks; nothing is kept in memory.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DicomReadError(f"cannot read the file ({exc.strerror})", path) from exc
    if size > limits.max_file_bytes:
        raise ResourceLimitError(f"file is {_gib(size)}, above the {_gib(limits.max_file_bytes)} ceiling", path)
    with open(path, "rb") as handle:
        try:
            read_preamble(handle, False)
            syntax = _read_file_meta_info(handle).get("TransferSyntaxUID")
        except Exception:  # no DICM prefix or a malformed meta group: the reader reports it
            return
        if syntax == DeflatedExplicitVRLittleEndian:
            _check_inflated_size(handle, path, limits.max_inflated_bytes)


def _check_inflated_size(handle, path: Path, ceiling: int) -> None:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    chunk = 1 << 20
    try:
        while not inflater.eof and (block := handle.read(chunk)):
            data = inflater.decompress(block, chunk)
            while True:
                total += len(data)
                if total > ceiling:
                    raise ResourceLimitError(
                        f"deflated data set inflates past the {_gib(ceiling)} ceiling (decompression bomb?)", path)
                if inflater.eof or not inflater.unconsumed_tail:
                    break
                data = inflater.decompress(inflater.unconsumed_tail, chunk)
    except zlib.error as exc:
        raise DicomReadError(f"deflated data set is corrupt ({exc})", path) from exc


def check_dataset(ds: Dataset, path: str | Path, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse deep sequence nesting, absurd declared dimensions, or compressed frames larger than declared.

    Call after reading the header and before decoding pixels. Raises
    ``ResourceLimitError`` for a ceiling, ``DicomReadError`` for unusable
    dimension values.
    """
    check_depth(ds, path, limits.max_sequence_depth)
    rows, columns = _count(ds, "Rows", path), _count(ds, "Columns", path)
    if rows is None or columns is None:
        return
    frames = _count(ds, "NumberOfFrames", path) or 1
    samples = _count(ds, "SamplesPerPixel", path) or 1
    bits = _count(ds, "BitsAllocated", path) or 16
    if rows * columns > limits.max_frame_pixels:
        raise ResourceLimitError(
            f"header declares {columns} x {rows} pixels per frame, above the ceiling of"
            f" {limits.max_frame_pixels} pixels", path)
    declared = rows * columns * frames * samples * max(bits, 8) // 8
    if declared > limits.max_pixel_bytes:
        raise ResourceLimitError(
            f"header declares {frames} frame(s) of {columns} x {rows} x {samples} x {bits} bits"
            f" ({_gib(declared)}), above the {_gib(limits.max_pixel_bytes)} ceiling", path)
    if "PixelData" in ds and ds["PixelData"].is_undefined_length:
        _check_codestreams(ds, rows, columns, frames, path)


def _count(ds: Dataset, keyword: str, path: str | Path) -> int | None:
    """A non-negative integer attribute (None when absent or empty); DicomReadError when malformed."""
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return None
        count = int(value)
    except Exception as exc:  # any conversion failure of a malformed value
        raise DicomReadError(f"{keyword} is not a number", path) from exc
    if count < 0:
        raise DicomReadError(f"{keyword} is negative ({count})", path)
    return count


def too_deep(path: str | Path, max_depth: int) -> ResourceLimitError:
    """The error for sequences nested past ``max_depth`` (also when the reader's own recursion gave up)."""
    return ResourceLimitError(f"sequences nested more than {max_depth} levels deep", path)


def check_depth(ds: Dataset, path: str | Path, max_depth: int) -> None:
    """Refuse sequences nested more than ``max_depth`` levels (walked without recursion)."""
    stack = [(ds, 0)]
    while stack:
        current, depth = stack.pop()
        for elem in current:  # only SQ elements are converted here
            if elem.VR != "SQ":
                continue
            if depth + 1 > max_depth:
                raise too_deep(path, max_depth)
            stack.extend((item, depth + 1) for item in elem.value)


def _check_codestreams(ds: Dataset, rows: int, columns: int, frames: int, path: str | Path) -> None:
    """Each JPEG / JPEG-LS / JPEG 2000 frame must not declare more pixels than the header."""
    try:
        fragments = generate_fragmented_frames(ds.PixelData, number_of_frames=frames)
        for index, frame in enumerate(fragments, start=1):
            head = frame[0] if frame else b""
            if head[:2] == _JPEG_SOI:
                info = _get_jpg_parameters(head)
                size = (info.get("height", 0), info.get("width", 0))
            else:
                size = _j2k_size(head)
            if size[0] > rows or size[1] > columns:
                raise ResourceLimitError(
                    f"frame {index} decodes to {size[1]} x {size[0]} pixels, larger than the"
                    f" {columns} x {rows} the header declares (decompression bomb?)", path)
    except (ValueError, KeyError, IndexError, TypeError, EOFError) as exc:  # malformed encapsulation
        raise DicomReadError(f"encapsulated pixel data is malformed ({exc})", path) from exc


def _j2k_size(codestream: bytes) -> tuple[int, int]:
    """(rows, columns) a JPEG 2000 codestream declares in its SIZ segment; (0, 0) if none is found."""
    start = codestream.find(_J2K_SOC_SIZ, 0, 4096)
    if start < 0 or len(codestream) < start + 24:
        return 0, 0
    x_siz, y_siz, x_offset, y_offset = struct.unpack(">4I", codestream[start + 8:start + 24])
    return max(y_siz - y_offset, 0), max(x_siz - x_offset, 0)


def looks_like_dicom_without_preamble(head: bytes) -> bool:
    """True when the file starts like a DICOM data set (group 0002 or 0008 tag, little endian)."""
    if len(head) < 8 or head[1:2] != b"\x00" or head[0:1] not in (b"\x02", b"\x08"):
        return False
    element = int.from_bytes(head[2:4], "little")
    if element > 0x0100:
        return False
    if head[4:6].isalpha() and head[4:6].isupper():  # explicit VR
        return True
    length = int.from_bytes(head[4:8], "little")  # implicit VR: a plausible length
    return length < 1 << 16


def read_dataset(path: str | Path, limits: Limits = DEFAULT_LIMITS, **options) -> Dataset:
    """``pydicom.dcmread`` of an untrusted file behind the ceilings (``options`` go to dcmread).

    Raises ``ResourceLimitError`` past a ceiling, ``DicomReadError`` when the
    file is not readable DICOM.
    """
    check_file(path, limits)
    if "force" not in options:  # a data set written without the 128-byte preamble and "DICM" (PS3.10 7.1)
        with open(path, "rb") as handle:
            head = handle.read(132)
        options["force"] = head[128:132] != b"DICM" and looks_like_dicom_without_preamble(head)
    try:
        ds = pydicom.dcmread(path, **options)
    except RecursionError:  # pydicom parses undefined-length sequences recursively
        raise too_deep(path, limits.max_sequence_depth) from None
    except Exception as exc:  # pydicom raises many kinds on malformed files
        raise DicomReadError(f"not readable as DICOM ({type(exc).__name__}: {exc})", path) from exc
    meta = ds.file_meta if hasattr(ds, "file_meta") else None
    if options.get("force") and (meta is None or "TransferSyntaxUID" not in meta):
        implicit, little = ds.original_encoding  # as parsed: no file meta names the transfer syntax
        if little:
            ds.ensure_file_meta()
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    try:
        check_dataset(ds, path, limits)
    except LocalizeError:
        raise
    except RecursionError:
        raise too_deep(path, limits.max_sequence_depth) from None
    except Exception as exc:  # a malformed nested element found while walking
        raise DicomReadError(f"malformed data set ({type(exc).__name__}: {exc})", path) from exc
    return ds
