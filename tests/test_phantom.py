"""The phantom generator: reading its DICOM back (pydicom, SimpleITK, nibabel) gives its ground truth."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from localize.load.tracer import identify_tracer
from localize.sample_data import LesionSpec, StudySpec, StudyTruth

pytestmark = pytest.mark.slow

SMALL = dict(extent="pelvis", ct_matrix=128, with_mr=False)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _series(root: Path, modality: str) -> list[pydicom.Dataset]:
    out = []
    for p in _files(root / "dicom"):
        ds = pydicom.dcmread(p)
        if ds.Modality == modality:
            out.append(ds)
    return out


def _dt(date: str, time: str) -> datetime:
    return datetime.strptime(date + time.split(".")[0], "%Y%m%d%H%M%S")


def _suv_volume(slices: list[pydicom.Dataset]) -> tuple[np.ndarray, np.ndarray, pydicom.Dataset]:
    """SUVbw volume (z, y, x) and slice z positions, by the docs/suv.md formula written out here."""
    first = slices[0]
    item = first.RadiopharmaceuticalInformationSequence[0]
    inj = datetime.strptime(item.RadiopharmaceuticalStartDateTime.split(".")[0], "%Y%m%d%H%M%S")
    series = _dt(first.SeriesDate, first.SeriesTime)
    earliest = min(_dt(s.AcquisitionDate, s.AcquisitionTime) for s in slices)
    if series <= earliest:
        ref = series
    else:  # GE: private scan datetime (0009,100D)
        ref = datetime.strptime(str(first[0x0009, 0x100D].value).split(".")[0], "%Y%m%d%H%M%S")
    decayed = float(item.RadionuclideTotalDose) * 2 ** (-(ref - inj).total_seconds() / float(item.RadionuclideHalfLife))
    factor = float(first.PatientWeight) * 1000 / decayed
    slices = sorted(slices, key=lambda s: float(s.ImagePositionPatient[2]))
    vol = []
    for s in slices:
        value = s.pixel_array.astype(float) * float(s.RescaleSlope) + float(s.RescaleIntercept)
        if s.Units == "CNTS":
            value = value * float(s[0x7053, 0x1009].value)
        vol.append(value * factor)
    return np.array(vol), np.array([float(s.ImagePositionPatient[2]) for s in slices]), slices[0]


def _max_near(vol, z_pos, ds, center, radius_mm):
    """Max of a z, y, x volume (axial, HFS or FFS) over voxels within radius of an LPS point."""
    ipp, iop = np.array(ds.ImagePositionPatient, float), np.array(ds.ImageOrientationPatient, float)
    sy, sx = (float(v) for v in ds.PixelSpacing)
    cols = ipp[0] + iop[0] * sx * np.arange(ds.Columns)
    rows = ipp[1] + iop[4] * sy * np.arange(ds.Rows)
    d2 = ((z_pos[:, None, None] - center[2]) ** 2 + (rows[None, :, None] - center[1]) ** 2
          + (cols[None, None, :] - center[0]) ** 2)
    return vol[d2 <= radius_mm**2]


@pytest.mark.parametrize("vendor", ["siemens", "ge", "philips"])
def test_independent_suv_formula_recovers_lesion_truth(phantom, vendor):
    root, truth = phantom(**SMALL, vendor=vendor, pet_noise=0.0)
    vol, z_pos, ds = _suv_volume(_series(root, "PT"))
    assert len(truth.lesions) >= 8
    for les in truth.lesions:
        r = max(les.diameter_mm / 2, 4.0 * 0.87)
        assert _max_near(vol, z_pos, ds, les.center_lps_mm, r).max() == pytest.approx(les.suv_max, rel=2e-3), les.name
        assert 2.5 <= les.suv_max <= 30
    bladder = truth.landmarks["bladder_center"]["lps_mm"]
    assert _max_near(vol, z_pos, ds, bladder, 6).mean() == pytest.approx(40.0, rel=0.03)  # DCFPyL urine, imaging.py


def test_vendor_conventions(phantom):
    ge = _series(phantom(**SMALL, vendor="ge", pet_noise=0.0)[0], "PT")
    assert all(_dt(s.SeriesDate, s.SeriesTime) > _dt(s.AcquisitionDate, s.AcquisitionTime) for s in ge)
    assert ge[0][0x0009, 0x0010].value == "GEMS_PETD_01"
    ph = _series(phantom(**SMALL, vendor="philips", pet_noise=0.0)[0], "PT")
    assert {s.Units for s in ph} == {"CNTS"} and (0x7053, 0x1000) in ph[0] and (0x7053, 0x1009) in ph[0]
    siemens = _series(phantom(**SMALL, pet_noise=0.0)[0], "PT")
    s0 = siemens[0]
    assert s0.Units == "BQML" and s0.DecayCorrection == "START" and s0.Manufacturer == "SIEMENS"
    assert len({s.RescaleSlope for s in siemens}) > 1  # per-slice slope
    assert identify_tracer(s0).agent == "DCFPyL" and identify_tracer(s0).radionuclide == "F18"
    assert s0.PatientSex == "M" and float(s0.PatientSize) == 1.78


@pytest.mark.parametrize("position", ["HFS", "FFS"])
def test_sitk_reads_ct_pet_in_one_frame(phantom, position):
    root, truth = phantom(**SMALL, patient_position=position)
    uids = {}
    for mod in ("CT", "PT"):
        folder = root / truth.series_dirs[mod]
        uids[mod] = {pydicom.dcmread(p, stop_before_pixels=True).FrameOfReferenceUID for p in _files(folder)}
    assert len(uids["CT"]) == 1 and uids["CT"] == uids["PT"]
    ct = _read(root / truth.series_dirs["CT"])
    pet = _read(root / truth.series_dirs["PT"])
    # FFS rows run to the patient's right, so the slice normal (row x column) points feet-ward
    flip = 1 if position == "HFS" else -1
    assert np.allclose(np.array(ct.GetDirection())[[0, 4, 8]], [flip, 1, flip])
    for name, lo, hi in (("femoral_head_center_left", 150, 400), ("bladder_center", -30, 40)):
        p = truth.landmarks[name]["lps_mm"]
        hu = ct.GetPixel(ct.TransformPhysicalPointToIndex(p))
        assert lo < hu < hi, (name, hu)
    # the left femoral head is at +x (patient's left) in both frames and images
    head = truth.landmarks["femoral_head_center_left"]["lps_mm"]
    assert head[0] > 0 and pet.GetPixel(pet.TransformPhysicalPointToIndex(head)) > 0


def _read(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def test_mr_frame_and_landmarks(phantom):
    root, truth = phantom(**{**SMALL, "with_mr": True, "mr_offset_mm": (0.0, 0.0, 1000.0), "mr_oblique": True})
    mr_files = _files(root / truth.series_dirs["MR"])
    mr0 = pydicom.dcmread(mr_files[0], stop_before_pixels=True)
    ct0 = pydicom.dcmread(_files(root / truth.series_dirs["CT"])[0], stop_before_pixels=True)
    assert mr0.FrameOfReferenceUID != ct0.FrameOfReferenceUID and mr0.StudyInstanceUID != ct0.StudyInstanceUID
    assert mr0.StudyDate != ct0.StudyDate
    m = np.array(truth.mr_to_ct)
    rot = m[:3, :3]
    assert np.allclose(rot @ rot.T, np.eye(3), atol=1e-9)
    assert np.degrees(np.arccos((np.trace(rot) - 1) / 2)) <= 10.0
    mapped = [lm for lm in truth.landmarks.values() if lm["mr_lps_mm"] is not None]
    assert len(mapped) >= 20
    for lm in mapped:
        back = rot @ np.array(lm["mr_lps_mm"]) + m[:3, 3]
        assert np.allclose(back, lm["lps_mm"], atol=1e-6)
    mr = _read(root / truth.series_dirs["MR"])
    assert mr.GetSize() == (320, 320, 40)

    def at(name):
        return mr.GetPixel(mr.TransformPhysicalPointToIndex(truth.landmarks[name]["mr_lps_mm"]))

    gluteus = mr.GetPixel(mr.TransformPhysicalPointToIndex(truth.mr_point([95, 78, 10])))
    assert at("bladder_center") > 2.5 * gluteus  # urine bright, muscle dark on T2
    shift = np.linalg.norm(truth.mr_point([0, 0, 30]) - np.array([0, 0, 1030]))
    assert shift <= 30.0 + 1e-6


def test_lesion_sites_and_organ_map(phantom):
    root, truth = phantom(**SMALL)
    img = nib.load(root / "truth" / "organs.nii.gz")
    data = np.asarray(img.dataobj)
    inv = np.linalg.inv(img.affine)
    names = {v: k for k, v in truth.organ_classes.items()}

    def label_at(p_lps):
        ras = np.array([-p_lps[0], -p_lps[1], p_lps[2], 1.0])
        i, j, k = np.rint(inv @ ras)[:3].astype(int)
        return names.get(int(data[i, j, k]))

    bones = [les for les in truth.lesions if les.site == "bone"]
    assert bones and all(label_at(les.center_lps_mm) == les.bone for les in bones)
    assert label_at(truth.landmarks["bladder_center"]["lps_mm"]) == "urinary_bladder"
    assert {"nodal", "local", "distant"} <= {les.region for les in truth.lesions}
    ci = [les for les in truth.lesions if les.site == "common_iliac"]
    assert ci and ci[0].mitnm == "miM1a"
    zab, zcib = truth.levels_z_mm["aortic_bifurcation"], truth.levels_z_mm["ci_bifurcation_left"]
    assert zcib < ci[0].center_lps_mm[2] < zab
    touching = [les for les in truth.lesions if les.touches_bladder]
    assert len(touching) == 1 and touching[0].region == "local"
    rs = pydicom.dcmread(root / "truth" / "planning_structures.dcm")
    assert {"Bladder", "Rectum", "Femur_Head_L", "Femur_Head_R", "ProstateBed"} <= {
        r.ROIName for r in rs.StructureSetROISequence}
    assert StudyTruth.load(root) == truth


def test_whole_body_reference_regions(phantom):
    root, truth = phantom(StudySpec(extent="whole_body", ct_matrix=128, ct_slice_mm=5.0, with_mr=False,
                                    pet_noise=0.0, lesions=(LesionSpec("liver", 15, 12.0),)))
    vol, z_pos, ds = _suv_volume(_series(root, "PT"))
    # DCFPyL SUVmean, Li et al. JNM 2017 (docs/detection.md#physiological-uptake-psma)
    expected = {"liver": 5.0, "spleen": 4.0}
    for name, value in expected.items():
        ref = truth.reference_regions[name]
        assert ref["suv_mean"] == value
        assert _max_near(vol, z_pos, ds, ref["center_lps_mm"], 8).mean() == pytest.approx(value, rel=0.03)
    assert {"aortic_blood_pool", "parotid", "l3_marrow"} <= set(truth.reference_regions)


@pytest.mark.parametrize("defect", ["no_radiopharmaceutical_sequence", "truncated_file", "missing_slice", "no_pet"])
def test_defects(phantom, defect):
    root, truth = phantom(**SMALL, defect=defect)
    readable, broken = [], 0
    for p in _files(root / "dicom"):
        try:
            ds = pydicom.dcmread(p)
            _ = ds.pixel_array  # decoding the pixels raises for a truncated file
            readable.append(ds)
        except Exception:
            broken += 1
    pet = [d for d in readable if d.Modality == "PT"]
    if defect == "no_pet":
        assert not pet and "PT" not in truth.series_dirs
        return
    assert broken == (1 if defect == "truncated_file" else 0)
    missing = pet[0].NumberOfSlices - len(pet)
    assert missing == (1 if defect in ("truncated_file", "missing_slice") else 0)
    has_seq = ["RadiopharmaceuticalInformationSequence" in d for d in pet]
    assert not any(has_seq) if defect == "no_radiopharmaceutical_sequence" else all(has_seq)


def test_flat_random_shuffled_layout_still_reads(phantom):
    root, truth = phantom(**SMALL, layout="flat", random_names=True, shuffle=True)
    files = _files(root / "dicom")
    assert all(p.parent == root / "dicom" and not p.suffix for p in files)
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(root / "dicom"))
    assert len(ids) == 2
    ct = [pydicom.dcmread(p, stop_before_pixels=True) for p in files]
    ct = [d for d in ct if d.Modality == "CT"]
    order = [d.InstanceNumber for d in ct]
    assert order != sorted(order)


def test_same_seed_same_bytes(phantom, tmp_path):
    from localize.sample_data import make_study

    spec = StudySpec(**SMALL, seed=7)
    root, _ = phantom(spec)
    make_study(tmp_path, spec)
    a, b = _files(root / "dicom"), _files(tmp_path / "dicom")
    assert [p.relative_to(root) for p in a] == [p.relative_to(tmp_path) for p in b]
    assert all(pa.read_bytes() == pb.read_bytes() for pa, pb in zip(a, b))
    other = StudySpec(**SMALL, seed=8)
    c = _files(phantom(other)[0] / "dicom")
    assert any(pa.read_bytes() != pc.read_bytes() for pa, pc in zip(a, c))


def test_nodes_lie_in_soft_tissue_clear_of_bone(phantom):
    """Every nodal lesion sphere of the phantom lies outside all bone classes of its own organ map."""
    import SimpleITK as sitk

    from localize.anatomy import read_label_map

    root, truth = phantom(status="post_radiotherapy", seed=7)
    image, names = read_label_map(root / "truth" / "organs.nii.gz", root / "truth" / "organs.json")
    labels = sitk.GetArrayViewFromImage(image)
    bone_values = [v for v, n in names.items()
                   if n.startswith(("hip_", "femur_", "vertebrae_", "rib_")) or n == "sacrum"]
    nodes = [t for t in truth.lesions
             if t.region == "nodal" or t.site in ("common_iliac", "retroperitoneal", "inguinal")]
    assert {t.site for t in nodes} >= {"obturator", "internal_iliac", "external_iliac"}
    for t in nodes:
        centre = np.asarray(t.center_lps_mm)
        offsets = np.array([(0, 0, 0)] + [tuple(s * d for d in axis) for axis in np.eye(3) for s in (-1, 1)])
        for point in centre + offsets * (t.diameter_mm / 2):
            index = image.TransformPhysicalPointToIndex(tuple(float(v) for v in point))
            assert labels[index[::-1]] not in bone_values, (t.site, point, names.get(int(labels[index[::-1]])))
