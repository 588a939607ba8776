"""``make_study``: build one phantom PET/CT (+ MR) study as DICOM, with its ground truth beside it."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from localize.sample_data import anatomy as an
from localize.sample_data import dicom_writer as dw
from localize.sample_data import scanner
from localize.sample_data.geometry import Grid, paint
from localize.sample_data.imaging import (
    UPTAKE,
    LesionVoxels,
    add_pet_noise,
    ct_hu,
    mr_t2,
    paint_lesions,
    pet_suv,
    suv_table,
)
from localize.sample_data.lesions import LABELS, Placement, place
from localize.sample_data.rtstruct import write_rtstruct
from localize.sample_data.spec import StudySpec, VariedSpec
from localize.sample_data.truth import LesionTruth, StudyTruth

FOV_MM = 500.0
Z_RANGE_MM = {"whole_body": (-260.0, an.Z_SKULL_BASE), "pelvis": (-110.0, 200.0)}
WEIGHT_KG, HEIGHT_M = 82.0, 1.78
PET_DAY = datetime(2024, 3, 15, 10, 2, 0)  # injection
MR_DAY = datetime(2024, 3, 4, 14, 30, 0)
MR_SIZE, MR_SPACING = (320, 320, 40), (1.125, 1.125, 4.0)
PELVIS_CENTER = np.array([0.0, 0.0, 30.0])
# BodyPartExamined of the PET/CT by extent (PS3.3 C.7.3.1, defined terms of PS3.16 Annex L): unpaired, so the
# series has no Laterality (type 2C)
BODY_PART = {"pelvis": "PELVIS", "abdomen_pelvis": "ABDOMENPELVIS", "whole_body": "WHOLEBODY",
             "vertex_to_toes": "WHOLEBODY"}

LANDMARKS = {"femoral_head_center_left": (90, 0, 15), "femoral_head_center_right": (-90, 0, 15),
             "symphysis_top": (0, -60, 0), "symphysis_bottom": (0, -60, -38), "bladder_center": (0, -30, 40),
             "bladder_base": (0, -30, 5), "vesicourethral_anastomosis": an.VUA,
             "ci_bifurcation_left": (40, 15, an.Z_CI_BIFURCATION),
             "ci_bifurcation_right": (-40, 15, an.Z_CI_BIFURCATION),
             "aortic_bifurcation": (8, 8, an.Z_AORTIC_BIFURCATION), "s1_center": (0, an.sacrum_center_y(135), 135),
             "sacrum_tip": (0, an.sacrum_center_y(5), 5), "l5_center": an.vertebra_center("vertebrae_L5"),
             "greater_trochanter_left": (125, 15, -15), "greater_trochanter_right": (-125, 15, -15),
             "ischial_tuberosity_left": (60, 22, -52), "ischial_tuberosity_right": (-60, 22, -52),
             "pubic_tubercle_left": (16, -55, 0), "pubic_tubercle_right": (-16, -55, 0),
             "acetabular_roof_left": (90, 0, 47), "acetabular_roof_right": (-90, 0, 47),
             "rectum_center": (0, 52, 0), "femoral_artery_left": (90, -35, -100),
             "femoral_artery_right": (-90, -35, -100), "femoral_neck_left": (105, 5, 0),
             "femoral_neck_right": (-105, 5, 0), "internal_iliac_end_left": (52, 58, 60),
             "internal_iliac_end_right": (-52, 58, 60), "ureterovesical_junction_left": (25, -10, 35),
             "ureterovesical_junction_right": (-25, -10, 35), "external_iliac_at_ligament_left": (78, -30, 5),
             "external_iliac_at_ligament_right": (-78, -30, 5), "sacrum_s3": (0, an.sacrum_center_y(70), 70)}


def _grids(spec: StudySpec) -> tuple[Grid, Grid]:
    z0, z1 = Z_RANGE_MM[spec.extent]
    px = FOV_MM / spec.ct_matrix
    nz = int(round((z1 - z0) / spec.ct_slice_mm)) + 1
    ct = Grid((-FOV_MM / 2 + px / 2, -FOV_MM / 2 + px / 2, z0), (px, px, spec.ct_slice_mm),
              (spec.ct_matrix, spec.ct_matrix, nz))
    n = int(round(FOV_MM / spec.pet_voxel_mm))
    pp = FOV_MM / n
    nzp = int(np.ceil((z1 - z0) / spec.pet_voxel_mm))
    pet = Grid((-FOV_MM / 2 + pp / 2, -FOV_MM / 2 + pp / 2, z0 + spec.pet_voxel_mm / 2), (pp, pp, spec.pet_voxel_mm),
               (n, n, nzp))
    return ct, pet


def _sitk(arr: np.ndarray, grid: Grid) -> sitk.Image:
    img = sitk.GetImageFromArray(arr)
    img.SetOrigin(grid.origin_mm)
    img.SetSpacing(grid.spacing_mm)
    return img


def _mr_transform(rng: np.random.Generator, centre: np.ndarray, offset_mm) -> np.ndarray:
    """4x4 CT->MR rigid map: rotation <= 10 deg about ``centre`` (the pelvis), shift <= 30 mm, plus the frame offset."""
    axis = rng.normal(size=3)
    rot = Rotation.from_rotvec(axis / np.linalg.norm(axis) * np.deg2rad(rng.uniform(4, 10))).as_matrix()
    shift = rng.normal(size=3)
    shift *= rng.uniform(10, 30) / np.linalg.norm(shift)
    m = np.eye(4)
    m[:3, :3] = rot
    m[:3, 3] = centre - rot @ centre + shift + np.asarray(offset_mm)
    return m


def _names(prefix: str, n: int, plan: Plan) -> list[str]:
    names = [f"{plan.rng.bytes(8).hex()}" if plan.random_names else f"{prefix}_{k + 1:04d}.dcm" for k in range(n)]
    if plan.shuffle:
        names = [names[i] for i in plan.rng.permutation(n)]
    return names


@dataclass
class Plan:
    """One study ready to be written. Images and points are in the patient's frame; ``offset_mm`` carries them into
    the scanner's (DICOM) frame, where the table put him. ``lesions``: (name, site, placement, voxels)."""

    key: str
    seed: int
    tracer: str
    vendor: str
    status: str
    extent: str
    patient_position: str
    weight_kg: float
    height_m: float
    ct_grid: Grid
    pet_grid: Grid
    labels: np.ndarray
    marrow: np.ndarray
    lesion_ids: np.ndarray
    hu: np.ndarray
    suv_nf: np.ndarray
    suv: np.ndarray
    lesions: list[tuple[str, str, Placement, LesionVoxels]]
    landmarks: dict[str, tuple]
    reference_regions: dict[str, tuple[tuple, float]]
    levels_z_mm: dict[str, float]
    target_mask: np.ndarray  # the prostate bed or prostate, for the planning structures
    femoral_head_z_mm: float  # femora above this level are femoral heads (planning structures)
    rng: np.random.Generator
    offset_mm: np.ndarray = field(default_factory=lambda: np.zeros(3))
    organ_classes: dict[str, int] = field(default_factory=lambda: an.organ_classes(varied=False))
    ct_description: str = "CT WB 3.0 attenuation/localisation"
    with_mr: bool = False
    mr_offset_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    mr_oblique: bool = False
    layout: str = "nested"
    random_names: bool = False
    shuffle: bool = False
    defect: str | None = None
    non_lesions: list[dict] = field(default_factory=list)
    variation: dict | None = None

    def scanner_grid(self, grid: Grid) -> Grid:
        """``grid`` moved into the scanner's frame."""
        return Grid(tuple(float(o + d) for o, d in zip(grid.origin_mm, self.offset_mm)) if self.offset_mm.any()
                    else grid.origin_mm, grid.spacing_mm, grid.size_xyz)

    def scanner_point(self, p) -> tuple[float, ...]:
        return tuple(float(v) for v in np.asarray(p, float) + self.offset_mm)


