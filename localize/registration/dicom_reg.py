"""DICOM Spatial Registration object (PS3.3 A.39) for the MR -> PET/CT rigid registration.

The object lives in the PET/CT frame of reference (the registered frame) and
holds one Registration Sequence item per frame: the PET/CT frame with the
identity, the MR frame with the 4x4 matrix taking MR LPS points to PET/CT LPS
points (PS3.3 C.20.2.1.1: the matrix maps the item's frame into the registered
frame), so a planning system can reproduce the fusion.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

from localize.atomic import atomic_write
from localize.errors import RegistrationError
from localize.registration.result import Registration

SPATIAL_REGISTRATION_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.1"
_COPIED_PATIENT_STUDY = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
)


def _as_list(headers: Dataset | Sequence[Dataset]) -> list[Dataset]:
    items = [headers] if isinstance(headers, Dataset) else list(headers)
    if not items:
        raise RegistrationError("no DICOM headers given for the spatial registration")
    return items


def _frame_uid(headers: list[Dataset], role: str) -> str:
    uids = {str(h.get("FrameOfReferenceUID", "")) for h in headers}
    if len(uids) != 1 or "" in uids:
        raise RegistrationError(f"{role} headers do not share one FrameOfReferenceUID ({sorted(uids)})")
    return uids.pop()


def _image_references(headers: list[Dataset]) -> DicomSequence:
    items = []
    for header in headers:
        item = Dataset()
        item.ReferencedSOPClassUID = header.SOPClassUID
        item.ReferencedSOPInstanceUID = header.SOPInstanceUID
        items.append(item)
    return DicomSequence(items)


def _registration_item(frame_uid: str, headers: list[Dataset], matrix: np.ndarray, comment: str) -> Dataset:
    matrix_item = Dataset()
    matrix_item.FrameOfReferenceTransformationMatrixType = "RIGID"
    matrix_item.FrameOfReferenceTransformationMatrix = [f"{v:.10g}" for v in np.asarray(matrix, float).ravel()]
    registration_type = Dataset()
    identity = comment == "identity"  # CID 7100 RCS Registration Method
    registration_type.CodeValue = "125021" if identity else "125024"
    registration_type.CodingSchemeDesignator = "DCM"
    registration_type.CodeMeaning = "Frame of Reference Identity" if identity else "Image Content-based Alignment"
    matrix_registration = Dataset()
    matrix_registration.FrameOfReferenceTransformationComment = comment
    matrix_registration.RegistrationTypeCodeSequence = DicomSequence([registration_type])
    matrix_registration.MatrixSequence = DicomSequence([matrix_item])
    item = Dataset()
    item.FrameOfReferenceUID = frame_uid
    item.ReferencedImageSequence = _image_references(headers)
    item.MatrixRegistrationSequence = DicomSequence([matrix_registration])
    return item


def _series_reference(headers: list[Dataset]) -> Dataset:
    item = Dataset()
    item.SeriesInstanceUID = headers[0].SeriesInstanceUID
    item.ReferencedInstanceSequence = _image_references(headers)
    return item


def spatial_registration_dataset(
    reg: Registration, pet_or_ct_headers: Dataset | Sequence[Dataset], mr_headers: Dataset | Sequence[Dataset]
) -> Dataset:
    """The Spatial Registration dataset (in memory) for ``reg``; headers are the series' instances."""
    fixed = _as_list(pet_or_ct_headers)
    moving = _as_list(mr_headers)
    fixed_frame = _frame_uid(fixed, "PET/CT")
    moving_frame = _frame_uid(moving, "MR")
    now = datetime.datetime.now()

    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = SPATIAL_REGISTRATION_SOP_CLASS
    ds.SOPInstanceUID = generate_uid()
    for keyword in _COPIED_PATIENT_STUDY:
        setattr(ds, keyword, fixed[0].get(keyword, ""))
    ds.Modality = "REG"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 9001
    ds.SeriesDescription = "MR to PET/CT registration"
    ds.BodyPartExamined = "PELVIS"  # unpaired, so Laterality (type 2C) is absent
    ds.FrameOfReferenceUID = fixed_frame
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = "localize"
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.InstanceNumber = 1
    ds.ContentLabel = "MR_TO_PET"
    ds.ContentDescription = reg.method[:64]
    ds.ContentCreatorName = ""
    ds.RegistrationSequence = DicomSequence([
        _registration_item(fixed_frame, fixed, np.eye(4), "identity"),
        _registration_item(moving_frame, moving, reg.matrix_mr_to_pet_lps, "MR LPS to PET/CT LPS, rigid"),
    ])
    same_study = moving[0].get("StudyInstanceUID") == ds.StudyInstanceUID
    ds.ReferencedSeriesSequence = DicomSequence([_series_reference(fixed)]
                                                + ([_series_reference(moving)] if same_study else []))
    if not same_study:
        other = Dataset()
        other.StudyInstanceUID = moving[0].StudyInstanceUID
        other.ReferencedSeriesSequence = DicomSequence([_series_reference(moving)])
        ds.StudiesContainingOtherReferencedInstancesSequence = DicomSequence([other])

    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return ds


def write_spatial_registration(
    reg: Registration,
    pet_or_ct_headers: Dataset | Sequence[Dataset],
    mr_headers: Dataset | Sequence[Dataset],
    path: str | Path,
) -> Path:
    """Write the DICOM Spatial Registration object for ``reg`` to ``path`` (atomically); returns the path.

    The rigid (or linear) part of the registration is stored; a deformable
    refinement is not representable in this object.
    """
    ds = spatial_registration_dataset(reg, pet_or_ct_headers, mr_headers)
    with atomic_write(path) as temporary:
        pydicom.dcmwrite(temporary, ds, enforce_file_format=True)
    return Path(path)
