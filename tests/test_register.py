"""Registration of MR with PET/CT, on phantom studies with a known MR transform.

Truth comes from the phantom generator (landmarks in both frames, the 4x4
MR -> CT matrix); nothing here is computed by the code under test.
"""

from __future__ import annotations

import json
import subprocess
import warnings
from pathlib import Path

import jsonschema
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from helpers.tools import require_tool

from localize.errors import RegistrationError
from localize.load.pet import load_pet
from localize.load.volume import load_series
from localize.registration import (
    check_pet_ct,
    load_registration,
    load_transform,
    mr_to_pet_points,
    pet_to_mr_points,
    register_mr,
    resample_to,
    save_transform,
    write_spatial_registration,
)
from localize.registration.result import quality_reasons

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
OFFSET_1M = (1000.0, -400.0, 300.0)  # MR frame origin about a metre from the PET/CT frame's


def _files(root: Path, truth, modality: str) -> list[Path]:
    return sorted((root / truth.series_dirs[modality]).glob("*"))


def _landmarks(truth) -> tuple[np.ndarray, np.ndarray]:
    """(PET/CT-frame, MR-frame) LPS points of the landmarks inside the MR field of view."""
    pairs = [(v["lps_mm"], v["mr_lps_mm"]) for v in truth.landmarks.values() if v["mr_lps_mm"] is not None]
    return np.array([p for p, _ in pairs], float), np.array([q for _, q in pairs], float)


def _tre(points_estimated: np.ndarray, points_true: np.ndarray) -> np.ndarray:
    return np.linalg.norm(points_estimated - points_true, axis=1)


@pytest.fixture(scope="module")
def oblique_far(phantom):
    """Oblique MR, frame offset ~1 m, 4-10 deg / 10-30 mm displacement; loaded CT, PET (SUV), MR."""
    root, truth = phantom(with_mr=True, mr_offset_mm=OFFSET_1M, mr_oblique=True, seed=1)
    ct = load_series(_files(root, truth, "CT"))
    mr = load_series(_files(root, truth, "MR"))
    pet = load_pet(_files(root, truth, "PT"))
    return root, truth, ct, mr, pet


@pytest.fixture(scope="module")
def registered(oblique_far):
    _, _, ct, mr, _ = oblique_far
    return register_mr(mr.image, ct.image, fixed_modality="CT", threads=1)


def test_mr_to_ct_meets_the_accuracy_target(oblique_far, registered):
    _, truth, _, _, _ = oblique_far
    points, points_mr = _landmarks(truth)
    assert len(points) >= 20
    assert np.ptp(points, axis=0).min() > 50.0  # spread through the pelvis
    tre = _tre(mr_to_pet_points(registered, points_mr), points)
    assert np.median(tre) <= 1.5 and tre.max() <= 3.0, tre
    assert registered.quality == "ok", registered.reasons
    truth_matrix = np.asarray(truth.mr_to_ct)
    assert np.abs(registered.matrix_mr_to_pet_lps[:3, :3] - truth_matrix[:3, :3]).max() < 0.01
    assert np.allclose(registered.matrix_mr_to_pet_lps @ registered.matrix_pet_to_mr_lps, np.eye(4), atol=1e-9)
    assert len(registered.iterations) == 3 and all(n > 0 for n in registered.iterations)
    assert registered.metric < registered.initial_metric < 0


def test_points_map_both_ways(oblique_far, registered):
    _, truth, _, _, _ = oblique_far
    points, points_mr = _landmarks(truth)
    assert np.median(_tre(pet_to_mr_points(registered, points), points_mr)) <= 1.5
    round_trip = pet_to_mr_points(registered, mr_to_pet_points(registered, points_mr))
    assert np.abs(round_trip - points_mr).max() < 1e-6


def test_to_dict_fits_the_findings_schema(registered):
    schema = json.loads((REPO / "localize" / "schema" / "findings.schema.json").read_text())
    entry = registered.to_dict()
    jsonschema.validate(entry, schema["properties"]["registration"]["properties"]["mr_to_pet"])
    assert np.allclose(entry["matrix_lps"], registered.matrix_mr_to_pet_lps)
    json.dumps(entry)


