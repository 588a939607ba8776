"""Fuzzing index, load, SUV and RTSTRUCT import with header-level mutations of small valid files.

Every generated input must end in a result or a ``localize`` error (never another
exception), and nothing may be written anywhere but the output folder: the input
folder is read-only and every folder is listed before and after.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from helpers.images import rtstruct_for, small_ct_slice
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset

from localize.errors import LocalizeError
from localize.export.rtstruct import rtstruct_to_masks
from localize.load.index import index_folder
from localize.load.pet import load_pet
from localize.load.volume import load_series
from localize.sample_data.dicom_writer import save

pytestmark = pytest.mark.slow


EXAMPLES = int(os.environ.get("LOCALIZE_FUZZ_EXAMPLES", 1260))  # per target: four targets, > 5,000 inputs per run
TRIED = {"inputs": 0}
REFERENCE: dict = {}  # the CT slice RTSTRUCT inputs are drawn on, loaded once
REPO = Path(__file__).resolve().parents[1]

KEYWORDS = ["Rows", "Columns", "NumberOfFrames", "BitsAllocated", "BitsStored", "PixelRepresentation",
            "SamplesPerPixel", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "RescaleSlope",
            "RescaleIntercept", "Modality", "SeriesInstanceUID", "PatientWeight", "Units", "DecayCorrection",
            "CorrectedImage", "SeriesDate", "SeriesTime", "AcquisitionTime", "SeriesDescription", "PatientID",
            "RadiopharmaceuticalInformationSequence", "ROIContourSequence", "StructureSetROISequence",
            "PixelData", "SpecificCharacterSet", "FrameOfReferenceUID", "SliceThickness"]
VALUES = st.one_of(
    st.none(), st.integers(-2**31, 2**32), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40), st.binary(max_size=64),
    st.lists(st.one_of(st.floats(-1e6, 1e6), st.integers(-5, 5), st.text(max_size=5)), max_size=8),
    st.sampled_from(["../../etc/x", "C:\\x", "a\x00b", "x" * 10_000, "ISO_IR 192", "BQML", "START", "-1", "nan"]),
)
MUTATION = st.tuples(st.sampled_from(KEYWORDS), VALUES)
BYTE_FLIPS = st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 255)), max_size=6)


def pet_slice(z_mm: float) -> Dataset:
    """A small PET slice with what SUV needs (Bq/ml, decay corrected to START, 18F)."""
    ds = small_ct_slice(z_mm, modality="PT")
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.128"
    ds.Units, ds.DecayCorrection, ds.CorrectedImage = "BQML", "START", ["ATTN", "DECY"]
    ds.PatientWeight, ds.SeriesDate, ds.SeriesTime = 80, "20240101", "110000"
    ds.AcquisitionDate, ds.AcquisitionTime = "20240101", "110000"
    ds.RescaleIntercept = 0
    info = Dataset()
    info.RadionuclideTotalDose, info.RadionuclideHalfLife = 3.7e8, 6586.2
    info.RadiopharmaceuticalStartDateTime = "20240101100000"
    info.Radiopharmaceutical = "PSMA-11"
    ds.RadiopharmaceuticalInformationSequence = [info]
    return ds


def mutate(ds: Dataset, mutations) -> None:
    for keyword, value in mutations:
        try:
            if value is None:
                if keyword in ds:
                    delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
        except Exception:  # pydicom refuses some values at assignment: that input is not generated
            continue


def write_mutated(ds: Dataset, path: Path, flips) -> bool:
    try:
        save(ds, path)
    except Exception:  # pydicom cannot encode this value: nothing to feed the reader
        return False
    data = bytearray(path.read_bytes())
    for offset, byte in flips:
        if 132 <= offset < len(data):
            data[offset] = byte
    path.write_bytes(bytes(data))
    return True


def listing(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*")}


def run_target(base: Path, name: str, build, call) -> None:
    """Write the input read-only, call the target, accept only localize errors and no new files."""
    TRIED["inputs"] += 1
    case = base / f"{name}{TRIED['inputs']}"  # this input's own folder: listings stay small
    folder = case / "in"
    folder.mkdir(parents=True)
    paths = build(folder)
    if paths is None:
        return
    for p in folder.rglob("*"):
        os.chmod(p, stat.S_IRUSR | (stat.S_IXUSR if p.is_dir() else 0))
    os.chmod(folder, stat.S_IRUSR | stat.S_IXUSR)
    before = listing(case), set(os.listdir(base)), set(os.listdir(REPO)), set(os.listdir(Path.cwd()))
    try:
        call(paths)
    except LocalizeError as exc:
        assert "\n" not in str(exc)
    assert (listing(case), set(os.listdir(base)), set(os.listdir(REPO)), set(os.listdir(Path.cwd()))) == before


fuzz_settings = settings(max_examples=EXAMPLES, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))


@seed(20240601)
@fuzz_settings
@given(st.lists(MUTATION, max_size=4), BYTE_FLIPS)
def test_fuzz_index(tmp_path_factory, mutations, flips):
    base = tmp_path_factory.getbasetemp() / "fuzz-index"
    base.mkdir(exist_ok=True)

    def build(folder):
        ds = small_ct_slice()
        mutate(ds, mutations)
        return folder if write_mutated(ds, folder / "a.dcm", flips) else None

    run_target(base, "i", build, lambda folder: index_folder(folder))


def two_slice_series(make_slice, mutations, flips):
    """A builder of a two-slice series whose second slice is mutated and its bytes flipped."""

    def build(folder):
        first, second = make_slice(0.0), make_slice(2.0)
        mutate(second, mutations)
        ok = write_mutated(first, folder / "a.dcm", []) and write_mutated(second, folder / "b.dcm", flips)
        return [folder / "a.dcm", folder / "b.dcm"] if ok else None

    return build


@pytest.mark.parametrize("name, make_slice, target",
                         [("load", small_ct_slice, load_series), ("suv", pet_slice, load_pet)],
                         ids=["load", "suv"])
@seed(20240602)
@fuzz_settings
@given(st.lists(MUTATION, max_size=4), BYTE_FLIPS)
def test_fuzz_series(tmp_path_factory, name, make_slice, target, mutations, flips):
    base = tmp_path_factory.getbasetemp() / f"fuzz-{name}"
    base.mkdir(exist_ok=True)
    run_target(base, name, two_slice_series(make_slice, mutations, flips), target)


@seed(20240604)
@fuzz_settings
@given(st.lists(MUTATION, max_size=4), BYTE_FLIPS, st.lists(VALUES, min_size=1, max_size=3))
def test_fuzz_rtstruct(tmp_path_factory, mutations, flips, roi_names):
    base = tmp_path_factory.getbasetemp() / "fuzz-rt"
    base.mkdir(exist_ok=True)
    if "volume" not in REFERENCE:
        REFERENCE["volume"] = load_series([save(small_ct_slice(), base / "ct" / "1.dcm")])

    def build(folder):
        try:
            ds = rtstruct_for(REFERENCE["volume"], [n if isinstance(n, str | bytes) else None for n in roi_names])
        except Exception:  # a ROI name pydicom will not hold: not an input
            return None
        mutate(ds, [(k, v) for k, v in mutations if k in ("ROIContourSequence", "StructureSetROISequence",
                                                          "Modality", "SpecificCharacterSet", "PatientID")])
        return folder / "rs.dcm" if write_mutated(ds, folder / "rs.dcm", flips) else None

    run_target(base, "r", build, lambda path: rtstruct_to_masks(path, REFERENCE["volume"]))


def test_fuzz_count():
    """Runs last in this file: the suite tried at least 5,000 inputs."""
    assert TRIED["inputs"] >= 4 * EXAMPLES * 0.95 or TRIED["inputs"] == 0


def test_no_code_from_data(tmp_path):
    """No pickle, eval/exec, unsafe YAML or shell in the package; a YAML object tag is refused, not run."""
    from localize.config import load_pipeline

    for path in (REPO / "localize").rglob("*.py"):
        text = path.read_text()
        for pattern in (r"\bpickle\b", r"(?<![\w.])eval\(", r"(?<![\w.])exec\(", r"yaml\.load\(", r"unsafe_load",
                        r"shell\s*=\s*True", r"os\.system\(", r"os\.popen\("):
            assert not re.search(pattern, text), (path, pattern)
    marker = tmp_path / "pwned"
    hostile = tmp_path / "hostile.yaml"
    hostile.write_text(f"name: x\nexports: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(LocalizeError):
        load_pipeline(hostile)
    assert not marker.exists()
