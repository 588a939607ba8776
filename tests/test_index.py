"""The archive index: headers only, any tree, bad files reported, input untouched."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.fileset import FileSet
from pydicom.uid import ImplicitVRLittleEndian, generate_uid

from localize.errors import StudyError
from localize.load.index import Archive, format_index, index_folder
from localize.sample_data.dicom_writer import one_slice, save

REPO = Path(__file__).resolve().parents[1]
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
PET_STORAGE = "1.2.840.10008.5.1.4.1.1.128"
MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
STORAGE = {"CT": CT_STORAGE, "PT": PET_STORAGE, "MR": MR_STORAGE}


def _image(modality: str, patient: str, study_uid: str, series_uid: str, frame_uid: str,
           z_mm: float, *, orientation=(1, 0, 0, 0, 1, 0), series_number: int = 1) -> Dataset:
    """A small single-frame image instance (4x5 pixels) of one series."""
    row, col = np.array(orientation[:3], float), np.array(orientation[3:], float)
    return one_slice(
        np.zeros((4, 5), np.uint16), np.cross(row, col) * z_mm + np.array([-10.0, -20.0, 0.0]), modality=modality,
        orientation=orientation, spacing_rc=(2.0, 3.0), SOPClassUID=STORAGE[modality],
        PatientName=f"TEST^{patient}", PatientID=patient,
        StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid, FrameOfReferenceUID=frame_uid,
        StudyDate="20240102", StudyTime="100000", SeriesDate="20240102", SeriesTime="110000",
        SeriesNumber=series_number, SeriesDescription=f"{modality} series", StudyID="1", InstanceNumber=1,
        ImageOrientationPatient=list(orientation), SliceThickness=2.5,
    )


def _psma_info() -> Dataset:
    info = Dataset()
    info.Radiopharmaceutical = "Ga-68 PSMA-11"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "C118961", "NCIT", "PSMA-11 Ga^68^"
    info.RadiopharmaceuticalCodeSequence = [code]
    return info


def _rtstruct(patient: str, study_uid: str, frame_uid: str, referenced_series_uid: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = RTSTRUCT_STORAGE
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.PatientName, ds.PatientID, ds.Modality = f"TEST^{patient}", patient, "RTSTRUCT"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, generate_uid()
    series = Dataset()
    series.SeriesInstanceUID = referenced_series_uid
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study.ReferencedSOPInstanceUID = study_uid
    study.RTReferencedSeriesSequence = [series]
    frame = Dataset()
    frame.FrameOfReferenceUID = frame_uid
    frame.RTReferencedStudySequence = [study]
    ds.ReferencedFrameOfReferenceSequence = [frame]
    return ds


def _random_path(root: Path, rng: random.Random) -> Path:
    depth = rng.randint(0, 3)
    parts = [f"d{rng.randint(0, 3)}" for _ in range(depth)]
    name = "".join(rng.choice("abcdefXYZ0123456789") for _ in range(10)) + rng.choice(["", ".dcm", ".IMA"])
    return root.joinpath(*parts, name)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> dict:
    """Two patients, three studies, PET/CT/MR/RTSTRUCT mixed in random nesting, plus junk."""
    root = tmp_path_factory.mktemp("archive")
    rng = random.Random(7)
    expected: dict[str, dict] = {}
    study_a, study_b, study_c = generate_uid(), generate_uid(), generate_uid()
    frame_a = generate_uid()
    layout = [  # (patient, study, modality, n slices, frame of reference, orientation)
        ("P1", study_a, "PT", 6, frame_a, (1, 0, 0, 0, 1, 0)),
        ("P1", study_a, "CT", 9, frame_a, (1, 0, 0, 0, 1, 0)),
        ("P1", study_a, "CT", 3, generate_uid(), (1, 0, 0, 0, 1, 0)),
        ("P1", study_b, "MR", 5, generate_uid(), (0, 1, 0, 0, 0, -1)),
        ("P2", study_c, "MR", 4, generate_uid(), (1, 0, 0, 0, 0.8660254, -0.5)),
    ]
    for number, (patient, study, modality, n, frame, orientation) in enumerate(layout, start=1):
        series_uid = generate_uid()
        files = []
        for i in range(n):
            ds = _image(modality, patient, study, series_uid, frame, 4.0 * i - 7.0,
                        orientation=orientation, series_number=number)
            if modality == "PT":
                ds.RadiopharmaceuticalInformationSequence = [_psma_info()]
            files.append(str(save(ds, _random_path(root, rng))))
        expected[series_uid] = {"modality": modality, "n": n, "files": sorted(files),
                                "patient": patient, "study": study, "frame": frame}
    ct_uid = next(u for u, e in expected.items() if e["modality"] == "CT" and e["n"] == 9)
    rt = _rtstruct("P1", study_a, frame_a, ct_uid)
    save(rt, root / "rt" / "structures")
    expected[rt.SeriesInstanceUID] = {"modality": "RTSTRUCT", "n": 1, "references": ct_uid}
    # a DICOMDIR written by pydicom's FileSet over a copy of two instances
    fs = FileSet()
    for path in expected[ct_uid]["files"][:2]:
        fs.add(path)
    fs.write(root / "media")
    expected_dicomdir = root / "media" / "DICOMDIR"
    for f in (root / "media").rglob("*"):  # the copies FileSet made are also DICOM of the CT series
        if f.is_file() and f.name != "DICOMDIR":
            expected[ct_uid]["files"].append(str(f))
            expected[ct_uid]["n"] += 1
    expected[ct_uid]["files"].sort()
    # junk: plain non-DICOM files, a truncated, an empty and a UID-less DICOM file
    (root / "notes.txt").write_text("not an image\n")
    (root / "d1").mkdir(exist_ok=True)
    (root / "d1" / "meta.json").write_text('{"a": 1}')
    (root / "d1" / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (root / "d1" / "README").write_text("series exported 2024\n")  # text with no suffix: skipped
    whole = Path(expected[ct_uid]["files"][0]).read_bytes()
    (root / "d2").mkdir(exist_ok=True)
    (root / "d2" / "cut.dcm").write_bytes(whole[: len(whole) // 2])
    (root / "d2" / "text.dcm").write_text(" ")  # text named as DICOM: reported, not skipped
    (root / "d2" / "empty").write_bytes(b"")
    no_uid = _image("CT", "P9", generate_uid(), generate_uid(), generate_uid(), 0.0)
    del no_uid.SeriesInstanceUID
    save(no_uid, root / "d2" / "nouid.dcm")
    return {"root": root, "expected": expected, "dicomdir": str(expected_dicomdir)}


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_series_grouped_by_uid_with_sorted_files(tree):
    archive = index_folder(tree["root"])
    found = {s.series_instance_uid: s for s in archive.all_series()}
    assert set(found) == set(tree["expected"])
    for uid, want in tree["expected"].items():
        assert found[uid].modality == want["modality"]
        assert found[uid].instance_count == want["n"]
        if "files" in want:
            assert list(found[uid].files) == want["files"]
    assert sorted(archive.patients) == ["P1", "P2"]
    assert len(archive.patients["P1"].studies) == 2


def test_geometry_summary(tree):
    archive = index_folder(tree["root"])
    by_modality = {}
    for s in archive.all_series():
        by_modality.setdefault(s.modality, []).append(s)
    pet = by_modality["PT"][0].geometry
    # positions were written at z = 4 i - 7 mm along the normal, i = 0..5
    assert (pet.z_min_mm, pet.z_max_mm, pet.n_positions) == (-7.0, 13.0, 6)
    assert (pet.rows, pet.columns, pet.pixel_spacing_mm, pet.slice_thickness_mm) == (4, 5, (2.0, 3.0), 2.5)
    assert pet.orientation == "axial" and not pet.multiframe and pet.n_frames == 6
    orientations = sorted(s.geometry.orientation for s in by_modality["MR"])
    assert orientations == ["oblique", "sagittal"]  # the second MR is tilted 30 degrees
    oblique = next(s for s in by_modality["MR"] if s.geometry.orientation == "oblique")
    assert oblique.geometry.obliquity_deg == pytest.approx(30.0, abs=1e-3)
    # normal (0, 0.5, 0.866): the in-plane offset (-10, -20, 0) adds -20 * 0.5 = -10 mm
    assert (oblique.geometry.z_min_mm, oblique.geometry.z_max_mm) == (-17.0, -5.0)


def test_pet_tracer_and_pairing(tree):
    archive = index_folder(tree["root"])
    [study] = archive.studies_with_pet()
    [pet] = study.pet_series()
    assert pet.tracer is not None and pet.tracer.family == "psma_ga68"
    assert pet.tracer.radionuclide == "Ga68"
    ct = study.ct_for(pet)
    assert ct is not None and ct.frame_of_reference_uid == pet.frame_of_reference_uid
    assert archive.series(ct.series_instance_uid) is ct
    assert archive.study(study.study_instance_uid) is study
    with pytest.raises(StudyError):
        archive.series("1.2.3.4")


def test_rtstruct_reference(tree):
    archive = index_folder(tree["root"])
    [rt] = [s for s in archive.all_series() if s.modality == "RTSTRUCT"]
    want = next(e["references"] for e in tree["expected"].values() if "references" in e)
    assert rt.referenced_series_uids == (want,)


def test_bad_and_plain_files_reported(tree):
    archive = index_folder(tree["root"])
    reasons = {Path(p).name: r for p, r in archive.unreadable}
    assert set(reasons) == {"cut.dcm", "empty", "nouid.dcm", "text.dcm"}
    assert reasons["text.dcm"].startswith("not DICOM")
    assert "truncated" in reasons["cut.dcm"]
    assert "0 bytes" in reasons["empty"]
    assert "SeriesInstanceUID" in reasons["nouid.dcm"]
    assert all("\n" not in r for r in reasons.values())
    assert archive.skipped == 4  # notes.txt, meta.json, pic.png, README
    assert archive.dicomdirs == [tree["dicomdir"]]
    n_indexed = sum(s.instance_count for s in archive.all_series())
    assert archive.files_seen == n_indexed + len(archive.unreadable) + archive.skipped + 1


def test_json_parses_and_matches(tree):
    archive = index_folder(tree["root"])
    data = json.loads(archive.to_json())
    assert data["format"] == "localize-index/1"
    series = [s for p in data["patients"] for st_ in p["studies"] for s in st_["series"]]
    assert {s["series_instance_uid"] for s in series} == set(tree["expected"])
    pet = next(s for s in series if s["modality"] == "PT")
    assert pet["tracer"]["family"] == "psma_ga68"
    assert pet["geometry"]["pixel_spacing_mm"] == [2.0, 3.0]
    assert {u["path"] for u in data["unreadable"]} == {p for p, _ in archive.unreadable}


def test_parallel_equals_serial(tree):
    serial, parallel = index_folder(tree["root"], workers=1), index_folder(tree["root"], workers=2)
    assert serial.to_json() == parallel.to_json()


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "localize", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=60)


def test_cli_tree_and_read_only_input(tree, tmp_path):
    copy = tmp_path / "ro"
    shutil.copytree(tree["root"], copy)
    before = _digest(copy)
    for p in [copy, *copy.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        result = _run_cli("index", str(copy))
        as_json = _run_cli("index", str(copy), "--json")
    finally:
        for p in [copy, *copy.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    assert result.returncode == 0, result.stderr
    assert "Patient TEST^P1" in result.stdout and "tracer psma_ga68" in result.stdout
    assert "cut.dcm: truncated" in result.stdout
    assert json.loads(as_json.stdout)["root"] == str(copy)
    assert _digest(copy) == before
    assert sorted(p.name for p in copy.rglob("*")) == sorted(p.name for p in tree["root"].rglob("*"))


def test_cli_not_a_folder(tmp_path):
    result = _run_cli("index", str(tmp_path / "absent"))
    assert result.returncode != 0 and "Traceback" not in result.stderr


@pytest.mark.testdata
def test_shared_testdata(testdata):
    archive = index_folder(testdata)
    series = list(archive.all_series())
    counts: dict[str, int] = {}
    for s in series:
        counts[s.modality] = counts.get(s.modality, 0) + 1
    # counted by hand from the folder (ATTRIBUTION.md): 3 CT folders + the rt-utils CT;
    # 6 MR folders, one series each (the Philips "two series" folder shares one
    # SeriesInstanceUID), + the T1 and T2 of studies/tcia-sts-001; 8 PET files, each its own
    # series (incl. PrivateMDNTags.dcm, which has no DICM prefix), + the tcia-sts-001 PET;
    # 2 rt-utils RTSTRUCT series (two files share one UID) + one per tcia-sts-001 series; 1 RWV map.
    assert counts == {"CT": 4, "MR": 8, "PT": 9, "RTSTRUCT": 5, "RWV": 1}
    # the 20 totalsegmentator-example CT slices were anonymised down to an empty SeriesInstanceUID
    unreadable = {Path(p).parent.relative_to(testdata).as_posix() for p, _ in archive.unreadable}
    assert unreadable == {"ct/totalsegmentator-example/dicom"} and len(archive.unreadable) == 20
    assert all(reason == "DICOM but no SeriesInstanceUID (0020,000E)" for _, reason in archive.unreadable)
    # ATTRIBUTION.md, four .nii.gz, the label map, its class map and two LICENSE files
    assert archive.skipped == 9
    mixed = next(s for s in series if s.geometry.orientation == "mixed")
    assert "mixed_two_series_one_folder_philips" in mixed.files[0]
    sag = next(s for s in series if s.series_number == 5001)
    assert (sag.instance_count, sag.geometry.orientation) == (63, "sagittal")
    enhanced = [s for s in series if s.geometry.multiframe]
    assert sorted(s.geometry.n_frames for s in enhanced) == [8, 8]
    rt = [s for s in series if s.modality == "RTSTRUCT"]
    ct_uid = next(s.series_instance_uid for s in series if "rt-utils-mock" in s.files[0] and s.modality == "CT")
    assert all(ct_uid in s.referenced_series_uids for s in rt if "rt.dcm" in " ".join(s.files))
    private = next(s for s in series if s.files[0].endswith("PrivateMDNTags.dcm"))
    assert private.modality == "PT"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_headers_never_raise(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("fuzz")
    ds = _image("PT", "F", "1.2.3.1", "1.2.3.2", "1.2.3.3", 1.0)  # fixed UIDs: same length every run
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    ds.RadiopharmaceuticalInformationSequence = [_psma_info()]
    original = bytearray(save(ds, root / "seed.dcm").read_bytes())
    names = []
    for k in range(4):
        blob = bytearray(original)
        for _ in range(data.draw(st.integers(0, 6))):
            at = data.draw(st.integers(0, len(blob) - 1))
            blob[at] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(0, len(blob)))
        path = root / f"m{k}.dcm"
        path.write_bytes(bytes(blob[:cut]))
        names.append(str(path))
    archive = index_folder(root)
    indexed = {f for s in archive.all_series() for f in s.files}
    reported = {p for p, _ in archive.unreadable}
    assert archive.skipped == 0
    assert indexed | reported == set(names) | {str(root / "seed.dcm")}
    assert not indexed & reported
    assert all(r and "\n" not in r for _, r in archive.unreadable)
    assert isinstance(archive, Archive) and isinstance(format_index(archive), str)