def test_resampling_both_ways_agrees_with_the_true_transform(oblique_far, registered):
    _, truth, ct, mr, _ = oblique_far
    true_ct_to_mr = sitk.AffineTransform(3)
    ct_to_mr = np.asarray(truth.ct_to_mr)
    true_ct_to_mr.SetMatrix(ct_to_mr[:3, :3].ravel().tolist())
    true_ct_to_mr.SetTranslation(ct_to_mr[:3, 3].tolist())

    mr_on_ct = sitk.GetArrayFromImage(resample_to(mr.image, ct.image, registered))
    mr_on_ct_true = sitk.GetArrayFromImage(sitk.Resample(mr.image, ct.image, true_ct_to_mr, sitk.sitkLinear, 0.0))
    inside = mr_on_ct_true > 0
    assert inside.sum() > 10_000
    assert np.corrcoef(mr_on_ct[inside], mr_on_ct_true[inside])[0, 1] > 0.95

    ct_on_mr = sitk.GetArrayFromImage(resample_to(ct.image, mr.image, registered, inverse=True, default_value=-1000))
    ct_on_mr_true = sitk.GetArrayFromImage(
        sitk.Resample(ct.image, mr.image, true_ct_to_mr.GetInverse(), sitk.sitkLinear, -1000.0))
    assert ct_on_mr.shape == sitk.GetArrayViewFromImage(mr.image).shape
    assert np.corrcoef(ct_on_mr.ravel(), ct_on_mr_true.ravel())[0, 1] > 0.95


def test_transform_file_round_trip(registered, oblique_far, tmp_path):
    _, truth, _, _, _ = oblique_far
    path = save_transform(registered, tmp_path / "out" / "mr_to_pet.tfm")
    assert path.is_file() and list(path.parent.iterdir()) == [path]
    loaded = load_transform(path)
    points, _ = _landmarks(truth)
    for p in points[:5]:
        assert np.allclose(loaded.TransformPoint(p.tolist()), registered.transform.TransformPoint(p.tolist()),
                           atol=1e-6)
    (tmp_path / "junk.tfm").write_text("not a transform\n")
    with pytest.raises(RegistrationError, match="junk.tfm"):
        load_transform(tmp_path / "junk.tfm")


def test_a_saved_registration_reads_back_with_its_matrices(registered, oblique_far, tmp_path):
    """The reviewed export reads the run's mr_to_pet.tfm back: the same mapping both ways (LPS mm)."""
    _, truth, _, _, _ = oblique_far
    loaded = load_registration(save_transform(registered, tmp_path / "mr_to_pet.tfm"))
    assert np.allclose(loaded.matrix_pet_to_mr_lps, registered.matrix_pet_to_mr_lps, atol=1e-9)
    assert np.allclose(loaded.matrix_mr_to_pet_lps, registered.matrix_mr_to_pet_lps, atol=1e-6)
    points_pet_lps_mm, _ = _landmarks(truth)
    for p in points_pet_lps_mm[:5]:
        p_mr_lps_mm = np.array(loaded.transform.TransformPoint(p.tolist()))
        assert np.allclose(p_mr_lps_mm, registered.transform.TransformPoint(p.tolist()), atol=1e-6)
        back_lps_mm = loaded.matrix_mr_to_pet_lps @ np.append(p_mr_lps_mm, 1.0)
        assert np.allclose(back_lps_mm[:3], p, atol=1e-3)  # mm
    assert loaded.quality == "ok" and loaded.method == "read from mr_to_pet.tfm"


def test_spatial_registration_object_reproduces_the_fusion(oblique_far, registered, tmp_path):
    _, truth, ct, mr, _ = oblique_far
    path = write_spatial_registration(registered, ct.headers, mr.headers, tmp_path / "reg.dcm")
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.1" and ds.Modality == "REG"
    assert ds.FrameOfReferenceUID == ct.headers[0].FrameOfReferenceUID
    items = {item.FrameOfReferenceUID: item for item in ds.RegistrationSequence}
    assert set(items) == {ct.headers[0].FrameOfReferenceUID, mr.headers[0].FrameOfReferenceUID}
    mr_item = items[mr.headers[0].FrameOfReferenceUID]
    assert len(mr_item.ReferencedImageSequence) == len(mr.headers)
    matrix = np.array(
        mr_item.MatrixRegistrationSequence[0].MatrixSequence[0].FrameOfReferenceTransformationMatrix, float
    ).reshape(4, 4)
    points, points_mr = _landmarks(truth)
    mapped = points_mr @ matrix[:3, :3].T + matrix[:3, 3]
    assert np.median(_tre(mapped, points)) <= 1.5
    other_study = ds.StudiesContainingOtherReferencedInstancesSequence[0]
    assert other_study.StudyInstanceUID == mr.headers[0].StudyInstanceUID


def test_spatial_registration_object_is_valid_dicom(oblique_far, registered, tmp_path):
    _, _, ct, mr, _ = oblique_far
    path = write_spatial_registration(registered, ct.headers, mr.headers, tmp_path / "reg.dcm")
    report = subprocess.run([require_tool("dciodvfy"), str(path)], capture_output=True, text=True)
    lines = (report.stdout + report.stderr).splitlines()
    assert any("SpatialRegistration" in line for line in lines), lines
    problems = [line for line in lines if line.startswith(("Error", "Warning"))]
    assert problems == []


