"""Hostile DICOM text never reaches the file system: safe names, collisions, one-line labels."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from helpers.images import rtstruct_for, small_ct_slice
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset

from localize.batch.run import run_study_process
from localize.export.convert import convert_folder
from localize.export.rtstruct import rtstruct_to_masks
from localize.load.plan import StudyPlan
from localize.load.volume import Volume, load_series
from localize.safe_names import clean_label, safe_name, unique_name
from localize.sample_data.dicom_writer import save

SAFE = re.compile(r"^[A-Za-z0-9+_][A-Za-z0-9._+-]*$")
RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{n}" for p in ("COM", "LPT") for n in range(1, 10)}

HOSTILE = [
    "../../etc/x",
    "..",
    "C:\\x",
    "a\x00b/../c",
    "line\nbreak\r\x1b[31mred",
    "x" * 10_000,
    b"\xff\xfe\xc3\x28 caf\xe9 \x80",  # not UTF-8
    "CON",
    "nul.txt",
    "/absolute/path",
    "   ",
    "",
    None,
]


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def assert_safe(name: str, max_length: int = 64) -> None:
    assert SAFE.match(name), name
    assert len(name) <= max_length
    assert ".." not in name and "/" not in name and "\\" not in name
    assert name.split(".")[0].upper() not in RESERVED


def test_hostile_values_become_safe_names():
    for value in HOSTILE:
        assert_safe(safe_name(value))
    assert safe_name("../../etc/x") == "etc_x"
    assert safe_name("C:\\x") == "C_x"
    assert safe_name("CON") == "_CON" and safe_name("nul.txt") == "_nul.txt"
    assert safe_name("Ré sumé") == "Re_sume"
    assert safe_name(None) == "unnamed" and safe_name("...", fallback="series") == "series"


def test_long_values_keep_a_hash_so_shared_prefixes_stay_distinct():
    a, b = safe_name("x" * 10_000 + "a"), safe_name("x" * 10_000 + "b")
    assert len(a) == len(b) == 64 and a != b


@settings(max_examples=400, deadline=None, database=None)
@given(st.one_of(st.text(), st.binary()), st.integers(16, 200))
def test_any_value_gives_a_safe_bounded_name(value, max_length):
    assert_safe(safe_name(value, max_length=max_length), max_length)


def test_unique_names_ignore_case_and_stay_bounded():
    taken: set[str] = set()
    assert [unique_name(n, taken) for n in ("CT", "ct", "Ct", "x" * 64)] + [unique_name("x" * 64, taken)] == [
        "CT", "ct_2", "Ct_3", "x" * 64, "x" * 62 + "_2"]


def test_labels_lose_control_characters_and_stay_bounded():
    assert clean_label("Blad\x00der\n\x1b[31m") == "Blad der [31m"
    assert len(clean_label("y" * 10_000)) == 64
    assert clean_label(b"\xffProstate") == "\ufffdProstate"


def test_convert_names_files_safely_from_hostile_series_descriptions(tmp_path):
    archive, out = tmp_path / "in", tmp_path / "out"
    for n, description in enumerate(HOSTILE + ["same", "SAME"]):
        for z in (0.0, 2.0):
            ds = small_ct_slice(z)
            ds.SeriesInstanceUID = f"1.2.3.4.5.{n}"
            ds.SeriesNumber = 1  # all share the number: only the description differs
            if description is not None:
                ds.SeriesDescription = description
            save(ds, archive / f"s{n}" / f"{z}.dcm")
    before = files_under(tmp_path)
    results = convert_folder(archive, out)
    assert [r.error for r in results] == [None] * len(results) and len(results) == len(HOSTILE) + 2
    written = {p.name for p in out.iterdir()}
    assert all(p.parent == out for p in out.rglob("*")), "nothing below OUT's top level"
    assert len(written) == 2 * len(results), "no two series share a file (case-insensitively)"
    assert len({n.lower() for n in written}) == len(written)
    for name in written:
        assert_safe(name.removesuffix(".nii.gz").removesuffix(".json"), 128)
    assert files_under(tmp_path) - before == {"out"} | {f"out/{n}" for n in written}
    sidecar = json.loads(next(out.glob("*.json")).read_text())
    assert sidecar["series_instance_uid"].startswith("1.2.3.4.5.")


@pytest.mark.slow
def test_batch_study_folders_are_safe_whatever_the_study_date(tmp_path):
    out = tmp_path / "out"
    plan = StudyPlan("patient", "1.2.3", "../../../etc/evil\x00")
    manifest = plan.manifest() | {"files": {"pet": [], "ct": [], "mr": [], "rtstruct": []}}
    row = run_study_process(manifest, str(out), timeout_s=60, memory_limit_gb=4)
    assert not row["ok"]  # no PET files: an input error, recorded
    assert files_under(tmp_path) <= {"out", "out/studies"}
    hostile = manifest | {"name": "../../escaped"}
    run_study_process(hostile, str(out), timeout_s=60, memory_limit_gb=4)
    assert not (tmp_path / "escaped").exists() and files_under(tmp_path) <= {"out", "out/studies"}


def rtstruct_on(reference: Path, names: list[object]) -> tuple[Dataset, Volume]:
    """An RTSTRUCT with one square contour per ROI on a slice written at ``reference``, and that slice loaded."""
    ref = load_series([save(small_ct_slice(), reference)])
    return rtstruct_for(ref, names), ref


def test_hostile_roi_names_become_one_line_bounded_labels(tmp_path):
    names = ["../../etc/x", "C:\\x", "a\x00b", "x" * 10_000, b"\xff\xfe caf\xe9", "Bladder", "Bladder", None]
    ds, ref = rtstruct_on(tmp_path / "ct" / "1.dcm", names)
    path = save(ds, tmp_path / "rt" / "rs.dcm")
    masks = rtstruct_to_masks(path, ref)
    assert len(masks) == len(names)
    for name, mask in masks.items():
        assert len(name) <= 64 + 5 and not any(ord(c) < 32 for c in name), repr(name)
        assert int(np.asarray(sitk.GetArrayViewFromImage(mask)).sum()) == 4
    assert "Bladder" in masks and "Bladder (7)" in masks and "ROI_8" in masks
