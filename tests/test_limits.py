"""Resource ceilings: absurd headers, decompression bombs, deep nesting and huge files are refused early."""

from __future__ import annotations

import resource
import struct
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from helpers.images import small_ct_slice
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEG2000Lossless

from localize.errors import LocalizeError, ResourceLimitError
from localize.export.rtstruct import rtstruct_to_masks
from localize.load.index import index_folder
from localize.load.limits import DEFAULT_LIMITS, Limits, check_dataset, read_dataset
from localize.load.volume import load_series
from localize.sample_data.dicom_writer import save


def max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def refused_everywhere(path: Path, words: str) -> None:
    """The file is listed unreadable by the index and refused by the loader, both naming the ceiling."""
    archive = index_folder(path.parent)
    reasons = dict(archive.unreadable)
    assert str(path) in reasons and words in reasons[str(path)], reasons
    with pytest.raises(ResourceLimitError, match=words) as caught:
        load_series([path])
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_small_valid_series_is_within_the_default_ceilings(tmp_path):
    paths = [save(small_ct_slice(z), tmp_path / f"{z}.dcm") for z in (0.0, 2.0, 4.0)]
    volume = load_series(paths)
    assert volume.image.GetSize() == (4, 4, 3)
    assert index_folder(tmp_path).unreadable == []


def test_absurd_dimensions_are_refused_before_memory_is_spent(tmp_path):
    ds = small_ct_slice()
    ds.Rows = ds.Columns = 65535
    ds.NumberOfFrames = 5000  # 65535^2 x 5000 x 2 bytes: 40 TiB declared, 32 bytes present
    path = save(ds, tmp_path / "in" / "absurd.dcm")
    before, started = max_rss_bytes(), time.perf_counter()
    refused_everywhere(path, "header declares")
    assert time.perf_counter() - started < 5
    assert max_rss_bytes() - before < 200 * 2**20


def test_ceilings_are_configurable(tmp_path):
    path = save(small_ct_slice(rows=8, columns=8), tmp_path / "s.dcm")
    load_series([path])  # 64 pixels: fine by default
    with pytest.raises(ResourceLimitError, match="per frame"):
        load_series([path], limits=Limits(max_frame_pixels=63))
    with pytest.raises(ResourceLimitError, match="voxels"):
        load_series([path, save(small_ct_slice(2.0, 8, 8), tmp_path / "t.dcm")], limits=Limits(max_volume_voxels=100))
    archive = index_folder(tmp_path, limits=Limits(max_pixel_bytes=100))
    assert len(archive.unreadable) == 2 and "ceiling" in archive.unreadable[0][1]


def test_deflated_bomb_is_refused_by_streaming_the_inflation(tmp_path):
    ds = small_ct_slice()
    ds.add_new(0x00091010, "OB", bytes(24 * 2**20))  # 24 MiB of zeros in a private element
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    path = save(ds, tmp_path / "in" / "deflated.dcm")
    assert path.stat().st_size < 2**20  # a small file...
    limits = Limits(max_inflated_bytes=4 * 2**20)  # ...that inflates past 4 MiB
    with pytest.raises(ResourceLimitError, match="inflates past"):
        load_series([path], limits=limits)
    archive = index_folder(path.parent, limits=limits)
    assert "inflates past" in dict(archive.unreadable)[str(path)]
    assert load_series([path]).image.GetSize() == (4, 4, 1)  # the default ceiling lets it through


def j2k_slice(header_size: int, codestream_size: int) -> Dataset:
    """A JPEG 2000 slice whose codestream holds codestream_size^2 pixels, its header saying header_size^2."""
    from openjpeg import encode as encode_array

    ds = small_ct_slice(rows=header_size, columns=header_size)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([encode_array(np.zeros((codestream_size,) * 2, np.int16), lossless=True)])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return ds


def test_a_compressed_frame_larger_than_its_header_is_refused_before_decoding(tmp_path):
    path = save(j2k_slice(8, 3000), tmp_path / "in" / "bomb.dcm")
    assert path.stat().st_size < 200_000
    codestream_pixels = 3000 * 3000
    assert codestream_pixels > 100 * 8 * 8
    with pytest.raises(ResourceLimitError, match="3000 x 3000 pixels, larger than the 8 x 8"):
        load_series([path])
    honest = save(j2k_slice(64, 64), tmp_path / "ok" / "honest.dcm")
    assert load_series([honest]).image.GetSize() == (64, 64, 1)


def deep_sequence_file(path: Path, depth: int, modality: str = "CT") -> Path:
    """A valid slice with ``depth`` nested undefined-length sequences appended (written byte by byte)."""
    base = small_ct_slice(modality=modality)
    del base.PixelData
    save(base, path)
    sq_open = struct.pack("<HH2sHI", 0x0008, 0x1115, b"SQ", 0, 0xFFFFFFFF)  # ReferencedSeriesSequence
    item_open = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    item_close = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    sq_close = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    nested = (sq_open + item_open) * depth + (item_close + sq_close) * depth
    pixels = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, 32) + bytes(32)
    data = path.read_bytes()
    split = data.index(struct.pack("<HH2s", 0x0010, 0x0020, b"LO"))  # PatientID follows the group 0008 elements
    path.write_bytes(data[:split] + nested + data[split:] + pixels)
    return path


def test_sequences_nested_thousands_deep_are_refused(tmp_path):
    path = deep_sequence_file(tmp_path / "in" / "deep.dcm", 5000)
    refused_everywhere(path, "nested more than 32 levels")
    just_past = deep_sequence_file(tmp_path / "in40" / "deep40.dcm", 40)  # readable, but past the ceiling
    refused_everywhere(just_past, "nested more than 32 levels")
    shallow = deep_sequence_file(tmp_path / "ok" / "shallow.dcm", 3)
    assert load_series([shallow]).image.GetSize() == (4, 4, 1)


def test_rtstruct_import_applies_the_same_ceilings(tmp_path):
    reference = load_series([save(small_ct_slice(), tmp_path / "ct" / "1.dcm")])
    path = deep_sequence_file(tmp_path / "rt" / "deep.dcm", 3000, modality="RTSTRUCT")
    with pytest.raises(ResourceLimitError, match="nested"):
        rtstruct_to_masks(path, reference)
    big = tmp_path / "rt2" / "big.dcm"
    big.parent.mkdir()
    with open(big, "wb") as handle:
        handle.truncate(10 * 2**30)  # a sparse 10 GiB file
    with pytest.raises(ResourceLimitError, match="10 GiB, above the 4 GiB ceiling"):
        rtstruct_to_masks(big, reference)


def test_a_ten_gigabyte_file_is_refused_without_reading_it(tmp_path):
    path = save(small_ct_slice(), tmp_path / "in" / "huge.dcm")
    with open(path, "r+b") as handle:
        handle.truncate(10 * 2**30)  # sparse: the header is real, the rest a hole
    before, started = max_rss_bytes(), time.perf_counter()
    refused_everywhere(path, "above the 4 GiB ceiling")
    assert time.perf_counter() - started < 5
    assert max_rss_bytes() - before < 200 * 2**20


def test_malformed_dimension_values_are_localize_errors(tmp_path):
    ds = small_ct_slice()
    ds.NumberOfFrames = "-3"
    path = save(ds, tmp_path / "neg.dcm")
    with pytest.raises(LocalizeError, match="NumberOfFrames"):
        check_dataset(pydicom.dcmread(path), path, DEFAULT_LIMITS)
    with pytest.raises(LocalizeError):
        read_dataset(path)
