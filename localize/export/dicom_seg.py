"""DICOM Segmentation of the lesions on the PET grid (highdicom).

One BINARY segment per lesion, numbered by lesion id (1..n, SUVmax descending),
labelled like the RTSTRUCT GTVs (``GTV_01_nodal``), coded as SNOMED CT
"Morphologically Abnormal Structure" / "Lesion" (CID 7150 / 7151), with the
region colour of the report and RTSTRUCT. Frames are the PET slices in k order;
empty frames are left out. SEG suits PACS and research viewers; the planning
export is the RTSTRUCT (docs/coordinates.md#rt-structure-set).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import highdicom as hd
import numpy as np
import SimpleITK as sitk
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from localize import __version__
from localize.atomic import atomic_write
from localize.errors import SeriesError
from localize.export.rtstruct import REGION_COLORS_RGB, roi_names
from localize.findings import Findings

if TYPE_CHECKING:
    from localize.load.volume import Volume

ALGORITHM = hd.AlgorithmIdentificationSequence(
    name="localize SUV threshold", family=codes.cid7162.HistogramAnalysis, version=__version__
)


def build_seg(findings: Findings, label_image: sitk.Image, pet: Volume) -> hd.seg.Segmentation | None:
    """The SEG of ``findings``; None when there is no lesion (a SEG needs at least one segment).

    ``label_image``: lesion labels on the PET grid; ``pet``: the PET series it was
    segmented on. The SEG's frames are the source slices (``pet.headers``), also
    where the loader resampled the grid (gaps filled, tilt undone).
    """
    if sitk.GetArrayViewFromImage(label_image).shape != sitk.GetArrayViewFromImage(pet.image).shape:
        raise SeriesError("the lesion label image is not on the PET grid", pet.paths[0] if pet.paths else None)
    lesions = sorted(findings.lesions, key=lambda lesion: lesion.id)
    if not lesions:
        return None
    labels_zyx = _on_source_slices(label_image, pet)
    segments_zyx = np.zeros(labels_zyx.shape, dtype=np.uint16)
    descriptions = []
    for number, lesion in enumerate(lesions, start=1):
        segments_zyx[labels_zyx == lesion.label] = number
        rgb = REGION_COLORS_RGB.get(lesion.region, REGION_COLORS_RGB[None])
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=roi_names(lesion)[0],
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Lesion,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=ALGORITHM,
            tracking_uid=generate_uid(),
            tracking_id=f"lesion {lesion.id}",
            display_color=hd.color.CIELabColor.from_rgb(*rgb),
        ))
    first = pet.headers[0]
    spacing_mm = pet.image.GetSpacing()
    pixel_measures = hd.PixelMeasuresSequence(
        pixel_spacing=[float(v) for v in first.PixelSpacing],
        slice_thickness=float(first.get("SliceThickness") or spacing_mm[2]),  # Type 2: may be empty
        spacing_between_slices=float(spacing_mm[2]),
    )
    return hd.seg.Segmentation(
        source_images=list(pet.headers),
        pixel_measures=pixel_measures,
        pixel_array=segments_zyx,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(),
        series_number=901,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="localize",
        manufacturer_model_name="localize",
        software_versions=__version__,
        device_serial_number="0",
        content_label="LESIONS",
        content_description="PET-avid lesions",
        transfer_syntax_uid=ExplicitVRLittleEndian,
    )


def _on_source_slices(label_image: sitk.Image, pet: Volume) -> np.ndarray:
    """Lesion labels (z, y, x) with one z slice per source header, in ``pet.headers`` order."""
    if not pet.resampled and label_image.GetSize()[2] == len(pet.headers):
        return sitk.GetArrayFromImage(label_image)
    columns, rows = label_image.GetSize()[:2]
    out = np.zeros((len(pet.headers), rows, columns), np.uint16)
    for k, header in enumerate(pet.headers):
        plane = sitk.Image(columns, rows, 1, sitk.sitkUInt16)
        plane.SetOrigin(tuple(float(v) for v in pet.positions_lps_mm[k]))
        plane.SetSpacing(label_image.GetSpacing())
        row = np.array(header.ImageOrientationPatient[:3], float)
        col = np.array(header.ImageOrientationPatient[3:], float)
        plane.SetDirection(tuple(np.column_stack([row, col, np.cross(row, col)]).ravel()))
        nearest = sitk.Resample(label_image, plane, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt16)
        out[k] = sitk.GetArrayViewFromImage(nearest)[0]
    return out


def write_seg(path: str | Path, findings: Findings, label_image: sitk.Image, pet: Volume) -> Path | None:
    """Write :func:`build_seg` to ``path`` atomically; returns the path, or None without lesions."""
    seg = build_seg(findings, label_image, pet)
    if seg is None:
        return None
    path = Path(path)
    with atomic_write(path) as tmp:
        seg.save_as(tmp)
    return path