def _standard_plan(spec: StudySpec) -> Plan:
    """The standard man (the demo study and its variants) as ``spec`` asks for him."""
    rng = np.random.default_rng(spec.seed)
    ct_grid, pet_grid = _grids(spec)
    z_lo, z_hi = ct_grid.origin_mm[2], ct_grid.axis_mm(2)[-1]

    placed = []
    for les in spec.lesion_specs():
        p = place(les, rng)
        if z_lo + les.diameter_mm <= p.center_mm[2] <= z_hi - les.diameter_mm:
            placed.append((les, p))
    kinds = [("bone" if les.site.startswith("bone") else les.site) for les, _ in placed]

    labels, marrow = an.label_map(ct_grid, spec.status)
    suv_nf, rendered = pet_suv(pet_grid, spec.pet_fwhm_mm, [(p.center_mm, les.diameter_mm, les.suv_max)
                                                             for les, p in placed],
                               lambda grid: an.label_map(grid, spec.status), suv_table(spec.tracer),
                               UPTAKE[spec.tracer]["marrow"])
    lesion_vox = [LesionVoxels(c, d, inc, k) for (c, d, inc), k in zip(rendered, kinds)]
    lesion_ids = paint_lesions(ct_grid, lesion_vox)
    hu = ct_hu(labels, marrow, lesion_ids, lesion_vox, rng)
    suv = add_pet_noise(suv_nf, spec.pet_noise, rng)
    target = np.zeros(labels.shape, bool)
    paint(target, an.PROSTATE_BED if spec.status == "post_prostatectomy" else an.PROSTATE, ct_grid, True)
    uptake = UPTAKE[spec.tracer]
    refs = {"liver": ((-95, 10, 345), uptake["liver"]), "aortic_blood_pool": ((28, 34, 430), uptake["blood"]),
            "parotid": ((50, 20, 695), uptake["parotid"]), "spleen": ((95, 45, 375), uptake["spleen"]),
            "l3_marrow": (an.vertebra_center("vertebrae_L3"), uptake["marrow"])}
    levels = {"aortic_bifurcation": an.Z_AORTIC_BIFURCATION, "ci_bifurcation_left": an.Z_CI_BIFURCATION,
              "ci_bifurcation_right": an.Z_CI_BIFURCATION, "pelvic_inlet": an.Z_PELVIC_INLET,
              "symphysis_top": 0.0, "diaphragm": an.Z_DIAPHRAGM}
    lesions = [(f"L{i + 1:02d}_{les.site}", les.site, p, vox)
               for i, ((les, p), vox) in enumerate(zip(placed, lesion_vox))]
    return Plan(key=spec.key(), seed=spec.seed, tracer=spec.tracer, vendor=spec.vendor, status=spec.status,
                extent=spec.extent, patient_position=spec.patient_position, weight_kg=WEIGHT_KG, height_m=HEIGHT_M,
                ct_grid=ct_grid, pet_grid=pet_grid, labels=labels, marrow=marrow, lesion_ids=lesion_ids, hu=hu,
                suv_nf=suv_nf, suv=suv, lesions=lesions, landmarks=dict(LANDMARKS), reference_regions=refs,
                levels_z_mm=levels, target_mask=target, femoral_head_z_mm=-24.0, rng=rng, with_mr=spec.with_mr,
                mr_offset_mm=spec.mr_offset_mm, mr_oblique=spec.mr_oblique, layout=spec.layout,
                random_names=spec.random_names, shuffle=spec.shuffle, defect=spec.defect)


