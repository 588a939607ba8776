"""A PET simulated on a real CT by its reference labels (TotalSegmentator's classes), with lesions put in it.

The uptake is placed by the labels, so what is measured is the toolkit on real organ shapes, sizes and
positions (as a PET simulated on real CT has them), not the labels' accuracy. Arrays are numpy z, y, x on
the PET grid; points are LPS mm.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from localize.anatomy.ct_heuristics import axis_mm
from localize.sample_data import dicom_writer as dw
from localize.sample_data import scanner
from localize.sample_data.imaging import UPTAKE
from localize.sample_data.study import PET_DAY

# PSMA-like SUVs [REC: DCFPyL liver ~5, spleen ~6, kidney ~20, urine ~40, small bowel ~4, blood pool ~1.8,
# muscle ~0.8, bone ~1, other soft tissue ~0.5 (docs/detection.md#physiological-uptake-psma)]
PSMA_SUV = {"liver": 5.0, "spleen": 6.0, "kidney_left": 20.0, "kidney_right": 20.0, "urinary_bladder": 40.0,
            "small_bowel": 4.0, "duodenum": 5.0, "colon": 1.5, "stomach": 1.5, "pancreas": 2.0, "aorta": 1.8,
            "inferior_vena_cava": 1.8, "autochthon_left": 0.8, "autochthon_right": 0.8, "prostate": 2.5}
BONES = ("vertebrae", "rib", "sacrum", "hip", "femur")
# TotalSegmentator class (by name prefix) -> the phantom's uptake class (``localize.sample_data.imaging.UPTAKE``)
UPTAKE_CLASS = {"liver": "liver", "spleen": "spleen", "kidney_left": "kidney", "kidney_right": "kidney",
                "urinary_bladder": "urine", "small_bowel": "small_bowel", "colon": "colon", "duodenum": "duodenum",
                "stomach": "stomach", "pancreas": "pancreas", "prostate": "prostate", "gallbladder": "bile",
                "aorta": "blood", "inferior_vena_cava": "blood", "portal_vein": "blood", "iliac_artery": "blood",
                "iliac_vena": "blood", "heart": "blood", "autochthon": "muscle", "iliopsoas": "muscle",
                "gluteus": "muscle", "lung": "lung", "brain": "brain"}
FWHM_MM = 6.0
NOISE = 0.15  # relative amplitude of the correlated noise
FAT_MAX_HU = -30.0  # unlabelled tissue below this is fat, above it muscle and other soft tissue


def label_names(path: Path) -> dict[str, int]:
    """Class name -> label value from a ``{value: name}`` JSON file."""
    return {name: int(value) for value, name in json.loads(path.read_text()).items()}


def pet_grid(ct: sitk.Image, spacing_mm: tuple[float, float, float]) -> sitk.Image:
    """An axis-aligned (identity direction) PET grid of ``spacing_mm`` (x, y, z) over the CT's extent, as a
    scanner reconstructs."""
    size = np.array(ct.GetSize()) - 1
    corners = np.array([ct.TransformContinuousIndexToPhysicalPoint([float(c) for c in size * np.array(bits)])
                        for bits in np.ndindex(2, 2, 2)])
    lo, hi = corners.min(0), corners.max(0)
    grid = sitk.Image([int(n) for n in np.floor((hi - lo) / spacing_mm) + 1], sitk.sitkFloat32)
    grid.SetSpacing(spacing_mm)
    grid.SetOrigin([float(v) for v in lo])
    return grid


def label_point(reference: np.ndarray, value: int, grid: sitk.Image, z_mm: float | None = None) -> np.ndarray:
    """LPS mm centre of a label, or of its section in the slice nearest ``z_mm``."""
    z, y, x = axis_mm(grid)
    points = np.argwhere(reference == value)
    if z_mm is not None:
        points = points[points[:, 0] == np.argmin(np.abs(z - z_mm))]
    return np.array([x[points[:, 2]].mean(), y[points[:, 1]].mean(), z[points[:, 0]].mean()])


def vertebral_body_centre(reference: np.ndarray, value: int, grid: sitk.Image) -> np.ndarray:
    """LPS mm centre of a labelled vertebra's body: its voxels within 15 mm of its own centre in x and in
    the front 25 mm of those (the labels hold the arch and processes too)."""
    z, y, x = axis_mm(grid)
    points = np.argwhere(reference == value)
    xs = x[points[:, 2]]
    points = points[np.abs(xs - xs.mean()) <= 15.0]
    ys = y[points[:, 1]]
    points = points[ys <= ys.min() + 25.0]
    return np.array([x[points[:, 2]].mean(), y[points[:, 1]].mean(), z[points[:, 0]].mean()])


def recurrence_sites(reference: np.ndarray, names: dict[str, int], grid: sitk.Image) -> dict[str, np.ndarray]:
    """Truth site -> LPS mm centre of a lesion where recurrences are looked for: beside the left external
    iliac artery (14 mm left of it, 165 mm up the table), beside the aorta at L2 (20 mm left of and 8 mm behind
    its centre at 340 mm, in the fat there: no organ's label within 8 mm), in the prostate, in the body of L3.
    Fitted to tests/data/totalsegmentator-abdomen's table positions."""
    return {"external_iliac": label_point(reference, names["iliac_artery_left"], grid, 165.0) + [14.0, 0, 0],
            "retroperitoneal": label_point(reference, names["aorta"], grid, 340.0) + [20.0, 8.0, 0],
            "prostate": label_point(reference, names["prostate"], grid),
            "bone": vertebral_body_centre(reference, names["vertebrae_L3"], grid)}


def tracer_uptake(names: dict[str, int], tracer: str) -> tuple[dict[str, float], dict[str, float]]:
    """(SUV per label name, SUV of "bone", "fat" and "muscle" for what no such label holds) of ``tracer``'s
    biodistribution (the phantom's ``UPTAKE`` table: dcfpyl, psma11, psma1007, fluciclovine)."""
    table = UPTAKE[tracer]
    by_label = {name: table[cls] for name in names for prefix, cls in UPTAKE_CLASS.items()
                if name.startswith(prefix)}
    return by_label, {"bone": table["marrow"], "fat": table["fat"], "muscle": table["muscle"]}


def simulated_pet(ct: sitk.Image, reference: np.ndarray, names: dict[str, int], grid: sitk.Image,
                  uptake: dict[str, float] = PSMA_SUV, seed: int = 0,
                  lesions: tuple[tuple[np.ndarray, float, float], ...] = (),
                  rest: dict[str, float] | None = None) -> sitk.Image:
    """SUV image on ``grid``: ``uptake`` by the labels ``reference`` (z, y, x on ``grid``), the rest by ``rest``
    ("bone" for bone labels, "fat" below ``FAT_MAX_HU`` and "muscle" above; default 1.0, 0.5, 0.5), air 0, plus
    ``lesions`` (centre LPS mm, diameter mm, SUV added); blurred to ``FWHM_MM``, with ``NOISE`` correlated noise."""
    rest = rest or {"bone": 1.0, "fat": 0.5, "muscle": 0.5}
    hu = sitk.GetArrayFromImage(sitk.Resample(ct, grid, sitk.Transform(), sitk.sitkLinear, -1000.0))
    suv = np.where(hu > -500, np.where(hu < FAT_MAX_HU, rest["fat"], rest["muscle"]), 0.0)
    suv[np.isin(reference, [v for n, v in names.items() if n.startswith(BONES)])] = rest["bone"]
    for name, value in uptake.items():
        if name in names:
            suv[reference == names[name]] = value
    z_mm, y_mm, x_mm = axis_mm(grid)
    for centre, diameter, added in lesions:
        inside = ((z_mm[:, None, None] - centre[2]) ** 2 + (y_mm[None, :, None] - centre[1]) ** 2
                  + (x_mm[None, None, :] - centre[0]) ** 2) <= (diameter / 2) ** 2
        suv[inside] += added
    spacing = np.array(grid.GetSpacing()[::-1])
    suv = ndimage.gaussian_filter(suv, FWHM_MM / 2.3548 / spacing)
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(suv.shape), 1.0) * 2.5
    pet = sitk.GetImageFromArray(np.maximum(suv * (1 + NOISE * noise), 0).astype(np.float32))
    pet.CopyInformation(grid)
    return pet


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def write_dicom_study(folder: Path, ct: sitk.Image, pet_suv: sitk.Image, tracer: str, weight_kg: float = 80.0,
                      body_part: str = "ABDOMENPELVIS") -> None:
    """Write ``ct`` (HU) and ``pet_suv`` (SUVbw) as one PET/CT study of DICOM files, as a scanner does: the CT in
    ``folder``/CT (HU + 1024 as unsigned 12-bit values, RescaleIntercept -1024; its own origin, direction and
    spacing), the PET in ``folder``/PET (Bq/mL with a slope per slice,
    decay corrected to the series start, ``tracer``'s radiopharmaceutical, dose and uptake time from
    ``localize.sample_data.scanner.PROTOCOLS``, the patient's weight), one frame of reference, the patient head
    first supine. ``body_part`` is the BodyPartExamined (PS3.16 Annex L), an unpaired one (no Laterality)."""
    protocol = scanner.PROTOCOLS[tracer]
    dose = scanner.dose_bq(tracer, weight_kg)
    start = dw.time_plus(PET_DAY, protocol.uptake_s)  # the phantom's injection time
    date, time = dw.dt(start)
    patient = {"PatientName": "RealCT^Simulated", "PatientID": "REALCT0001", "PatientBirthDate": "19550101",
               "PatientSex": "M", "PatientWeight": str(weight_kg)}
    study = {"StudyInstanceUID": dw.uid("realct", tracer, "study"), "StudyDate": date, "StudyTime": time,
             "StudyID": "1", "AccessionNumber": "R000001", "ReferringPhysicianName": "",
             "FrameOfReferenceUID": dw.uid("realct", tracer, "for"), "PositionReferenceIndicator": "",
             "BodyPartExamined": body_part, "Manufacturer": "SIEMENS"}

    def geometry(image: sitk.Image) -> dw.Geometry:
        return dw.Geometry(np.array(image.GetOrigin()), np.array(image.GetDirection()).reshape(3, 3),
                           tuple(image.GetSpacing()))

    hu = sitk.GetArrayFromImage(ct)
    ct_base = dw.base_dataset(patient, study, {
        "Modality": "CT", "SOPClassUID": dw.CT_STORAGE, "SeriesInstanceUID": dw.uid("realct", tracer, "ct"),
        "SeriesNumber": 2, "SeriesDate": date, "SeriesTime": time, "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"],
        "RescaleIntercept": "-1024", "RescaleSlope": "1", "RescaleType": "HU", "KVP": "120",
        "AcquisitionNumber": None,  # type 2 (PS3.3 C.8.2.1)
        "PatientPosition": "HFS"})  # the PET has codes instead (scanner.patient_orientation)
    dw.write_series(folder / "CT", ct_base, np.clip(np.rint(hu + 1024), 0, 4095).astype(np.uint16), geometry(ct),
                    [f"CT{k:04d}.dcm" for k in range(hu.shape[0])])
    stored, slopes = dw.pet_slice_scaling(sitk.GetArrayFromImage(pet_suv)
                                          * scanner.suv_to_bqml_factor(tracer, weight_kg, dose))
    pet_base = dw.base_dataset(patient, study, {
        "Modality": "PT", "SOPClassUID": dw.PET_STORAGE, "SeriesInstanceUID": dw.uid("realct", tracer, "pet"),
        "SeriesNumber": 3, "SeriesDate": date, "SeriesTime": time, "AcquisitionDate": date, "AcquisitionTime": time,
        "ImageType": ["ORIGINAL", "PRIMARY"], "Units": "BQML", "DecayCorrection": "START",
        "CorrectedImage": ["DECY", "ATTN"], "SeriesType": ["WHOLE BODY", "IMAGE"], "CountsSource": "EMISSION",
        "RescaleIntercept": "0", "NumberOfSlices": stored.shape[0],
        "CollimatorType": "NONE", **scanner.patient_orientation("HFS")})  # PS3.3 C.8.9.1, C.8.4.6
    pet_base.RadiopharmaceuticalInformationSequence = [scanner.radiopharmaceutical_item(tracer, PET_DAY, dose)]

    half_life = float(scanner.HALF_LIFE_S[protocol.nuclide])
    t_avg = scanner.t_avg_s(half_life, scanner.FRAME_S)  # one bed position for the whole field

    def per_slice(k, ds):
        ds.RescaleSlope = f"{slopes[k]:.8g}"
        ds.ImageIndex = k + 1
        ds.ActualFrameDuration = int(scanner.FRAME_S * 1000)
        ds.FrameReferenceTime = f"{t_avg * 1000:.1f}"
        ds.DecayFactor = f"{2 ** (t_avg / half_life):.6f}"

    dw.write_series(folder / "PET", pet_base, stored, geometry(pet_suv),
                    [f"PT{k:04d}.dcm" for k in range(stored.shape[0])], per_slice)

