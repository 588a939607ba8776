"""RTSTRUCT export and import: geometry round trips, conformance (dciodvfy), real third-party files."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from helpers.images import FFS, HFS, findings_for, lesion_label_image, volume_series
from helpers.tools import dciodvfy_errors

from localize.errors import DicomReadError, SeriesError
from localize.export.rtstruct import build_rtstruct, rtstruct_to_masks, write_rtstruct
from localize.sample_data.dicom_writer import save


def _oblique(angle_deg: float) -> tuple[float, ...]:
    a = np.deg2rad(angle_deg)
    return (1.0, 0.0, 0.0, 0.0, float(np.cos(a)), float(np.sin(a)))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def centroid_lps(mask_zyx: np.ndarray, image: sitk.Image) -> np.ndarray:
    """Centroid in LPS mm computed straight from the direction matrix (not via the code under test)."""
    k, j, i = np.nonzero(mask_zyx)
    ijk = np.stack([i, j, k]).mean(axis=1)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    return np.asarray(image.GetOrigin()) + direction @ (ijk * np.asarray(image.GetSpacing()))


GEOMETRIES = {
    "head_first": dict(iop=HFS, pixel_spacing=(1.0, 1.0), slice_step_mm=2.0),
    "feet_first": dict(iop=FFS, pixel_spacing=(1.0, 1.0), slice_step_mm=2.0),
    "non_square": dict(iop=HFS, pixel_spacing=(0.8, 1.3), slice_step_mm=2.5),
    "oblique": dict(iop=_oblique(20.0), pixel_spacing=(1.1, 0.9), slice_step_mm=2.0),
}


@pytest.fixture(scope="module")
def labels() -> sitk.Image:
    return lesion_label_image()


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_contours_rebuild_the_lesion_masks(tmp_path, labels, geometry):
    options = GEOMETRIES[geometry]
    rows, cols = (110, 150) if options["pixel_spacing"] == (1.0, 1.0) else (130, 120)
    ct = volume_series(tmp_path / "ct", shape_zyx=(40, rows, cols), **options)
    findings = findings_for(labels)
    out = write_rtstruct(tmp_path / "out" / "rtstruct.dcm", findings, labels, ct)

    assert dciodvfy_errors(out) == []
    masks = rtstruct_to_masks(out, ct)
    assert sorted(masks) == ["GTV_01_nodal", "GTV_02_local", "GTV_03_distant"]
    expected_zyx = sitk.GetArrayFromImage(
        sitk.Resample(labels, ct.image, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
    for lesion in findings.lesions:
        name = f"GTV_{lesion.id:02d}_{lesion.region}"
        got = sitk.GetArrayFromImage(masks[name]).astype(bool)
        want = expected_zyx == lesion.label
        assert want.sum() > 100
        assert dice(got, want) >= 0.85, name
        assert np.linalg.norm(centroid_lps(got, ct.image) - centroid_lps(want, ct.image)) <= 1.0, name


def test_header_references_and_encoding(tmp_path, labels):
    ct = volume_series(tmp_path / "ct", shape_zyx=(40, 110, 150), iop=FFS, slice_step_mm=2.0)
    findings = findings_for(labels)
    ds = pydicom.dcmread(write_rtstruct(tmp_path / "rs.dcm", findings, labels, ct))
    assert ds.Modality == "RTSTRUCT" and ds.ApprovalStatus == "UNAPPROVED" and ds.StructureSetLabel
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ImplicitVRLittleEndian
    frame = ds.ReferencedFrameOfReferenceSequence[0]
    assert frame.FrameOfReferenceUID == ct.headers[0].FrameOfReferenceUID
    series_ref = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert series_ref.SeriesInstanceUID == ct.headers[0].SeriesInstanceUID
    assert [i.ReferencedSOPInstanceUID for i in series_ref.ContourImageSequence] == ct.sop_instance_uids
    assert ds.StudyInstanceUID == ct.headers[0].StudyInstanceUID and ds.PatientID == "EXP001"

    numbers = [roi.ROINumber for roi in ds.StructureSetROISequence]
    assert len(set(numbers)) == len(numbers) == 6
    types = {roi.ROIName: obs.RTROIInterpretedType
             for roi, obs in zip(ds.StructureSetROISequence, ds.RTROIObservationsSequence)}
    assert types == {"GTV_01_nodal": "GTV", "TGT_01_nodal": "MARKER", "GTV_02_local": "GTV",
                     "TGT_02_local": "MARKER", "GTV_03_distant": "GTV", "TGT_03_distant": "MARKER"}
    by_uid = {h.SOPInstanceUID: h for h in ct.headers}
    raw = pydicom.dcmread(tmp_path / "rs.dcm")
    for roi_contour in raw.ROIContourSequence:
        for contour in roi_contour.ContourSequence:
            points = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
            assert contour.NumberOfContourPoints == len(points)
            assert all(len(str(v)) <= 16 for v in contour.ContourData)
            if contour.ContourGeometricType == "POINT":
                assert len(points) == 1
                continue
            assert contour.ContourGeometricType == "CLOSED_PLANAR" and len(points) >= 3
            assert not np.allclose(points[0], points[-1])  # closure is implied, not repeated
            header = by_uid[contour.ContourImageSequence[0].ReferencedSOPInstanceUID]
            # every point lies in its slice's plane (FFS: z of that slice's own IPP)
            np.testing.assert_allclose(points[:, 2], float(header.ImagePositionPatient[2]), atol=1e-3)

    targets = {roi.ROIName: rc for roi, rc in zip(ds.StructureSetROISequence, ds.ROIContourSequence)}
    point = np.asarray(targets["TGT_01_nodal"].ContourSequence[0].ContourData, dtype=float)
    np.testing.assert_allclose(point, findings.lesions[0].target_lps_mm, atol=1e-3)
    assert tuple(targets["GTV_01_nodal"].ROIDisplayColor) != tuple(targets["GTV_02_local"].ROIDisplayColor)


def test_holes_and_islands_are_separate_contours(tmp_path):
    """A ring (one hole) and two islands on one axial plane: 1 + 1 + 2 contours, holes kept on reading."""
    grid = sitk.Image((60, 50, 3), sitk.sitkUInt16)
    grid.SetOrigin((-30.0, -25.0, -2.0))
    grid.SetSpacing((1.0, 1.0, 2.0))
    labels_zyx = np.zeros((3, 50, 60), dtype=np.uint16)
    labels_zyx[1, 10:30, 5:25] = 1
    labels_zyx[1, 15:25, 10:20] = 0  # hole
    labels_zyx[1, 5:10, 40:50] = 2
    labels_zyx[1, 30:40, 35:55] = 2  # second island
    labels = sitk.GetImageFromArray(labels_zyx)
    labels.CopyInformation(grid)
    ct = volume_series(tmp_path / "ct", shape_zyx=(3, 50, 60), slice_step_mm=2.0, centre_lps_mm=(-0.5, -0.5, 0.0))
    ds = build_rtstruct(findings_for(labels), labels, ct)
    counts = {roi.ROIName: len(rc.ContourSequence) for roi, rc in zip(ds.StructureSetROISequence, ds.ROIContourSequence)
              if roi.ROIName.startswith("GTV")}
    assert counts == {"GTV_01_nodal": 2, "GTV_02_local": 2}
    path = tmp_path / "rs.dcm"
    write_rtstruct(path, findings_for(labels), labels, ct)
    masks = rtstruct_to_masks(path, ct)
    # same grid: the voxel-edge contours give back exactly the voxels
    np.testing.assert_array_equal(sitk.GetArrayFromImage(masks["GTV_01_nodal"]), labels_zyx == 1)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(masks["GTV_02_local"]), labels_zyx == 2)


def test_mr_frame_structure_set_through_a_transform(tmp_path, labels):
    """Second RTSTRUCT on an MR frame: MR points map to PET points by a known rigid transform."""
    mr = volume_series(tmp_path / "mr", shape_zyx=(30, 120, 120), pixel_spacing=(1.2, 1.2), slice_step_mm=3.0,
                      iop=_oblique(10.0), modality="MR", sop_class_uid="1.2.840.10008.5.1.4.1.1.4")
    mr_to_pet = sitk.Euler3DTransform()
    mr_to_pet.SetRotation(0.0, 0.0, np.deg2rad(5.0))
    mr_to_pet.SetTranslation((12.0, -7.0, 4.0))
    findings = findings_for(labels)
    pet_to_mr = mr_to_pet.GetInverse()
    for lesion in findings.lesions:
        lesion.target_mr_lps_mm = pet_to_mr.TransformPoint(lesion.target_lps_mm)
    out = write_rtstruct(tmp_path / "rs_mr.dcm", findings, labels, mr, transform=mr_to_pet)
    assert dciodvfy_errors(out) == []
    ds = pydicom.dcmread(out)
    assert ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID == mr.headers[0].FrameOfReferenceUID
    masks = rtstruct_to_masks(out, mr)
    for lesion in findings.lesions:
        got = sitk.GetArrayFromImage(masks[f"GTV_{lesion.id:02d}_{lesion.region}"]).astype(bool)
        # each MR-frame mask centroid, mapped to the PET frame, is the PET lesion centroid
        pet_centroid = np.asarray(mr_to_pet.TransformPoint(tuple(centroid_lps(got, mr.image))))
        pet_mask = sitk.GetArrayFromImage(labels) == lesion.label
        assert np.linalg.norm(pet_centroid - centroid_lps(pet_mask, labels)) <= 1.5


def test_study_without_lesions_still_writes_a_valid_structure_set(tmp_path, labels):
    ct = volume_series(tmp_path / "ct", shape_zyx=(5, 40, 40))
    empty = findings_for(labels)
    empty.lesions = []
    blank = sitk.Image(labels.GetSize(), sitk.sitkUInt16)
    blank.CopyInformation(labels)
    out = write_rtstruct(tmp_path / "rs.dcm", empty, blank, ct)
    assert dciodvfy_errors(out) == []
    ds = pydicom.dcmread(out)
    assert [roi.ROIName for roi in ds.StructureSetROISequence] == ["NO_LESION"]
    assert rtstruct_to_masks(out, ct) == {}


def test_reader_refuses_other_frames_and_missing_images(tmp_path, labels):
    ct = volume_series(tmp_path / "ct", shape_zyx=(40, 110, 150))
    out = write_rtstruct(tmp_path / "rs.dcm", findings_for(labels), labels, ct)
    other_frame = volume_series(tmp_path / "ct2", shape_zyx=(40, 110, 150))
    with pytest.raises(SeriesError, match="frame of reference"):
        rtstruct_to_masks(out, other_frame)
    same_frame_other_images = volume_series(tmp_path / "ct3", shape_zyx=(40, 110, 150),
                                           frame_uid=ct.headers[0].FrameOfReferenceUID)
    with pytest.raises(SeriesError, match="not in the series"):
        rtstruct_to_masks(out, same_frame_other_images)
    with pytest.raises(DicomReadError, match="not an RT Structure Set"):
        rtstruct_to_masks(ct.paths[0], ct)


def test_masks_onto_another_grid(tmp_path, labels):
    """Planning structures drawn on the CT, imported onto the PET grid of the same frame."""
    ct = volume_series(tmp_path / "ct", shape_zyx=(60, 150, 150), slice_step_mm=2.0)
    out = write_rtstruct(tmp_path / "rs.dcm", findings_for(labels), labels, ct)
    masks = rtstruct_to_masks(out, ct, grid=labels)
    on_pet = sitk.GetArrayFromImage(masks["GTV_01_nodal"]).astype(bool)
    assert masks["GTV_01_nodal"].GetSize() == labels.GetSize()
    assert dice(on_pet, sitk.GetArrayFromImage(labels) == 1) >= 0.85


# -- third-party RTSTRUCTs (rt-utils mock data: a 2-slice GE CT phantom and three structure sets) --

def _rt_utils_ct(testdata: Path):
    folder = testdata / "rt" / "rt-utils-mock"
    headers = sorted((pydicom.dcmread(folder / f"ct_{i}.dcm") for i in (1, 2)),
                     key=lambda h: float(h.ImagePositionPatient[2]))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(folder / f"ct_{i}.dcm") for i in (1, 2)])
    image = reader.Execute()
    return SimpleNamespace(image=image, headers=headers, sop_instance_uids=[h.SOPInstanceUID for h in headers],
                           positions_lps_mm=np.array([h.ImagePositionPatient for h in headers], dtype=float),
                           paths=[], resampled=False), folder


@pytest.mark.testdata
def test_rt_utils_structure_sets(testdata, tmp_path):
    ct, folder = _rt_utils_ct(testdata)
    # rt.dcm names a frame of reference its CT does not have: refused, not guessed
    with pytest.raises(SeriesError, match="frame of reference"):
        rtstruct_to_masks(folder / "rt.dcm", ct)
    # both others have contours on a third CT image (…995.90) that is not in the folder
    for name in ("invalid_reference_rt.dcm", "non_existent_reference_rt.dcm"):
        with pytest.raises(SeriesError, match=r"995\.90, which is not in the series"):
            rtstruct_to_masks(folder / name, ct)

    # rt.dcm moved to the CT's frame: ROI-1 is a 24 x 24 px square with an 8-point ring inside it on z = 60
    ds = pydicom.dcmread(folder / "rt.dcm")
    ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = ct.headers[0].FrameOfReferenceUID
    for roi in ds.StructureSetROISequence:
        roi.ReferencedFrameOfReferenceUID = ct.headers[0].FrameOfReferenceUID
    fixed = tmp_path / "rt_fixed.dcm"
    save(ds, fixed)
    mask_zyx = sitk.GetArrayFromImage(rtstruct_to_masks(fixed, ct)["ROI-1"])
    assert mask_zyx[1].sum() == 0
    outer, inner = (np.asarray(c.ContourData, dtype=float).reshape(-1, 3)
                    for c in ds.ROIContourSequence[0].ContourSequence)
    spacing = float(ct.headers[0].PixelSpacing[0])
    # expected: pixel centres inside the outer polygon and not inside the inner one (even-odd)
    from matplotlib.path import Path as PolygonPath
    jj, ii = np.mgrid[0:512, 0:512]
    centres = np.column_stack([-125.0 + ii.ravel() * spacing, -125.0 + jj.ravel() * spacing])
    expected = (PolygonPath(outer[:, :2]).contains_points(centres)
                ^ PolygonPath(inner[:, :2]).contains_points(centres)).reshape(512, 512)
    assert abs(int(mask_zyx[0].sum()) - int(expected.sum())) <= 0.02 * expected.sum()
    assert dice(mask_zyx[0].astype(bool), expected) >= 0.97