def make_study(out_root: Path, spec: StudySpec | VariedSpec | None = None) -> StudyTruth:
    """Write the study's DICOM under ``out_root/dicom`` and its truth under ``out_root/truth``; return the truth.

    A ``StudySpec`` gives the standard man (the demo study by default), a ``VariedSpec`` a man drawn from its seed.
    """
    spec = StudySpec() if spec is None else spec
    out_root = Path(out_root)
    for sub in ("dicom", "truth"):
        shutil.rmtree(out_root / sub, ignore_errors=True)
    if isinstance(spec, VariedSpec):
        from localize.sample_data.varied import varied_plan

        plan = varied_plan(spec)
    else:
        plan = _standard_plan(spec)
    return _write(out_root, plan)


def _write(out_root: Path, plan: Plan) -> StudyTruth:
    """Write a planned study as DICOM (as scanners do) and its truth."""
    rng = plan.rng
    ct_grid, pet_grid = plan.scanner_grid(plan.ct_grid), plan.scanner_grid(plan.pet_grid)
    z_lo, z_hi = ct_grid.origin_mm[2], ct_grid.axis_mm(2)[-1]
    pelvis = PELVIS_CENTER + plan.offset_mm
    ct_to_mr = _mr_transform(rng, pelvis, plan.mr_offset_mm) if plan.with_mr else None
    mr_to_ct = np.linalg.inv(ct_to_mr) if plan.with_mr else None

    # --- DICOM -------------------------------------------------------------------------------------
    manufacturer, model = dw.MANUFACTURER[plan.vendor]
    protocol = scanner.PROTOCOLS[plan.tracer]
    dose = scanner.dose_bq(plan.tracer, plan.weight_kg)
    pet_start = dw.time_plus(PET_DAY, protocol.uptake_s)
    ct_time = dw.time_plus(PET_DAY, -120 if protocol.caudocranial else protocol.uptake_s - 150)
    key = plan.key
    patient = {"PatientName": "Phantom^Prostate", "PatientID": f"PHANTOM{plan.seed:04d}",
               "PatientBirthDate": "19550101", "PatientSex": "M", "PatientAge": "069Y",
               "PatientWeight": str(round(plan.weight_kg, 1)), "PatientSize": str(round(plan.height_m, 2))}
    study_date, study_time = dw.dt(ct_time)
    petct_study = {"StudyInstanceUID": dw.uid(key, "study"), "StudyDate": study_date, "StudyTime": study_time,
                   "StudyID": "1", "AccessionNumber": f"A{plan.seed:06d}", "ReferringPhysicianName": "",
                   "StudyDescription": f"PET/CT {protocol.text} restaging",
                   "FrameOfReferenceUID": dw.uid(key, "for"), "PositionReferenceIndicator": "",
                   "BodyPartExamined": BODY_PART[plan.extent], "Manufacturer": manufacturer,
                   "ManufacturerModelName": model}
    dicom = out_root / "dicom"
    nested = plan.layout == "nested"
    ct_dir = dicom / "PETCT" / "CT" if nested else dicom
    pet_dir = dicom / "PETCT" / "PET" if nested else dicom
    mr_dir = dicom / "MR_PELVIS" / "T2_TSE" if nested else dicom

    def geom(grid: Grid, direction=None, origin=None) -> dw.Geometry:
        direction = np.eye(3) if direction is None else direction
        g = dw.Geometry(np.asarray(grid.origin_mm if origin is None else origin, float), direction, grid.spacing_mm)
        return g.feet_first(grid.size_xyz[0]) if plan.patient_position == "FFS" else g

    flip = (lambda a: a[:, :, ::-1]) if plan.patient_position == "FFS" else (lambda a: a)
    ct_series = {"Modality": "CT", "SOPClassUID": dw.CT_STORAGE, "SeriesInstanceUID": dw.uid(key, "ct"),
                 "SeriesNumber": 2, "SeriesDescription": plan.ct_description,
                 "SeriesDate": study_date, "SeriesTime": study_time, "AcquisitionDate": study_date,
                 "AcquisitionTime": study_time, "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"],
                 "RescaleIntercept": "-1024", "RescaleSlope": "1", "RescaleType": "HU", "KVP": "120",
                 "WindowCenter": "40", "WindowWidth": "400", "AcquisitionNumber": None,  # type 2 (PS3.3 C.8.2.1)
                 "PatientPosition": plan.patient_position}  # the PET has codes instead (scanner.patient_orientation)
    ct_base = dw.base_dataset(patient, petct_study, ct_series)
    ct_stored = flip(np.clip(np.rint(plan.hu + 1024), 0, 4095).astype(np.uint16))
    nz_ct = ct_grid.size_xyz[2]
    dw.write_series(ct_dir, ct_base, ct_stored, geom(ct_grid), _names("CT", nz_ct, plan))
    del ct_stored

    if plan.defect != "no_pet":
        _write_pet(plan, pet_dir, pet_grid, geom(pet_grid), flip, patient, petct_study, dose, pet_start)

    mr_center_mr = None
    if plan.with_mr:
        d = Rotation.from_euler("x", 15, degrees=True).as_matrix() if plan.mr_oblique else np.eye(3)
        mr_center_mr = ct_to_mr[:3, :3] @ pelvis + ct_to_mr[:3, 3]
        extent = np.asarray(MR_SPACING) * (np.asarray(MR_SIZE) - 1)
        origin = mr_center_mr - d @ (extent / 2)
        ref = sitk.Image(MR_SIZE, sitk.sitkUInt8)
        ref.SetOrigin(tuple(origin)), ref.SetSpacing(MR_SPACING), ref.SetDirection(tuple(d.ravel()))
        tx = sitk.AffineTransform(3)
        tx.SetMatrix(tuple(mr_to_ct[:3, :3].ravel())), tx.SetTranslation(tuple(mr_to_ct[:3, 3]))
        mr = mr_t2(_sitk(plan.labels, ct_grid), _sitk(plan.marrow.astype(np.uint8), ct_grid),
                   _sitk(plan.lesion_ids, ct_grid), tx, ref, rng)
        mr_date, mr_time = dw.dt(MR_DAY)
        mr_study = {"StudyInstanceUID": dw.uid(key, "mr-study"), "StudyDate": mr_date, "StudyTime": mr_time,
                    "StudyID": "2", "AccessionNumber": f"B{plan.seed:06d}", "ReferringPhysicianName": "",
                    "StudyDescription": "MR pelvis", "FrameOfReferenceUID": dw.uid(key, "mr-for"),
                    "PositionReferenceIndicator": "", "PatientPosition": "HFS", "Manufacturer": manufacturer,
                    "ManufacturerModelName": "MR 3T"}
        mr_series = {"Modality": "MR", "SOPClassUID": dw.MR_STORAGE, "SeriesInstanceUID": dw.uid(key, "mr"),
                     "SeriesNumber": 5, "SeriesDescription": "T2 TSE axial pelvis", "SeriesDate": mr_date,
                     "SeriesTime": mr_time, "ImageType": ["ORIGINAL", "PRIMARY", "M", "ND"],
                     "ScanningSequence": "SE", "SequenceVariant": "SK", "MRAcquisitionType": "2D",
                     "RepetitionTime": "4500", "EchoTime": "100", "MagneticFieldStrength": "3",
                     "BodyPartExamined": "PELVIS",
                     "ScanOptions": None, "EchoTrainLength": None}  # type 2, empty (PS3.3 C.8.3.1)
        mr_geom = dw.Geometry(origin, d, MR_SPACING)
        dw.write_series(mr_dir, dw.base_dataset(patient, mr_study, mr_series), mr, mr_geom,
                        _names("MR", MR_SIZE[2], plan))

    # --- truth -------------------------------------------------------------------------------------
    truth_dir = out_root / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    _write_organ_map(truth_dir, plan.labels, ct_grid, plan.organ_classes)
    write_rtstruct(truth_dir / "planning_structures.dcm", _planning_structures(plan), ct_grid, ct_base, ct_time)

    def to_mr(p):
        if ct_to_mr is None:
            return None
        q = ct_to_mr[:3, :3] @ np.asarray(p, float) + ct_to_mr[:3, 3]
        local = d.T @ (q - origin) / MR_SPACING
        inside = np.all(local >= -0.5) and np.all(local <= np.asarray(MR_SIZE) - 0.5)
        return tuple(float(v) for v in q) if inside else None

    lesions = []
    for name, site, p, vox in plan.lesions:
        region, label, mitnm = LABELS[site]
        centre = plan.scanner_point(p.center_mm)
        lesions.append(LesionTruth(name, region, label, mitnm, p.laterality, p.bone, centre, to_mr(centre),
                                   _true_suv_max(plan.suv_nf, plan.pet_grid, vox), vox.diameter_mm, p.touches_bladder,
                                   _true_suv_max(plan.suv, plan.pet_grid, vox)))
    series_dirs = {"CT": str(ct_dir.relative_to(out_root)), "MR": str(mr_dir.relative_to(out_root))
                   if plan.with_mr else None}
    if plan.defect != "no_pet":
        series_dirs["PT"] = str(pet_dir.relative_to(out_root))
    landmarks = {n: plan.scanner_point(p) for n, p in plan.landmarks.items()}
    non_lesions = [{**item, "center_lps_mm": list(plan.scanner_point(item["center_lps_mm"]))}
                   for item in plan.non_lesions]
    truth = StudyTruth(
        tracer=plan.tracer, vendor=plan.vendor, status=plan.status,
        patient={"weight_kg": plan.weight_kg, "height_m": plan.height_m, "sex": "M", "dose_bq": dose,
                 "injection": PET_DAY.isoformat(), "pet_start": pet_start.isoformat(),
                 "ct_time": ct_time.isoformat(), "mr_time": MR_DAY.isoformat() if plan.with_mr else None,
                 "patient_position": plan.patient_position},
        lesions=lesions,
        mr_to_ct=mr_to_ct.tolist() if plan.with_mr else None, ct_to_mr=ct_to_mr.tolist() if plan.with_mr else None,
        landmarks={n: {"lps_mm": [float(v) for v in p], "mr_lps_mm": to_mr(p)} for n, p in landmarks.items()
                   if z_lo <= p[2] <= z_hi},
        reference_regions={n: {"suv_mean": float(v), "center_lps_mm": list(plan.scanner_point(p))}
                           for n, (p, v) in plan.reference_regions.items()
                           if z_lo + 15 <= plan.scanner_point(p)[2] <= z_hi - 15},
        levels_z_mm={n: float(z + plan.offset_mm[2]) for n, z in plan.levels_z_mm.items()},
        series_dirs=series_dirs, organ_classes=plan.organ_classes,
        extent=plan.extent, table_origin_lps_mm=[float(v) for v in plan.offset_mm], non_lesions=non_lesions,
        variation=plan.variation)
    truth.save(out_root)
    return truth


