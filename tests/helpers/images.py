"""Small images, label images, findings and RTSTRUCTs built in memory for the tests.

DICOM is built and written with ``localize.sample_data.dicom_writer``; these are the presets
several test modules share.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, RTStructureSetStorage, generate_uid

from localize.findings import Findings, Lesion
from localize.sample_data.dicom_writer import AXIAL, one_slice, save

HFS = AXIAL
FFS = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # feet first: row direction towards patient right, slices run caudal


def small_ct_slice(z_mm: float = 0.0, rows: int = 4, columns: int = 4, modality: str = "CT") -> Dataset:
    """A small, valid CT slice (uncompressed, 16-bit signed, values 0 .. rows*columns-1, intercept -1024)."""
    return one_slice(np.arange(rows * columns, dtype=np.int16).reshape(rows, columns), (0.0, 0.0, z_mm),
                     modality=modality, SOPClassUID=CTImageStorage, StudyInstanceUID="1.2.3.4",
                     SeriesInstanceUID="1.2.3.4.5", FrameOfReferenceUID="1.2.3.4.6", PatientID="LIMITS",
                     ImageOrientationPatient=[1, 0, 0, 0, 1, 0], PixelSpacing=[1.0, 1.0], SliceThickness=2.0,
                     RescaleSlope=1, RescaleIntercept=-1024)


def volume_series(folder: Path, *, shape_zyx, pixel_spacing=(1.0, 1.0), slice_step_mm=2.0, iop=HFS,
                  centre_lps_mm=(0.0, 0.0, 0.0), modality="CT", frame_uid=None, study_uid=None,
                  pixels_zyx=None, sop_class_uid=CTImageStorage):
    """Write an image series and return it as a Volume-like value.

    Slice k lies at ``IPP_k = IPP_0 + k·step·N`` (N = row × column direction), pixel
    (row r, column c) at ``IPP_k + c·Δc·X + r·Δr·Y`` (docs/coordinates.md#dicom-patient-coordinates), the grid centred
    on ``centre_lps_mm``. Returns image (float32, LPS), headers, sop_instance_uids,
    positions_lps_mm and paths, in k order.
    """
    nz, rows, cols = shape_zyx
    x_dir, y_dir = np.array(iop[:3]), np.array(iop[3:])
    normal = np.cross(x_dir, y_dir)
    dr, dc = pixel_spacing
    ipp0 = (np.asarray(centre_lps_mm) - (cols - 1) / 2 * dc * x_dir - (rows - 1) / 2 * dr * y_dir
            - (nz - 1) / 2 * slice_step_mm * normal)
    frame_uid = frame_uid or generate_uid()
    study_uid = study_uid or generate_uid()
    series_uid = generate_uid()
    if pixels_zyx is None:
        pixels_zyx = np.zeros(shape_zyx, dtype=np.int16)
    paths, headers = [], []
    for k in range(nz):
        ds = one_slice(
            np.asarray(pixels_zyx[k], dtype=np.int16), ipp0 + k * slice_step_mm * normal, modality=modality,
            orientation=iop, spacing_rc=(dr, dc), SOPClassUID=sop_class_uid,
            PatientName="Phantom^Exports", PatientID="EXP001", PatientBirthDate="", PatientSex="M",
            StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid, FrameOfReferenceUID=frame_uid,
            StudyDate="20240102", StudyTime="101500", StudyID="1", AccessionNumber="", ReferringPhysicianName="",
            SeriesNumber=2, InstanceNumber=k + 1, Manufacturer="pydicom",
            PatientPosition="FFS" if iop == FFS else "HFS",
            ImageOrientationPatient=list(iop), PixelSpacing=[dr, dc], SliceThickness=slice_step_mm,
            RescaleIntercept=0, RescaleSlope=1,
        )
        path = save(ds, folder / f"slice_{k:03d}.dcm")
        paths.append(path)
        headers.append(pydicom.dcmread(path, stop_before_pixels=True))
    image = sitk.GetImageFromArray(np.asarray(pixels_zyx, dtype=np.float32))
    image.SetSpacing((dc, dr, slice_step_mm))
    image.SetOrigin(tuple(ipp0))
    image.SetDirection(tuple(np.column_stack([x_dir, y_dir, normal]).ravel()))
    return SimpleNamespace(
        image=image, headers=headers, sop_instance_uids=[h.SOPInstanceUID for h in headers],
        positions_lps_mm=np.array([h.ImagePositionPatient for h in headers], dtype=float), paths=paths,
        resampled=False,
    )


def lesion_label_image(spacing_mm=(4.0, 4.0, 4.0), size=(40, 40, 30), origin=(-78.0, -78.0, -58.0)):
    """PET-grid label image (axial, LPS) with three lesions, drawn from analytic shapes.

    1: sphere r = 9 mm at (-30, -20, 0); 2: ring (torus-like, 24 mm across with an
    8 mm hole) at (25, 15, -10); 3: ellipsoid 12 x 8 x 6 mm semi-axes at (10, -35, 20).
    """
    image = sitk.Image(size, sitk.sitkUInt16)
    image.SetSpacing(spacing_mm)
    image.SetOrigin(origin)
    z, y, x = np.meshgrid(*[origin[i] + spacing_mm[i] * np.arange(size[i]) for i in (2, 1, 0)], indexing="ij")
    labels = np.zeros(z.shape, dtype=np.uint16)
    labels[(x + 30) ** 2 + (y + 20) ** 2 + z ** 2 <= 9 ** 2] = 1
    radial = np.hypot(x - 25, y - 15)
    labels[(radial >= 5) & (radial <= 13) & (np.abs(z + 10) <= 6)] = 2
    labels[((x - 10) / 12) ** 2 + ((y + 35) / 8) ** 2 + ((z - 20) / 6) ** 2 <= 1] = 3
    out = sitk.GetImageFromArray(labels)
    out.CopyInformation(image)
    return out


def findings_for(label_image: sitk.Image, regions=("nodal", "local", "distant")) -> Findings:
    """Findings whose lesions carry the labels of ``label_image``, targets at the label centroids."""
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(label_image)
    lesions = []
    for i, value in enumerate(sorted(stats.GetLabels()), start=1):
        c = stats.GetCentroid(value)
        lesions.append(Lesion(
            label=value, suv_max=20.0 - i, suv_peak=15.0 - i, suv_mean=8.0,
            volume_ml=stats.GetPhysicalSize(value) / 1000,
            total_uptake=8.0, max_diameter_mm=20.0, peak_lps_mm=c, centroid_lps_mm=c, target_lps_mm=c,
            n_voxels=stats.GetNumberOfPixels(value), id=i, region=regions[(i - 1) % 3], site="external_iliac",
        ))
    return Findings(study={"study_instance_uid": "1.2.3"}, frame_of_reference_uid="1.2.3.4",
                    tracer={"family": "psma"}, series={}, lesions=lesions)


def rtstruct_for(ref, names: list[object]) -> Dataset:
    """An RTSTRUCT with one square contour per ROI on the first slice of ``ref`` (a loaded Volume)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = RTStructureSetStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Modality = "RTSTRUCT"
    ds.StructureSetROISequence = Sequence()
    ds.ROIContourSequence = Sequence()
    for number, name in enumerate(names, start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = ref.headers[0].FrameOfReferenceUID
        if name is not None:
            roi.ROIName = name
        ds.StructureSetROISequence.append(roi)
        image = Dataset()
        image.ReferencedSOPInstanceUID = ref.sop_instance_uids[0]
        contour = Dataset()
        contour.ContourGeometricType = "CLOSED_PLANAR"
        contour.ContourImageSequence = Sequence([image])
        contour.ContourData = [0.5, 0.5, 0, 2.5, 0.5, 0, 2.5, 2.5, 0, 0.5, 2.5, 0]
        item = Dataset()
        item.ReferencedROINumber = number
        item.ContourSequence = Sequence([contour])
        ds.ROIContourSequence.append(item)
    return ds
