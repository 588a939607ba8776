"""PET series -> SUVbw image (load + per-slice SUV factors)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from helpers.pet_headers import (
    D0_BQ,
    FRAME_S,
    INJECTION,
    N_SLICES,
    SCAN,
    T_F18,
    W_KG,
    base_series,
    set_all,
    tavg_s,
    tm,
    write_headers,
)

from localize.errors import SuvError
from localize.load.pet import load_pet

ROWS, COLS = 3, 5


def _pixels(k: int) -> np.ndarray:
    """Distinct stored values per slice and voxel."""
    return (np.arange(ROWS * COLS).reshape(ROWS, COLS) * 7 + 100 * (k + 1)).astype(np.uint16)


def test_worked_example_image(tmp_path):
    # 10 kBq/ml at 60 min after 370 MBq in 80 kg -> SUV 3.16 (docs/suv.md#definitions)
    series = base_series()
    for ds in series:
        ds.RescaleSlope = 100.0
    stored = [np.full((ROWS, COLS), 100, np.uint16)] * N_SLICES
    _, paths = write_headers(series, tmp_path, stored)
    pet = load_pet(paths)
    suv = sitk.GetArrayFromImage(pet.image)
    assert suv.dtype == np.float32 and suv.shape == (N_SLICES, ROWS, COLS)
    np.testing.assert_allclose(suv, 3.158, rtol=1e-3)
    assert pet.image.GetOrigin() == pet.volume.image.GetOrigin()
    assert pet.image.GetDirection() == pet.volume.image.GetDirection()


def test_per_slice_slopes_and_times_in_shuffled_files(tmp_path):
    """DecayCorrection NONE: every slice has its own time, slope and factor; files named out of order."""
    series = base_series()
    acq_times = []
    for k, ds in enumerate(series):
        acq = SCAN + timedelta(minutes=2 * k)
        ds.AcquisitionTime = tm(acq)
        ds.RescaleSlope, ds.RescaleIntercept = [0.5, 3.0, 1.25, 10.0][k], [0, 2.0, 0, -5.0][k]
        acq_times.append(acq)
    set_all(series, DecayCorrection="NONE", CorrectedImage=["ATTN"])
    names = ["z.dcm", "a.dcm", "m.dcm", "b.dcm"]  # file order unrelated to position
    _, paths = write_headers(series, tmp_path, [_pixels(k) for k in range(N_SLICES)], names)
    pet = load_pet(list(reversed(paths)))
    suv = sitk.GetArrayFromImage(pet.image)
    for k, ds in enumerate(series):  # slice k sits at z = 4k mm, so it is image slice k
        bq_ml = _pixels(k) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        dt_s = (acq_times[k] - INJECTION).total_seconds() + tavg_s(FRAME_S, T_F18)
        expected = bq_ml * W_KG * 1000 / (D0_BQ * 2 ** (-dt_s / T_F18))
        np.testing.assert_allclose(suv[k], expected, rtol=1e-5)
    assert len(set(pet.calibration.factors.values())) == N_SLICES


def test_missing_slice_interpolates_factor(tmp_path):
    series = base_series() + base_series()[:1]
    series[-1].SeriesInstanceUID = series[0].SeriesInstanceUID
    series[-1].StudyInstanceUID = series[0].StudyInstanceUID
    series[-1].FrameOfReferenceUID = series[0].FrameOfReferenceUID
    series[-1].ImagePositionPatient = [0.0, 0.0, 24.0]  # slice at 16 and 20 mm missing
    series[-1].RescaleSlope = 1.0
    set_all(series, RescaleSlope=1.0)
    _, paths = write_headers(series, tmp_path, [np.full((ROWS, COLS), 1000, np.uint16)] * len(series))
    pet = load_pet(paths)
    assert pet.image.GetSize()[2] == 7
    np.testing.assert_allclose(sitk.GetArrayFromImage(pet.image), 1000 * 3.158e-4, rtol=1e-3)


def test_not_pet_refused(tmp_path):
    series = base_series()
    set_all(series, Modality="CT")
    _, paths = write_headers(series, tmp_path)
    with pytest.raises(SuvError, match="Modality is CT"):
        load_pet(paths)


def test_missing_weight_refused_naming_file(tmp_path):
    series = base_series()
    set_all(series, PatientWeight=None)
    _, paths = write_headers(series, tmp_path)
    with pytest.raises(SuvError, match="PatientWeight is missing") as err:
        load_pet(paths)
    assert str(tmp_path) in str(err.value)


@pytest.mark.testdata
def test_real_ge_slice(testdata):
    path = testdata / "pet" / "fo-dicom" / "GH184.dcm"
    pet = load_pet([path])
    ds = pydicom.dcmread(path)
    bq_ml = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    factor = 90_000 / (474592928 * 2 ** (-5316 / 6588))  # 90 kg, 474.6 MBq, 11:00:36 - 09:32:00
    np.testing.assert_allclose(sitk.GetArrayFromImage(pet.image)[0], bq_ml * factor, rtol=1e-5, atol=1e-6)
