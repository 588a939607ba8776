"""Real third-party DICOM (../shared/testdata) end to end: index, load, convert, SUV.

Every series found there goes through index, load and ``localize convert`` and
every PET through SUV, each either working or failing with a one-line localize
error; the whole-body FDG PET of ``studies/tcia-sts-001`` (GE Discovery ST, bed
overlaps make its slice spacing vary from 3.19 to 3.29 mm) is checked against
SimpleITK's ImageSeriesReader, dcm2niix and an SUV computed here from its header.
"""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from helpers.tools import require_tool

from localize.errors import LocalizeError
from localize.export.convert import NON_IMAGE_MODALITIES, convert_folder
from localize.load.index import index_folder
from localize.load.pet import load_pet
from localize.load.volume import load_series

pytestmark = pytest.mark.testdata

STS_PET = "studies/tcia-sts-001/FDG_PET/image"


@pytest.fixture(scope="module")
def archive(testdata):
    return index_folder(testdata)


@pytest.fixture(scope="module")
def converted(testdata, tmp_path_factory):
    out = tmp_path_factory.mktemp("converted")
    return out, convert_folder(testdata, out)


def _image_series(archive):
    return [s for s in archive.all_series() if s.modality not in NON_IMAGE_MODALITIES]


def _one_line(error: str | None) -> bool:
    return bool(error) and "\n" not in error and "Traceback" not in error


def _each_loaded(series, load):
    """``load`` of every series' files: the loaded values; each failure must be a one-line localize error."""
    loaded = []
    for s in series:
        try:
            loaded.append(load([Path(f) for f in s.files]))
        except LocalizeError as exc:
            assert _one_line(str(exc)), s.files[0]
    return loaded


def test_every_series_loads_or_says_why_in_one_line(archive):
    series = _image_series(archive)
    assert len(series) >= 20
    volumes = _each_loaded(series, load_series)
    assert len(volumes) >= len(series) - 1  # the Philips folder mixing two series is refused, with its reason
    for volume in volumes:
        assert volume.image.GetNumberOfPixels() > 0
        assert all(w and not w.rstrip().endswith(":") for w in volume.warnings), volume.warnings


def test_every_series_converts_or_says_why_in_one_line(archive, converted):
    out, results = converted
    by_uid = {r.series_instance_uid for r in results}
    assert {s.series_instance_uid for s in _image_series(archive)} <= by_uid
    for r in results:
        if r.error is None:
            assert r.nifti.is_file() and r.sidecar.is_file()
            assert nib.load(r.nifti).shape[0] > 0
        else:  # only a PET may fail, for want of what SUV needs (Units PROPCPS, no weight)
            assert r.modality == "PT" and _one_line(r.error), r
    assert sum(r.error is None and r.modality == "PT" for r in results) >= 6


def test_every_pet_gets_suv_or_a_one_line_reason(archive):
    pets = [s for s in archive.all_series() if s.modality == "PT"]
    assert len(pets) >= 9
    computed = _each_loaded(pets, load_pet)
    assert len(computed) >= 6
    for pet in computed:
        suv = sitk.GetArrayViewFromImage(pet.image)
        assert np.isfinite(suv).all() and 0.5 < float(suv.max()) < 200.0, pet.volume.paths[0]


# ---------------------------------------------------------------- tcia-sts-001 PET


@pytest.fixture(scope="module")
def sts_files(testdata) -> list[Path]:
    return sorted((testdata / STS_PET).glob("*.dcm"))


def test_sts_pet_keeps_the_scanner_grid(sts_files):
    volume = load_series(sts_files)
    assert volume.image.GetSize() == (128, 128, 267) and not volume.resampled
    assert len(volume.warnings) == 1 and "3.190 to 3.290 mm" in volume.warnings[0]
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(sts_files[0].parent)))
    reference = reader.Execute()
    assert volume.image.GetSize() == reference.GetSize()
    assert volume.image.GetOrigin() == pytest.approx(reference.GetOrigin(), abs=1e-6)
    assert volume.image.GetDirection() == pytest.approx(reference.GetDirection(), abs=1e-9)
    np.testing.assert_allclose(volume.image.GetSpacing(), reference.GetSpacing(), rtol=0.01)
    # one voxel per slice position: every slice within a tenth of a voxel of its own header's z
    z_grid = np.array([volume.image.TransformIndexToPhysicalPoint((0, 0, k))[2] for k in range(267)])
    np.testing.assert_allclose(z_grid, volume.positions_lps_mm[:, 2], atol=0.33)


def test_sts_pet_convert_grid_matches_dcm2niix(testdata, archive, converted, tmp_path):
    subprocess.run([require_tool("dcm2niix"), "-z", "y", "-f", "pet", "-o", str(tmp_path), str(testdata / STS_PET)],
                   check=True, capture_output=True)
    theirs = nib.as_closest_canonical(nib.load(tmp_path / "pet.nii.gz"))
    uid = next(s.series_instance_uid for s in archive.all_series() if STS_PET in s.files[0])
    ours_path = next(r.nifti for r in converted[1] if r.series_instance_uid == uid)
    ours = nib.as_closest_canonical(nib.load(ours_path))
    assert ours.shape == theirs.shape == (128, 128, 267)
    np.testing.assert_allclose(ours.affine, theirs.affine, atol=0.1)


def _dicom_datetime(date: str, time: str) -> datetime:
    return datetime.strptime(date + time.split(".")[0].ljust(6, "0"), "%Y%m%d%H%M%S")


def test_sts_pet_suvmax_equals_an_independent_computation(sts_files):
    # SUVbw = C (Bq/ml) x weight (g) / injected dose decayed to the series time (DecayCorrection
    # START: the scanner decay-corrected the image to the series start), e.g. Boellaard, J Nucl Med
    # 2009;50 Suppl 1:11S.
    activity = []
    for path in sts_files:
        ds = pydicom.dcmread(path)
        assert ds.Units == "BQML" and ds.DecayCorrection == "START"
        activity.append(float(ds.pixel_array.max()) * float(ds.RescaleSlope) + float(ds.RescaleIntercept))
    info = ds.RadiopharmaceuticalInformationSequence[0]
    injected = _dicom_datetime(ds.SeriesDate, info.RadiopharmaceuticalStartTime)
    elapsed_s = (_dicom_datetime(ds.SeriesDate, ds.SeriesTime) - injected).total_seconds()
    dose_bq = float(info.RadionuclideTotalDose) * 2.0 ** (-elapsed_s / float(info.RadionuclideHalfLife))
    expected = max(activity) * float(ds.PatientWeight) * 1000.0 / dose_bq
    pet = load_pet(sts_files)
    assert float(sitk.GetArrayViewFromImage(pet.image).max()) == pytest.approx(expected, rel=1e-4)
