"""An RTSTRUCT of planning structures (TG-263 names) drawn on the phantom CT, written with pydicom."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from skimage.measure import approximate_polygon, find_contours

from localize.sample_data.dicom_writer import CT_STORAGE, RTSTRUCT_STORAGE, dt, save, uid
from localize.sample_data.geometry import Grid

_COLORS = [[255, 255, 0], [139, 69, 19], [0, 255, 255], [0, 200, 200], [255, 0, 0], [255, 165, 0],
           [0, 0, 255], [0, 0, 200], [160, 82, 45], [128, 0, 128]]


_CONTOUR_DATA = Tag(0x3006, 0x0050)


def _slice_contours(mask2d: np.ndarray, grid: Grid, z_mm: float) -> list[np.ndarray]:
    """Closed contours (N x 3 LPS mm) around one axial mask slice on ``grid``, simplified to 0.3 voxel."""
    out = []
    for c in find_contours(np.pad(mask2d, 1).astype(np.float32), 0.5):
        c = approximate_polygon(c, tolerance=0.3)
        if len(c) < 4:
            continue
        rows, cols = c[:-1, 0] - 1, c[:-1, 1] - 1
        x = grid.origin_mm[0] + cols * grid.spacing_mm[0]
        y = grid.origin_mm[1] + rows * grid.spacing_mm[1]
        pts = np.column_stack([x, y, np.full_like(x, z_mm)])
        out.append(pts)
    return out


def write_rtstruct(path: Path, structures: dict[str, np.ndarray], grid: Grid, ct_base: Dataset,
                   when: datetime) -> None:
    """Write ``structures`` (TG-263 name -> z, y, x mask on CT ``grid``) referencing the CT series in ``ct_base``."""
    ds = Dataset()
    for key in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName", "FrameOfReferenceUID",
                "PositionReferenceIndicator"):
        setattr(ds, key, getattr(ct_base, key))
    ds.SOPClassUID = RTSTRUCT_STORAGE
    ds.SeriesInstanceUID = uid(ct_base.SeriesInstanceUID, "rtstruct")
    ds.SOPInstanceUID = uid(ds.SeriesInstanceUID, 0)
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "RTSTRUCT", 90, 1
    ds.Manufacturer, ds.SeriesDescription = "localize phantom", "Planning structures"
    ds.OperatorsName = ""  # type 2 (RT Series, PS3.3 C.8.8.1)
    ds.StructureSetLabel, ds.StructureSetName = "PLANNING", "Planning structures"
    ds.StructureSetDate, ds.StructureSetTime = dt(when)
    ds.SeriesDate, ds.SeriesTime = ds.StructureSetDate, ds.StructureSetTime
    nz = grid.size_xyz[2]
    z_mm = grid.axis_mm(2)
    ct_uids = [uid(ct_base.SeriesInstanceUID, k) for k in range(nz)]

    def image_ref(k):
        item = Dataset()
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = CT_STORAGE, ct_uids[k]
        return item

    series_ref = Dataset()
    series_ref.SeriesInstanceUID = ct_base.SeriesInstanceUID
    series_ref.ContourImageSequence = Sequence([image_ref(k) for k in range(nz)])
    study_ref = Dataset()
    study_ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study_ref.ReferencedSOPInstanceUID = ct_base.StudyInstanceUID
    study_ref.RTReferencedSeriesSequence = Sequence([series_ref])
    for_ref = Dataset()
    for_ref.FrameOfReferenceUID = ct_base.FrameOfReferenceUID
    for_ref.RTReferencedStudySequence = Sequence([study_ref])
    ds.ReferencedFrameOfReferenceSequence = Sequence([for_ref])
    rois, contours, observations = [], [], []
    for number, (name, mask) in enumerate(structures.items(), start=1):
        roi = Dataset()
        roi.ROINumber, roi.ReferencedFrameOfReferenceUID = number, ct_base.FrameOfReferenceUID
        roi.ROIName, roi.ROIGenerationAlgorithm = name, "AUTOMATIC"
        rois.append(roi)
        items = []
        for k in np.flatnonzero(mask.reshape(nz, -1).any(axis=1)):
            for pts in _slice_contours(mask[k], grid, float(z_mm[k])):
                c = Dataset()
                c.ContourImageSequence = Sequence([image_ref(int(k))])
                c.ContourGeometricType, c.NumberOfContourPoints = "CLOSED_PLANAR", len(pts)
                c[_CONTOUR_DATA] = _ds_raw(pts.ravel())
                items.append(c)
        rc = Dataset()
        rc.ReferencedROINumber, rc.ROIDisplayColor = number, _COLORS[(number - 1) % len(_COLORS)]
        rc.ContourSequence = Sequence(items)
        contours.append(rc)
        obs = Dataset()
        obs.ObservationNumber, obs.ReferencedROINumber = number, number
        obs.RTROIInterpretedType, obs.ROIInterpreter = "ORGAN", ""
        observations.append(obs)
    ds.StructureSetROISequence = Sequence(rois)
    ds.ROIContourSequence = Sequence(contours)
    ds.RTROIObservationsSequence = Sequence(observations)
    ds.ApprovalStatus = "UNAPPROVED"
    save(ds, path)


def _ds_raw(values: np.ndarray) -> RawDataElement:
    """ContourData as pre-encoded DS text (fast for many points; values rounded to 0.01 mm)."""
    text = "\\".join(f"{v:.2f}" for v in values).encode("ascii")
    text += b" " * (len(text) % 2)
    return RawDataElement(_CONTOUR_DATA, "DS", len(text), text, 0, False, True)