def _true_suv_max(suv: np.ndarray, grid: Grid, les: LesionVoxels) -> float:
    """Max of the PET ``suv`` (noise-free, or as written) over voxels whose centres lie within the lesion (at least
    one voxel)."""
    r = max(les.diameter_mm / 2, max(grid.spacing_mm) * 0.87)
    z, y, x = (grid.axis_mm(a) for a in (2, 1, 0))
    c = les.center_mm
    inside = ((z[:, None, None] - c[2]) ** 2 + (y[None, :, None] - c[1]) ** 2
              + (x[None, None, :] - c[0]) ** 2) <= r**2
    return float(suv[inside].max())


def _write_pet(plan, folder, grid, geometry, flip, patient, study, dose, start) -> None:
    """PET as a scanner writes it: BQML (Philips: CNTS + private factors), START decay correction, per-slice slope."""
    protocol = scanner.PROTOCOLS[plan.tracer]
    key = plan.key
    factor = scanner.suv_to_bqml_factor(plan.tracer, plan.weight_kg, dose)
    values = plan.suv * factor
    if plan.vendor == "philips":
        values = values / scanner.PHILIPS_ACTIVITY_FACTOR
    stored, slopes = dw.pet_slice_scaling(flip(values))
    half_life = float(scanner.HALF_LIFE_S[protocol.nuclide])
    t_avg = scanner.t_avg_s(half_life, scanner.FRAME_S)
    z = grid.axis_mm(2)
    beds = scanner.bed_start_s(z, z[0], z[-1], protocol.caudocranial)
    series_time = dw.time_plus(start, scanner.GE_SERIES_DELAY_S) if plan.vendor == "ge" else start
    sdate, stime = dw.dt(series_time)
    series = {"Modality": "PT", "SOPClassUID": dw.PET_STORAGE, "SeriesInstanceUID": dw.uid(key, "pet"),
              "SeriesNumber": 3, "SeriesDescription": f"PET WB {protocol.text} AC",
              "SeriesDate": sdate, "SeriesTime": stime, "ImageType": ["ORIGINAL", "PRIMARY"],
              "Units": "CNTS" if plan.vendor == "philips" else "BQML", "DecayCorrection": "START",
              "CorrectedImage": ["DECY", "ATTN", "SCAT", "DTIM", "RAN", "NORM"], "SeriesType": ["WHOLE BODY", "IMAGE"],
              "CountsSource": "EMISSION", "RandomsCorrectionMethod": "DLYD", "AttenuationCorrectionMethod": "CT",
              "ReconstructionMethod": "OSEM 3i21s PSF", "NumberOfSlices": grid.size_xyz[2],
              "RescaleIntercept": "0", "SliceSensitivityFactor": "1",
              "CollimatorType": "NONE",  # no septa: 3D scanners (PS3.3 C.8.9.1)
              **scanner.patient_orientation(plan.patient_position)}
    base = dw.base_dataset(patient, study, series)
    if plan.defect != "no_radiopharmaceutical_sequence":
        base.RadiopharmaceuticalInformationSequence = [scanner.radiopharmaceutical_item(plan.tracer, PET_DAY, dose)]
    if plan.vendor == "ge":
        base.private_block(0x0009, "GEMS_PETD_01", create=True).add_new(0x0D, "DT", start.strftime("%Y%m%d%H%M%S.00"))
    suv_per_stored = 1.0 / factor * (scanner.PHILIPS_ACTIVITY_FACTOR if plan.vendor == "philips" else 1.0)

    def per_slice(k, ds):
        acq = dw.time_plus(start, beds[k])
        ds.AcquisitionDate, ds.AcquisitionTime = dw.dt(acq)
        ds.RescaleSlope = f"{slopes[k]:.8g}"
        ds.ImageIndex = k + 1
        ds.FrameReferenceTime = f"{(beds[k] + t_avg) * 1000:.1f}"
        ds.ActualFrameDuration = int(scanner.FRAME_S * 1000)
        ds.DecayFactor = f"{2 ** ((beds[k] + t_avg) / half_life):.6f}"
        if plan.vendor == "philips":
            block = ds.private_block(0x7053, "Philips PET Private Group", create=True)
            block.add_new(0x00, "DS", f"{suv_per_stored:.8g}")
            block.add_new(0x09, "DS", f"{scanner.PHILIPS_ACTIVITY_FACTOR:.8g}")

    n = grid.size_xyz[2]
    skip = {n // 2} if plan.defect == "missing_slice" else set()
    paths = dw.write_series(folder, base, stored, geometry, _names("PT", n, plan), per_slice, skip)
    if plan.defect == "truncated_file":
        victim = sorted(paths)[len(paths) // 2]
        data = victim.read_bytes()
        victim.write_bytes(data[:1024])  # cut inside the header, as an interrupted copy leaves it


def _write_organ_map(truth_dir: Path, labels: np.ndarray, grid: Grid, classes: dict[str, int]) -> None:
    """TotalSegmentator-style multilabel NIfTI on the CT grid and its class names (organs.json)."""
    lut = np.array([classes.get(t.totalseg, 0) for t in an.TISSUES], np.uint8)
    sitk.WriteImage(_sitk(lut[labels], grid), str(truth_dir / "organs.nii.gz"), useCompression=True)
    (truth_dir / "organs.json").write_text(json.dumps({str(i): n for n, i in classes.items()}, indent=1))


def _planning_structures(plan: Plan) -> dict[str, np.ndarray]:
    """TG-263-named planning structures as masks on the CT grid (empty ones left out)."""
    labels, L = plan.labels, an.LABEL
    z = plan.ct_grid.axis_mm(2)[:, None, None]
    head = z >= plan.femoral_head_z_mm
    s = {"Bladder": labels == L["urinary_bladder"], "Rectum": labels == L["rectum"],
         "Femur_Head_L": (labels == L["femur_left"]) & head, "Femur_Head_R": (labels == L["femur_right"]) & head,
         ("ProstateBed" if plan.status == "post_prostatectomy" else "Prostate"): plan.target_mask,
         "Bowel": np.isin(labels, [i for i, t in enumerate(an.TISSUES) if t.totalseg in ("small_bowel", "colon")
                                   and t.name != "rectum"]),
         "Kidney_L": labels == L["kidney_left"], "Kidney_R": labels == L["kidney_right"], "Liver": labels == L["liver"]}
    return {name: m for name, m in s.items() if m.any()}
