"""All exports of one synthetic whole-body study: RTSTRUCT, SEG, NIfTI label map, CSV, report.

Grid sizes of a typical whole-body PET/CT: CT 512 x 512 x 330 (0.98 x 0.98 x 3 mm),
PET 200 x 200 x 250 (4 x 4 x 4 mm), 15 lesions (spheres and a ring, 6-30 mm).
Target: all exports <= 10 s. Times are also given as a ratio to a baseline run in
the same process (nearest-neighbour resampling of the label image onto the whole
CT grid), so runs on different machines can be compared.

    python -m benchmarks exports     (from the repository root)
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from benchmarks.common import report
from localize.export.dicom_seg import write_seg
from localize.export.labelmap import write_labelmap
from localize.export.report import write_report
from localize.export.rtstruct import write_rtstruct
from localize.export.table import write_csv
from localize.findings import Findings, Lesion


def header_series(size_xyz, spacing_xyz, origin, modality, sop_class_uid, frame_uid, study_uid) -> SimpleNamespace:
    """Header-only axial series (what ``load_series`` returns) and its image."""
    image = sitk.Image(size_xyz, sitk.sitkFloat32)
    image.SetSpacing(spacing_xyz)
    image.SetOrigin(origin)
    series_uid = generate_uid()
    headers = []
    for k in range(size_xyz[2]):
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class_uid, generate_uid()
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Bench^WholeBody", "BENCH", "", "M"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.StudyDate, ds.StudyTime, ds.StudyID = "20240101", "", ""
        ds.AccessionNumber, ds.ReferringPhysicianName = "", ""
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = modality, 1, k + 1
        ds.ImagePositionPatient = [origin[0], origin[1], origin[2] + k * spacing_xyz[2]]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [spacing_xyz[1], spacing_xyz[0]]
        ds.SliceThickness = spacing_xyz[2]
        ds.Rows, ds.Columns = size_xyz[1], size_xyz[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        headers.append(ds)
    return SimpleNamespace(image=image, headers=headers, sop_instance_uids=[h.SOPInstanceUID for h in headers],
                           positions_lps_mm=np.array([h.ImagePositionPatient for h in headers], float), paths=[],
                           resampled=False)


def study(n_lesions: int = 15, seed: int = 7):
    rng = np.random.default_rng(seed)
    frame_uid, study_uid = generate_uid(), generate_uid()
    ct = header_series((512, 512, 330), (0.977, 0.977, 3.0), (-250.0, -250.0, -900.0), "CT",
                       "1.2.840.10008.5.1.4.1.1.2", frame_uid, study_uid)
    pet = header_series((200, 200, 250), (4.0, 4.0, 4.0), (-398.0, -398.0, -900.0), "PT",
                        "1.2.840.10008.5.1.4.1.1.128", frame_uid, study_uid)
    z, y, x = np.meshgrid(*[pet.image.GetOrigin()[i] + 4.0 * np.arange(pet.image.GetSize()[i]) for i in (2, 1, 0)],
                          indexing="ij")
    body = (x / 180) ** 2 + (y / 120) ** 2 <= 1
    suv = np.where(body, 1.0, 0.0).astype(np.float32)
    labels = np.zeros(suv.shape, np.uint16)
    lesions = []
    for label in range(1, n_lesions + 1):
        centre = (rng.uniform(-120, 120), rng.uniform(-80, 80), rng.uniform(-850, -50))
        radius = rng.uniform(3, 15)
        distance = np.sqrt((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2)
        inside = (distance <= max(radius, 4.0)) & ((distance >= radius / 2) if label % 5 == 0 else True)
        labels[inside] = label
        suv[inside] = 5 + label
        lesions.append(Lesion(label=label, suv_max=5.0 + label, suv_peak=4.0 + label, suv_mean=3.0 + label,
                              volume_ml=float(inside.sum()) * 0.064, total_uptake=1.0, max_diameter_mm=2 * radius,
                              peak_lps_mm=centre, centroid_lps_mm=centre, target_lps_mm=centre,
                              region=("local", "nodal", "distant")[label % 3], site="bone"))
    for i, lesion in enumerate(sorted(lesions, key=lambda lesion: -lesion.suv_max), start=1):
        lesion.id = i
    label_image = sitk.GetImageFromArray(labels)
    label_image.CopyInformation(pet.image)
    pet.image = sitk.GetImageFromArray(suv)
    pet.image.CopyInformation(label_image)
    ct.image = sitk.Cast(sitk.Resample(pet.image, ct.image) * 40 - 1000 * (1 - sitk.Resample(
        sitk.Cast(pet.image > 0.5, sitk.sitkFloat32), ct.image)), sitk.sitkFloat32)
    findings = Findings(study={"study_instance_uid": study_uid, "patient_id": "BENCH"},
                        frame_of_reference_uid=frame_uid,
                        tracer={"family": "psma"}, series={}, lesions=lesions,
                        staging={"summary": "miTr miN1 miM1b"})
    return findings, label_image, pet, ct


def main() -> None:
    findings, label_image, pet, ct = study()
    t0 = time.perf_counter()
    sitk.Resample(label_image, ct.image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt16)
    baseline = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as out:
        out = Path(out)
        steps = {
            "rtstruct": lambda: write_rtstruct(out / "rtstruct.dcm", findings, label_image, ct),
            "seg": lambda: write_seg(out / "lesions_seg.dcm", findings, label_image, pet),
            "labelmap": lambda: write_labelmap(out / "lesions.nii.gz", findings, label_image),
            "csv": lambda: write_csv(findings, out / "lesions.csv"),
            "report": lambda: write_report(out, findings, pet.image, ct.image),
        }
        total = 0.0
        print(f"baseline (label -> CT grid, nearest neighbour): {baseline:.3f} s")
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            elapsed = time.perf_counter() - t0
            total += elapsed
            print(f"{name:9s} {elapsed:7.3f} s   x{elapsed / baseline:6.1f} baseline")
        print(f"{'all':9s} {total:7.3f} s   x{total / baseline:6.1f} baseline   (target <= 10 s)")
    report("all exports", total, "s", target=10.0, baseline=baseline)


if __name__ == "__main__":
    main()
