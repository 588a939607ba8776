"""The report page as a DICOM Secondary Capture image, so it can go to the PACS with the study.

The report (``localize.export.report``) is HTML with a PNG figure; the PNG becomes a
Secondary Capture Image (DICOM PS3.3 A.8.1, RGB, 8 bits) carrying the patient
and study of the PET series it was made from (``highdicom.sc.SCImage``), in a
new series with new UIDs at every run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from highdicom.sc import SCImage
from pydicom.uid import generate_uid

from localize import __version__
from localize.atomic import atomic_write

SERIES_NUMBER = 9903  # beside the other exports' series numbers, out of the scanner's usual range


def write_report_capture(png: Path, reference: Path, path: Path) -> Path:
    """Write ``png`` as a Secondary Capture of the study of the DICOM file ``reference`` to ``path``."""
    from PIL import Image

    with Image.open(png) as image:
        pixels = np.asarray(image.convert("RGB"))
    header = pydicom.dcmread(reference, stop_before_pixels=True)
    capture = SCImage.from_ref_dataset(
        header, pixels, photometric_interpretation="RGB", bits_allocated=8,
        coordinate_system="PATIENT", patient_orientation=("L", "F"),  # as the page's coronal views
        series_instance_uid=generate_uid(), series_number=SERIES_NUMBER, sop_instance_uid=generate_uid(),
        instance_number=1, manufacturer="localize", transfer_syntax_uid=pydicom.uid.ExplicitVRLittleEndian,
        software_versions=f"localize {__version__}", series_description="localize report (research use)")
    capture.add_new("Laterality", "CS", None)  # Type 2C (General Series): present, empty, as the page shows both sides
    with atomic_write(path) as tmp:
        capture.save_as(tmp)
    return path
