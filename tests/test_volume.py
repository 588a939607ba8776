"""Series -> image: sorting, rescale, gaps, tilt, multi-frame, compression, geometry vs SimpleITK.

Every series here is written with localize.sample_data.dicom_writer in the test or read in place from
../shared/testdata. Expected values come from the stored pixels, from a linear
"physical field" written into the slices (value = a . P_lps, so any correct
geometry, and linear interpolation, reproduces it exactly), or from an
independent reader (SimpleITK/GDCM, Pillow, dicom2nifti's ground-truth NIfTI).
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from helpers.field import FIELD, field_series, image_dataset
from PIL import Image as PILImage
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    EnhancedCTImageStorage,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from localize.errors import DicomReadError, SeriesError
from localize.export.nifti import affine_ras
from localize.load.volume import load_series, split_series
from localize.sample_data.dicom_writer import save_series

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


# ---------------------------------------------------------------- checking images


def assert_field(image: sitk.Image, tolerance: float = 0.06, rows: slice = slice(None)) -> None:
    """Every voxel (in ``rows``) holds FIELD . P of its own LPS centre."""
    values = sitk.GetArrayFromImage(image)  # z, y, x
    size = image.GetSize()
    k, j, i = np.mgrid[0 : size[2], 0 : size[1], 0 : size[0]]
    index = np.stack([i, j, k], axis=-1).reshape(-1, 3).astype(float)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    points = np.array(image.GetOrigin()) + (index * image.GetSpacing()) @ direction.T
    expected = (points @ FIELD).reshape(values.shape)
    assert np.abs(values[:, rows] - expected[:, rows]).max() <= tolerance


def assert_same_geometry(image: sitk.Image, reference: sitk.Image, tol: float = 1e-4) -> None:
    assert image.GetSize() == reference.GetSize()
    np.testing.assert_allclose(image.GetOrigin(), reference.GetOrigin(), atol=tol)
    np.testing.assert_allclose(image.GetSpacing(), reference.GetSpacing(), atol=tol)
    np.testing.assert_allclose(image.GetDirection(), reference.GetDirection(), atol=tol)


def simpleitk_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    reader.SetOutputPixelType(sitk.sitkFloat32)
    return reader.Execute()


# ---------------------------------------------------------------- sorting and rescale


def test_shuffled_files_sorted_by_position_and_geometry_equals_simpleitk(tmp_path):
    positions = [(-40.0, -30.0, 10.0 + 2.5 * k) for k in range(8)]
    datasets = field_series(positions)
    order = list(range(8))
    random.Random(3).shuffle(order)
    for k, ds in enumerate(datasets):  # instance numbers and names say nothing about position
        ds.InstanceNumber = order[k] + 1
    paths = save_series(tmp_path / "ct", datasets, names=[f"x{o:02d}.dcm" for o in order])
    volume = load_series(random.Random(5).sample(paths, len(paths)))
    assert_same_geometry(volume.image, simpleitk_series(tmp_path / "ct"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(volume.image),
                                  sitk.GetArrayFromImage(simpleitk_series(tmp_path / "ct")))
    assert_field(volume.image)
    np.testing.assert_allclose(volume.positions_lps_mm[:, 2], [p[2] for p in positions])
    assert volume.sop_instance_uids == [ds.SOPInstanceUID for ds in datasets]
    assert volume.warnings == [] and not volume.resampled


def test_feet_first_series_reversed_numbering(tmp_path):
    # feet-first supine: row cosine points to the patient's right (-x), positions descend
    # with InstanceNumber; sorting along the normal (here -z... row x col) must still work
    orientation = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    positions = [(40.0, -30.0, 50.0 - 3.0 * k) for k in range(6)]
    paths = save_series(tmp_path / "ff", field_series(positions, orientation))
    volume = load_series(paths[::-1])
    assert_same_geometry(volume.image, simpleitk_series(tmp_path / "ff"))
    normal = np.cross(orientation[:3], orientation[3:])
    assert np.all(np.diff(volume.positions_lps_mm @ normal) > 0)
    assert_field(volume.image)


def test_per_slice_rescale_slopes(tmp_path):
    stored = np.arange(30, dtype=np.int16).reshape(5, 6)
    slopes, intercepts = [0.5, 2.0, 7.25], [-1024.0, 0.0, 12.5]
    datasets = [image_dataset(stored, (0, 0, 4.0 * k), slope=s, intercept=b)
                for k, (s, b) in enumerate(zip(slopes, intercepts))]
    volume = load_series(save_series(tmp_path, datasets))
    values = sitk.GetArrayFromImage(volume.image)
    assert volume.image.GetPixelID() == sitk.sitkFloat32
    for k, (s, b) in enumerate(zip(slopes, intercepts)):
        np.testing.assert_allclose(values[k], stored * s + b, rtol=1e-6)


def test_oblique_mr_written_here(tmp_path):
    # rotated 20 deg about x then 10 deg about z: a double-oblique stack
    ax, az = np.radians(20), np.radians(10)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    rot = rz @ rx
    orientation = tuple(rot[:, 0]) + tuple(rot[:, 1])
    positions = [tuple(np.array([-20.0, 10.0, 5.0]) + 3.0 * k * rot[:, 2]) for k in range(5)]
    paths = save_series(tmp_path / "mr", field_series(positions, orientation, modality="MR"))
    volume = load_series(paths)
    assert_same_geometry(volume.image, simpleitk_series(tmp_path / "mr"))
    assert_field(volume.image)


# ---------------------------------------------------------------- gaps, spacing, tilt


def test_missing_slice_warns_with_gap_and_strict_refuses(tmp_path):
    zs = [0.0, 2.0, 4.0, 8.0, 10.0]  # the slice at 6 mm is missing
    paths = save_series(tmp_path, field_series([(-4.0, -4.0, z) for z in zs]))
    volume = load_series(paths)
    assert len(volume.warnings) == 1 and "missing" in volume.warnings[0]
    assert "4.0) mm" in volume.warnings[0] and "gap 4.00 mm" in volume.warnings[0]
    assert volume.image.GetSize()[2] == 6 and volume.image.GetSpacing()[2] == pytest.approx(2.0)
    assert volume.resampled and len(volume.headers) == 5
    assert_field(volume.image)  # the filled slice interpolates a linear field exactly
    with pytest.raises(SeriesError, match="missing"):
        load_series(paths, strict=True)


def test_bed_overlap_spacing_is_one_grid_at_the_mean(tmp_path):
    # steps of 3.19 and 3.29 mm as bed overlaps leave them: the source's slice count at the mean step
    zs = np.cumsum([0.0, 3.29, 3.19, 3.29, 3.29, 3.19, 3.29])
    paths = save_series(tmp_path, field_series([(-4.0, -4.0, z) for z in zs]))
    volume = load_series(paths)
    assert volume.image.GetSize()[2] == 7 and not volume.resampled
    assert volume.image.GetSpacing()[2] == pytest.approx(zs[-1] / 6)
    assert "3.190 to 3.290 mm" in volume.warnings[0] and "mean 3.257 mm" in volume.warnings[0]
    assert_same_geometry(volume.image, simpleitk_series(tmp_path))


def test_missing_bed_named_with_its_position(tmp_path):
    # 3.27 mm steps with a 30 mm hole (a bed not written): named at the slice before it
    zs = [0.0, 3.27, 6.54, 9.81, 39.81, 43.08, 46.35]
    paths = save_series(tmp_path, field_series([(-4.0, -4.0, z) for z in zs]))
    volume = load_series(paths)
    assert len(volume.warnings) == 1
    assert "missing after the slice at LPS (-4.0, -4.0, 9.8) mm (gap 30.00 mm)" in volume.warnings[0]
    assert volume.resampled and volume.image.GetSpacing()[2] == pytest.approx(3.27)


def test_non_uniform_spacing_resampled_to_smallest_step(tmp_path):
    zs = [0.0, 1.5, 3.0, 6.0, 10.0]
    paths = save_series(tmp_path, field_series([(-4.0, -4.0, z) for z in zs]))
    volume = load_series(paths)
    assert "varies from 1.500 to 4.000 mm" in volume.warnings[0]
    assert volume.image.GetSpacing()[2] == pytest.approx(1.5)
    assert volume.image.GetSize()[2] == 8  # 0 .. 10 mm at 1.5 mm, last at 10.0 (clamped)
    assert_field(volume.image.__getitem__((slice(None), slice(None), slice(0, 7))))
    with pytest.raises(SeriesError, match="varies"):
        load_series(paths, strict=True)


def test_gantry_tilt_written_here_is_untilted(tmp_path):
    tilt = np.radians(15.0)
    orientation = (1.0, 0.0, 0.0, 0.0, np.cos(tilt), -np.sin(tilt))  # GE-style tilted planes
    positions = [(-5.0, -8.0, 3.0 * k) for k in range(6)]  # table moves along z only
    paths = save_series(tmp_path, field_series(positions, orientation, shape=(40, 12)))
    volume = load_series(paths)
    assert "15.00 deg" in volume.warnings[0]
    normal = np.cross(orientation[:3], orientation[3:])
    np.testing.assert_allclose(np.array(volume.image.GetDirection()).reshape(3, 3)[:, 2], normal, atol=1e-6)
    assert volume.image.GetSpacing()[2] == pytest.approx(3.0 * np.cos(tilt), abs=1e-4)
    # rows shifted in from outside the field of view are filled; check the rows every slice covers
    assert_field(volume.image, tolerance=0.1, rows=slice(0, 32))


@pytest.mark.testdata
def test_ge_gantry_tilt_and_varying_spacing(testdata):
    # dcm_qa_ct GE HiSpeed: GantryDetectorTilt 18.5 deg, table steps 4.22, 1.14 and 7.38 mm.
    # Expected: tilt found from the geometry alone and equal to the header's 18.5 deg; spacing along
    # the normal = smallest table step x cos(18.5 deg); the first slice stays the origin.
    folder = testdata / "ct" / "dcm_qa_ct-GE-HiSpeed-gantrytilt-varspacing"
    files = sorted(folder.glob("*.dcm"))
    volume = load_series(files)
    header_tilt = float(pydicom.dcmread(files[0], stop_before_pixels=True).GantryDetectorTilt)
    assert f"{header_tilt:.2f} deg" in volume.warnings[0]
    assert "varies" in volume.warnings[1]
    assert volume.image.GetSpacing()[2] == pytest.approx(1.14 * np.cos(np.radians(18.5)), abs=2e-3)
    np.testing.assert_allclose(volume.image.GetOrigin(), (-125.0, -123.5404569, 5.8360586), atol=1e-4)
    # the first slice is untouched by the in-plane shift: equal to GDCM's reading of that file
    first = sitk.GetArrayFromImage(sitk.ReadImage(str(files[0]), sitk.sitkFloat32))[0]
    np.testing.assert_allclose(sitk.GetArrayFromImage(volume.image)[0], first, atol=1e-3)


@pytest.mark.testdata
def test_siemens_tilt_and_ge_missing_slice_from_dicom2nifti_failing_cases(testdata):
    # dicom2nifti refuses both. Siemens: IOP tilted acos(0.9703) = 14.0 deg, positions along z only
    # -> untilted with a warning. GE: slices at 18.1, 23.1, 28.1, 38.1 mm -> one missing slice
    # after z = 28.1 mm, filled, 5 slices at 5 mm.
    tilt = load_series(sorted((testdata / "ct/dicom2nifti-failing/gantrytilting_siemens").glob("*.dcm")))
    assert "14.00 deg" in tilt.warnings[0]
    gap = load_series(sorted((testdata / "ct/dicom2nifti-failing/sliceincrement_missing_slice_ge").glob("*.dcm")))
    assert "1 missing after the slice at LPS (-123.5, -115.2, 28.1) mm (gap 10.00 mm)" in gap.warnings[0]
    assert gap.image.GetSize()[2] == 5 and gap.image.GetSpacing()[2] == pytest.approx(5.0, abs=1e-3)


# ---------------------------------------------------------------- duplicates and mixed series


def test_duplicate_positions_refused_with_split_attribute(tmp_path):
    datasets = [ds for echo in (1, 2) for ds in field_series([(0, 0, 2.0 * k) for k in range(4)],
                                                             modality="MR", EchoNumbers=echo)]
    paths = save_series(tmp_path, datasets)
    with pytest.raises(SeriesError, match="split the series by EchoNumbers"):
        load_series(paths)
    groups = split_series(paths)
    assert sorted(len(g) for g in groups) == [4, 4]
    for group in groups:
        assert_field(load_series(group).image)


@pytest.mark.testdata
def test_two_series_mixed_in_one_folder(testdata):
    # dicom2nifti's "mixed_two_series_one_folder_philips": two orientations under one UID.
    # Expected: refused as mixed orientations; split_series yields two loadable 2-slice stacks.
    files = sorted((testdata / "mr/dicom2nifti/mixed_two_series_one_folder_philips").glob("*.dcm"))
    with pytest.raises(SeriesError, match="mixed slice orientations"):
        load_series(files)
    groups = split_series(files)
    assert sorted(len(g) for g in groups) == [2, 2]
    assert all(load_series(g).image.GetSize()[2] == 2 for g in groups)


# ---------------------------------------------------------------- multi-frame


def enhanced_ct(tmp_path: Path, zs: Sequence[float], slopes: Sequence[float]) -> tuple[Path, np.ndarray]:
    """An Enhanced CT (per-frame functional groups), frames in the given (unsorted) z order."""
    rows, cols = 6, 5
    stored = np.stack([np.full((rows, cols), 10 * (k + 1), dtype=np.int16) + np.arange(cols, dtype=np.int16)
                       for k in range(len(zs))])
    ds = image_dataset(stored[0], (0, 0, 0))
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness",
                    "RescaleSlope", "RescaleIntercept"):
        delattr(ds, keyword)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = EnhancedCTImageStorage
    ds.NumberOfFrames = len(zs)
    shared = Dataset()
    measures, plane = Dataset(), Dataset()
    measures.PixelSpacing, measures.SliceThickness = [0.9, 0.6], 2.0
    plane.ImageOrientationPatient = list(AXIAL)
    shared.PixelMeasuresSequence = DicomSequence([measures])
    shared.PlaneOrientationSequence = DicomSequence([plane])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    frames = []
    for z, slope in zip(zs, slopes):
        frame, position, transform = Dataset(), Dataset(), Dataset()
        position.ImagePositionPatient = [-3.0, -2.0, z]
        transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = slope, -5.0, "HU"
        frame.PlanePositionSequence = DicomSequence([position])
        frame.PixelValueTransformationSequence = DicomSequence([transform])
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(frames)
    ds.PixelData = stored.tobytes()
    path = save_series(tmp_path, [ds], names=["enhanced.dcm"])[0]
    return path, stored


def test_enhanced_ct_per_frame_geometry_and_rescale(tmp_path):
    zs, slopes = [4.0, 0.0, 8.0, 2.0, 6.0], [1.0, 2.0, 3.0, 4.0, 5.0]
    path, stored = enhanced_ct(tmp_path, zs, slopes)
    volume = load_series([path])
    order = np.argsort(zs)
    assert volume.frame_numbers == [int(k) + 1 for k in order]
    values = sitk.GetArrayFromImage(volume.image)
    for out_k, frame_k in enumerate(order):
        np.testing.assert_allclose(values[out_k], stored[frame_k] * slopes[frame_k] - 5.0)
    assert volume.image.GetSpacing() == pytest.approx((0.6, 0.9, 2.0))
    assert volume.image.GetOrigin() == pytest.approx((-3.0, -2.0, 0.0))
    assert volume.headers[0].RescaleSlope == 2.0 and volume.headers[0].ImagePositionPatient == [-3.0, -2.0, 0.0]


def assert_matches_ground_truth(image: sitk.Image, truth_path: Path) -> None:
    """Same voxel values at the same RAS points as the reference NIfTI (any voxel order)."""
    truth = nib.load(str(truth_path))
    truth_data = np.asanyarray(truth.dataobj).reshape(truth.shape[:3])
    ours = sitk.GetArrayFromImage(image).transpose(2, 1, 0)  # i, j, k
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in ours.shape], indexing="ij"), -1).reshape(-1, 3)
    ras = ijk @ affine_ras(image)[:3, :3].T + affine_ras(image)[:3, 3]
    truth_ijk = (ras - truth.affine[:3, 3]) @ np.linalg.inv(truth.affine[:3, :3]).T
    np.testing.assert_allclose(truth_ijk, np.round(truth_ijk), atol=1e-2)
    idx = np.round(truth_ijk).astype(int)
    np.testing.assert_allclose(ours.reshape(-1), truth_data[idx[:, 0], idx[:, 1], idx[:, 2]], rtol=1e-4, atol=1e-3)


@pytest.mark.testdata
@pytest.mark.parametrize("case", ["siemens_enhanced_multiframe", "philips_enhanced_multiframe",
                                  "philips_oblique", "hitachi_oblique"])
def test_mr_against_dicom2nifti_ground_truth(testdata, case):
    # dicom2nifti's expected NIfTI for each case. Expected: every voxel of ours lands on a voxel
    # centre of the reference (the affines describe the same grid, possibly in another voxel
    # order) with the same value. The Philips enhanced file also carries stale positions in a
    # private per-frame sequence; the standard PlanePositionSequence must win.
    folder = testdata / "mr" / "dicom2nifti" / case
    volume = load_series(sorted(folder.glob("*.dcm")))
    assert volume.warnings == []
    assert_matches_ground_truth(volume.image, folder / "001_ground_truth.nii.gz")


# ---------------------------------------------------------------- compressed transfer syntaxes


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless])
def test_lossless_compressed_series_equal_uncompressed(tmp_path, syntax):
    rng = np.random.default_rng(7)
    stored = [rng.integers(0, 4096, (64, 48), dtype=np.uint16) for _ in range(3)]
    plain = [image_dataset(s, (0, 0, 3.0 * k), slope=1.0, intercept=-1024.0) for k, s in enumerate(stored)]
    packed = [image_dataset(s, (0, 0, 3.0 * k), slope=1.0, intercept=-1024.0) for k, s in enumerate(stored)]
    for ds in packed:
        ds.compress(syntax)
    assert pydicom.dcmread(save_series(tmp_path / "c", packed)[0]).file_meta.TransferSyntaxUID == syntax
    ours = sitk.GetArrayFromImage(load_series(sorted((tmp_path / "c").glob("*.dcm"))).image)
    np.testing.assert_array_equal(ours, np.stack(stored).astype(np.float32) - 1024.0)
    reference = sitk.GetArrayFromImage(load_series(save_series(tmp_path / "p", plain)).image)
    np.testing.assert_array_equal(ours, reference)


def test_jpeg_baseline_decoded_like_pillow(tmp_path):
    # 8-bit JPEG baseline encoded by Pillow; expected = Pillow's own decoding (another
    # libjpeg build), so allow the +-1..2 grey levels IDCT implementations differ by.
    rng = np.random.default_rng(1)
    slices, expected = [], []
    for k in range(2):
        gradient = (np.add.outer(np.arange(32), np.arange(24)) * 3 + rng.integers(0, 20, (32, 24))).astype(np.uint8)
        buffer = io.BytesIO()
        PILImage.fromarray(gradient, mode="L").save(buffer, format="JPEG", quality=95)
        expected.append(np.asarray(PILImage.open(io.BytesIO(buffer.getvalue()))))
        ds = image_dataset(gradient.astype(np.uint16), (0, 0, 2.0 * k), slope=1.0, intercept=0.0)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.PixelData = encapsulate([buffer.getvalue()])
        ds["PixelData"].VR = "OB"
        slices.append(ds)
    values = sitk.GetArrayFromImage(load_series(save_series(tmp_path, slices)).image)
    assert np.abs(values - np.stack(expected)).max() <= 2


@pytest.mark.testdata
@pytest.mark.parametrize("name", ["fo-dicom/GH184.dcm", "orthanc-tests/2021-02-19-MalaterreCP246.dcm"])
def test_real_compressed_pet_slices_equal_gdcm(testdata, name):
    # GE PET in JPEG lossless (process 14 SV1) and a PET in JPEG-LS lossless. Expected: the
    # rescaled values equal GDCM's decoding (SimpleITK.ReadImage applies the same rescale).
    path = testdata / "pet" / name
    volume = load_series([path])
    reference = sitk.ReadImage(str(path), sitk.sitkFloat32)
    np.testing.assert_allclose(sitk.GetArrayFromImage(volume.image), sitk.GetArrayFromImage(reference),
                               rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(volume.image.GetOrigin(), reference.GetOrigin(), atol=1e-4)


# ---------------------------------------------------------------- clean real series, odd input


@pytest.mark.testdata
def test_sagittal_mr_geometry_equals_simpleitk(testdata):
    # Siemens XA30 sagittal EPI, 63 slices, clean: same grid and values as ImageSeriesReader.
    folder = testdata / "mr" / "dcm_qa_sag-XA30-5001-sagittal"
    volume = load_series(sorted(folder.glob("*.dcm")))
    reference = simpleitk_series(folder)
    assert_same_geometry(volume.image, reference)
    np.testing.assert_allclose(sitk.GetArrayFromImage(volume.image), sitk.GetArrayFromImage(reference))


def test_single_slice_and_scout_without_geometry(tmp_path):
    one = load_series(save_series(tmp_path / "one", [image_dataset(np.ones((4, 4), np.int16), (1, 2, 3))]))
    assert one.image.GetSize() == (4, 4, 1) and one.image.GetSpacing()[2] == pytest.approx(2.0)
    scout = image_dataset(np.ones((4, 4), np.int16), (0, 0, 0))
    del scout.ImagePositionPatient, scout.ImageOrientationPatient
    with pytest.raises(SeriesError, match="not a volume image"):
        load_series(save_series(tmp_path / "scout", [scout]))


def test_unreadable_and_truncated_files_raise_localize_errors(tmp_path):
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all" * 10)
    with pytest.raises(DicomReadError, match="junk.dcm"):
        load_series([junk])
    good = save_series(tmp_path / "t", [image_dataset(np.ones((64, 64), np.int16), (0, 0, 0))])[0]
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(good.read_bytes()[:-3000])
    with pytest.raises(DicomReadError, match="truncated.dcm"):
        load_series([truncated])
    with pytest.raises(SeriesError):
        load_series([])
