"""DICOM SEG of the lesions on the PET grid."""

from __future__ import annotations

import numpy as np
import pydicom
import SimpleITK as sitk
from helpers.images import findings_for, lesion_label_image, volume_series
from helpers.tools import dciodvfy_errors

from localize.export.dicom_seg import write_seg
from localize.load.volume import load_series

PET_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.128"


def _pet(tmp_path, labels: sitk.Image):
    """A PET series written by pydicom on exactly the label image's grid (axial, 4 mm)."""
    size = labels.GetSize()
    centre = labels.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in size])
    return volume_series(tmp_path / "pet", shape_zyx=size[::-1], pixel_spacing=(4.0, 4.0), slice_step_mm=4.0,
                        centre_lps_mm=centre, modality="PT", sop_class_uid=PET_IMAGE_STORAGE)


def test_one_binary_segment_per_lesion_on_the_pet_slices(tmp_path):
    labels = lesion_label_image()
    pet = _pet(tmp_path, labels)
    np.testing.assert_allclose(pet.image.GetOrigin(), labels.GetOrigin(), atol=1e-6)
    findings = findings_for(labels)
    path = write_seg(tmp_path / "out" / "lesions_seg.dcm", findings, labels, pet)
    assert dciodvfy_errors(path) == []

    seg = pydicom.dcmread(path)
    assert seg.SegmentationType == "BINARY"
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["GTV_01_nodal", "GTV_02_local", "GTV_03_distant"]
    assert {s.SegmentedPropertyTypeCodeSequence[0].CodeValue for s in seg.SegmentSequence} == {"52988006"}
    assert seg.FrameOfReferenceUID == pet.headers[0].FrameOfReferenceUID
    labels_zyx = sitk.GetArrayFromImage(labels)
    z_of_slice = {round(float(h.ImagePositionPatient[2]), 3): k for k, h in enumerate(pet.headers)}
    frames = seg.pixel_array.reshape(-1, *labels_zyx.shape[1:])
    seen = set()
    for frame, item in zip(frames, seg.PerFrameFunctionalGroupsSequence):
        number = item.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        k = z_of_slice[round(float(item.PlanePositionSequence[0].ImagePositionPatient[2]), 3)]
        lesion = findings.lesions[number - 1]
        np.testing.assert_array_equal(frame.astype(bool), labels_zyx[k] == lesion.label)
        source = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        assert source == pet.sop_instance_uids[k]
        seen.add((number, k))
    expected = {(i + 1, k) for i, lesion in enumerate(findings.lesions)
                for k in np.flatnonzero((labels_zyx == lesion.label).any(axis=(1, 2)))}
    assert seen == expected


def test_no_lesion_no_seg(tmp_path):
    labels = lesion_label_image()
    pet = _pet(tmp_path, labels)
    findings = findings_for(labels)
    findings.lesions = []
    assert write_seg(tmp_path / "seg.dcm", findings, labels, pet) is None
    assert not (tmp_path / "seg.dcm").exists()


def test_seg_of_a_grid_resampled_over_a_missing_slice(tmp_path):
    # the PET lacks one slice; the loader fills it, so its grid has one slice more than the files:
    # the SEG's frames are the files' slices, each the label plane at that slice's own position
    labels = lesion_label_image()
    written = _pet(tmp_path, labels)
    gone = written.paths[12]
    gone.unlink()
    pet = load_series([p for p in written.paths if p != gone])
    assert pet.resampled and pet.image.GetSize() == labels.GetSize() and len(pet.headers) == 29
    findings = findings_for(labels)
    path = write_seg(tmp_path / "out" / "seg.dcm", findings, labels, pet)
    assert dciodvfy_errors(path) == []
    seg = pydicom.dcmread(path)
    labels_zyx = sitk.GetArrayFromImage(labels)
    frames = seg.pixel_array.reshape(-1, *labels_zyx.shape[1:])
    by_uid = dict(zip(pet.sop_instance_uids, range(len(pet.headers))))
    for frame, item in zip(frames, seg.PerFrameFunctionalGroupsSequence):
        k_source = by_uid[item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID]
        k_grid = k_source + (k_source >= 12)  # the grid slice at the same position
        number = item.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        np.testing.assert_array_equal(frame.astype(bool), labels_zyx[k_grid] == findings.lesions[number - 1].label)