def test_mr_to_pet_without_ct(oblique_far):
    """PET-only fallback: 4 mm voxels and 6 mm FWHM allow a looser bound than MR -> CT."""
    _, truth, _, mr, pet = oblique_far
    reg = register_mr(mr.image, pet.image, fixed_modality="PT", pelvis_only=True, threads=1)
    assert reg.quality == "ok", reg.reasons
    points, points_mr = _landmarks(truth)
    tre = _tre(mr_to_pet_points(reg, points_mr), points)
    assert np.median(tre) <= 2.0 and tre.max() <= 3.0, tre


def test_deterministic_with_a_fixed_seed_and_one_thread(phantom):
    root, truth = phantom(with_mr=True, mr_offset_mm=(-700.0, 900.0, -1200.0), seed=2)
    ct = load_series(_files(root, truth, "CT")).image
    mr = load_series(_files(root, truth, "MR")).image
    first = register_mr(mr, ct, fixed_modality="CT", pelvis_only=True, seed=7, threads=1)
    second = register_mr(mr, ct, fixed_modality="CT", pelvis_only=True, seed=7, threads=1)
    assert np.array_equal(first.matrix_mr_to_pet_lps, second.matrix_mr_to_pet_lps)
    points, points_mr = _landmarks(truth)
    tre = _tre(mr_to_pet_points(first, points_mr), points)
    assert np.median(tre) <= 1.5 and tre.max() <= 3.0, tre


def test_affine_refinement_keeps_the_accuracy(oblique_far):
    _, truth, ct, mr, _ = oblique_far
    reg = register_mr(mr.image, ct.image, fixed_modality="CT", refine="affine", threads=1)
    assert "affine" in reg.method and reg.transform.GetName() == "AffineTransform"
    points, points_mr = _landmarks(truth)
    tre = _tre(mr_to_pet_points(reg, points_mr), points)
    assert np.median(tre) <= 1.5 and tre.max() <= 3.0, tre


def test_shared_frame_is_identity_and_only_verified(oblique_far):
    _, _, ct, _, pet = oblique_far
    uid = ct.headers[0].FrameOfReferenceUID
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check = check_pet_ct(pet.image, ct.image, uid, uid)
    assert check.same_frame_of_reference and check.warnings == ()
    assert np.array_equal(check.matrix_ct_to_pet_lps, np.eye(4))
    assert check.body_dice > 0.85


def test_shared_frame_with_moved_patient_warns_but_is_not_reregistered(oblique_far):
    _, _, ct, _, pet = oblique_far
    moved = sitk.Image(ct.image)
    moved.SetOrigin((np.array(ct.image.GetOrigin()) + [0.0, 60.0, 0.0]).tolist())  # 6 cm posterior
    with pytest.warns(UserWarning, match="overlap poorly"):
        check = check_pet_ct(pet.image, moved, "1.2.3", "1.2.3")
    assert np.array_equal(check.matrix_ct_to_pet_lps, np.eye(4)) and check.registration is None


def test_different_frames_register_ct_to_pet_with_a_warning(oblique_far):
    _, _, ct, _, pet = oblique_far
    shift = np.array([12.0, -20.0, 25.0])
    moved = sitk.Image(ct.image)
    moved.SetOrigin((np.array(ct.image.GetOrigin()) + shift).tolist())  # CT frame = PET frame + shift
    with pytest.warns(UserWarning, match="registered rigidly"):
        check = check_pet_ct(pet.image, moved, "1.2.3", "1.2.4")
    assert not check.same_frame_of_reference
    probe = np.array([[0.0, 0.0, 30.0], [80.0, 40.0, -20.0], [-80.0, -40.0, 60.0]])
    mapped = (probe + shift) @ check.matrix_ct_to_pet_lps[:3, :3].T + check.matrix_ct_to_pet_lps[:3, 3]
    assert _tre(mapped, probe).max() <= 3.0


def test_mr_without_a_body_is_an_error(oblique_far):
    _, _, ct, mr, _ = oblique_far
    air = sitk.GetImageFromArray(np.zeros((20, 64, 64), np.float32))  # a blank series
    air.SetSpacing((4.0, 4.0, 4.0))
    with pytest.raises(RegistrationError, match="no body"):
        register_mr(air, ct.image, fixed_modality="CT")
    with pytest.raises(RegistrationError, match="not a 3D volume"):
        register_mr(mr.image[:, :, 0], ct.image, fixed_modality="CT")


def test_quality_flags_implausible_results():
    rotation = np.eye(4)
    angle = np.radians(30.0)
    rotation[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    reasons = quality_reasons(rotation, -0.5, -0.4, 0.5, False, "Maximum number of iterations (200) exceeded")
    text = " ".join(reasons)
    assert "rotation 30.0 deg" in text and "worse" in text and "Dice 0.50" in text and "converge" in text
    scaled = np.diag([1.3, 1.0, 1.0, 1.0])
    assert any("scale" in r for r in quality_reasons(scaled, -0.5, -0.6, 0.95, True, ""))
    assert quality_reasons(np.eye(4), -0.5, -0.6, 0.95, True, "") == ()
