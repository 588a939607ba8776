"""SUV calibration (docs/suv.md) on PET headers written with pydicom, the IBSI
SUV reference-object case list and real vendor headers.

Expected factors are computed here from the physical definitions
(SUVbw = C × W / D_ref), never by calling the code under test.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pydicom
import pytest
from helpers.pet_headers import (
    D0_BQ,
    F0,
    FRAME_S,
    H_M,
    INJECTION,
    N_SLICES,
    SCAN,
    T_F18,
    T_GA68,
    T_ZR89,
    TARGET_SUV,
    W_KG,
    base_series,
    da,
    info_of,
    set_all,
    set_info,
    tavg_s,
    tm,
    write_headers,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from localize.errors import LocalizeError, SuvError
from localize.load.suv import (
    average_count_time_s,
    ibw_kg,
    lbm_james128_kg,
    lbm_janmahasatian_kg,
    suv_calibration,
)


def _philips(ds: Dataset, offset: int, value: float) -> None:
    ds.private_block(0x7053, "Philips PET Private Group", create=True).add_new(offset, "DS", f"{value:.8g}")


# ---------------------------------------------------------------- IBSI SUV reference-object cases
# One case per row of DRO/DRO_list.csv (oncoray/suv_computation): a mutation of the
# base series and the expected factor per slice (None: must raise SuvError).


def _none_expectations(series: list[Dataset], half_life_s: float = T_F18) -> list[float]:
    """Per-slice acquisition times 2 min apart; expected factor decays each to injection."""
    out = []
    for k, ds in enumerate(series):
        acq = SCAN + timedelta(minutes=2 * k)
        ds.AcquisitionTime = tm(acq)
        dt = (acq - INJECTION).total_seconds() + tavg_s(FRAME_S, half_life_s)
        out.append(W_KG * 1000.0 / D0_BQ * 2.0 ** (dt / half_life_s))
    set_all(series, DecayCorrection="NONE", CorrectedImage=["NORM", "ATTN", "SCAT"])
    return out


def _multibed_series_after_acquisition(series: list[Dataset], manufacturer: str) -> None:
    """Series time 30 min after the scan; two beds; FrameReferenceTime points back to SCAN."""
    set_all(series, Manufacturer=manufacturer, SeriesTime=tm(SCAN + timedelta(minutes=30)))
    for k, ds in enumerate(series):
        bed_start_s = 120.0 * (k // 2)
        ds.AcquisitionTime = tm(SCAN + timedelta(seconds=bed_start_s))
        ds.FrameReferenceTime = round((bed_start_s + tavg_s(FRAME_S, T_F18)) * 1000, 3)


def _lbm_james(sex: str) -> float:
    male = 1.10 * W_KG - 128 * (W_KG / 175.0) ** 2
    female = 1.07 * W_KG - 148 * (W_KG / 175.0) ** 2
    return {"M": male, "F": female, "O": (male + female) / 2}[sex]


def _ibw(sex: str) -> float:
    male, female = 48.0 + 1.06 * (175 - 152), 45.5 + 0.91 * (175 - 152)
    return {"M": male, "F": female, "O": (male + female) / 2}[sex]


def _janma(sex: str) -> float:
    bmi = W_KG / H_M**2
    male, female = 9270 * W_KG / (6680 + 216 * bmi), 9270 * W_KG / (8780 + 244 * bmi)
    return {"M": male, "F": female, "O": (male + female) / 2}[sex]


def _gml(suv_type: str, sex: str) -> Callable[[list[Dataset]], list[float]]:
    norm = {"LBMJAMES128": _lbm_james, "IBW": _ibw, "LBMJANMA": _janma}[suv_type]

    def case(s: list[Dataset]) -> list[float]:
        set_all(s, Units="GML", SUVType=suv_type, PatientSex=sex)
        return [W_KG / norm(sex)] * N_SLICES
    return case


def _case_default(s):
    return [F0] * N_SLICES


def _case_rescale(s):
    for k, ds in enumerate(s):
        ds.RescaleSlope = [0.001, 2.5, 17.0, 0.3][k]
    return [F0] * N_SLICES


def _case_gml_bw(s):
    set_all(s, Units="GML", SUVType="BW")
    return [1.0] * N_SLICES


def _case_cm2ml(s):
    set_all(s, Units="CM2ML", SUVType="BSA")
    bsa_m2 = 0.007184 * W_KG**0.425 * 175.0**0.725
    return [W_KG / (10 * bsa_m2)] * N_SLICES


def _case_cnts_suv(s):
    set_all(s, Units="CNTS", Manufacturer="Philips Medical Systems")
    for k, ds in enumerate(s):
        _philips(ds, 0x00, 1e-5 * (k + 1))
    return [1e-5 * (k + 1) for k in range(N_SLICES)]


def _case_cnts_activity(s):
    set_all(s, Units="CNTS", Manufacturer="Philips Medical Systems")
    for ds in s:
        _philips(ds, 0x09, 0.25)
    return [0.25 * F0] * N_SLICES


def _case_dose_mbq(s):
    set_info(s, RadionuclideTotalDose=370)
    return [F0] * N_SLICES


def _case_admin(s):
    set_all(s, DecayCorrection="ADMIN")
    return [W_KG * 1000 / D0_BQ] * N_SLICES


def _case_series_after(manufacturer):
    def case(s):
        _multibed_series_after_acquisition(s, manufacturer)
        return [F0] * N_SLICES
    return case


def _case_siemens_private(s):
    _multibed_series_after_acquisition(s, "SIEMENS")
    for ds in s:
        ds.private_block(0x0071, "SIEMENS MED PT", create=True).add_new(0x22, "DT", SCAN.strftime("%Y%m%d%H%M%S"))
    return [F0] * N_SLICES


def _case_ge_private(s):
    set_all(s, Manufacturer="GE MEDICAL SYSTEMS", SeriesTime=tm(SCAN + timedelta(minutes=30)),
             FrameReferenceTime=0)
    for ds in s:
        ds.private_block(0x0009, "GEMS_PETD_01", create=True).add_new(0x0D, "DT", SCAN.strftime("%Y%m%d%H%M%S.00"))
    return [F0] * N_SLICES


def _case_none(manufacturer):
    def case(s):
        set_all(s, Manufacturer=manufacturer)
        return _none_expectations(s)
    return case


def _case_none_philips_cnts(s):
    expected = _none_expectations(s)
    set_all(s, Manufacturer="Philips Medical Systems", Units="CNTS")
    for ds, f in zip(s, expected, strict=True):
        _philips(ds, 0x09, 0.4)
        _philips(ds, 0x00, 0.4 * f)
    return [0.4 * f for f in expected]


def _case_series_equals_acquisition(manufacturer):
    def case(s):
        set_all(s, Manufacturer=manufacturer, FrameReferenceTime=0)
        return [F0] * N_SLICES
    return case


def _case_start_datetime_only(s):
    set_info(s, RadiopharmaceuticalStartTime=None)
    return [F0] * N_SLICES


def _case_start_time_only(s):
    set_info(s, RadiopharmaceuticalStartDateTime=None)
    return [F0] * N_SLICES


def _midnight(s, start_datetime: bool, anonymised_acquisition_date: bool = False):
    scan = datetime(2024, 1, 2, 0, 30)
    injection = scan - timedelta(hours=1)
    set_all(s, SeriesDate=da(scan), SeriesTime=tm(scan), AcquisitionDate=da(scan), AcquisitionTime=tm(scan))
    if anonymised_acquisition_date:
        set_all(s, AcquisitionDate="19000101")
    set_info(s, RadiopharmaceuticalStartTime=tm(injection),
              RadiopharmaceuticalStartDateTime=injection.strftime("%Y%m%d%H%M%S") if start_datetime else None)
    return [F0] * N_SLICES


def _zr89(s, start_datetime: str | None):
    set_info(s, RadionuclideHalfLife=T_ZR89, Radiopharmaceutical="89Zr-antibody",
              RadiopharmaceuticalStartTime=tm(INJECTION), RadiopharmaceuticalStartDateTime=start_datetime)
    scan = INJECTION + timedelta(hours=72)
    set_all(s, SeriesDate=da(scan), SeriesTime=tm(scan), AcquisitionDate=da(scan), AcquisitionTime=tm(scan),
             FrameReferenceTime=0)
    return [W_KG * 1000 / (D0_BQ * 2 ** (-72 * 3600 / T_ZR89))] * N_SLICES


def _case_ga68(s):
    set_info(s, RadionuclideHalfLife=T_GA68, Radiopharmaceutical="68Ga-PSMA-11")
    set_all(s, FrameReferenceTime=0)
    return [W_KG * 1000 / (D0_BQ * 2 ** (-3600 / T_GA68))] * N_SLICES


DRO_CASES: dict[str, Callable[[list[Dataset]], list[float]]] = {
    "DRO_0_0": _case_default,
    "DRO_1_0": _case_rescale,
    "DRO_2_0": _case_gml_bw,
    "DRO_2_1_0": _gml("LBMJAMES128", "M"),
    "DRO_2_1_1": _gml("LBMJAMES128", "F"),
    "DRO_2_1_2": _gml("LBMJAMES128", "O"),
    "DRO_2_2_0": _gml("IBW", "M"),
    "DRO_2_2_1": _gml("IBW", "F"),
    "DRO_2_2_2": _gml("IBW", "O"),
    "DRO_2_3": _case_cm2ml,
    "DRO_2_4": _case_cnts_suv,
    "DRO_2_5": _case_cnts_activity,
    "DRO_2_6_0": _gml("LBMJANMA", "M"),
    "DRO_2_6_1": _gml("LBMJANMA", "F"),
    "DRO_2_6_2": _gml("LBMJANMA", "O"),
    "DRO_3_0": _case_dose_mbq,
    "DRO_3_1": _case_admin,
    "DRO_3_2_0": _case_series_after("SIEMENS"),
    "DRO_3_2_1": _case_series_after("GE MEDICAL SYSTEMS"),
    "DRO_3_2_2": _case_series_after("Philips Medical Systems"),
    "DRO_3_2_3": _case_series_after("SYNTHETIC"),
    "DRO_3_3_0": _case_siemens_private,
    "DRO_3_3_1": _case_ge_private,
    "DRO_3_4_0": _case_none("SIEMENS"),
    "DRO_3_4_1": _case_none("GE MEDICAL SYSTEMS"),
    "DRO_3_4_2": _case_none_philips_cnts,
    "DRO_3_4_3": _case_none("SYNTHETIC"),
    "DRO_3_5_0": _case_series_equals_acquisition("SIEMENS"),
    "DRO_3_5_1": _case_series_equals_acquisition("GE MEDICAL SYSTEMS"),
    "DRO_3_5_2": _case_series_equals_acquisition("Philips Medical Systems"),
    "DRO_3_5_3": _case_series_equals_acquisition("SYNTHETIC"),
    "DRO_4_0": _case_start_datetime_only,
    "DRO_4_1": _case_start_time_only,
    "DRO_4_2": lambda s: _midnight(s, start_datetime=False),
    "DRO_4_3": lambda s: _midnight(s, start_datetime=True),
    "DRO_4_4": lambda s: _midnight(s, start_datetime=False, anonymised_acquisition_date=True),
    "DRO_4_5": lambda s: _zr89(s, INJECTION.strftime("%Y%m%d%H%M%S")),
    "DRO_5_0": _case_ga68,
}

# Expected branch of the decay-reference rule (docs/suv.md#decay-reference-time) where the case exercises one.
DRO_RULES = {
    "DRO_0_0": "1:series_datetime",
    "DRO_3_1": "ADMIN",
    "DRO_3_2_0": "3:acquisition+t_avg-frame_reference_time",
    "DRO_3_2_1": "3:acquisition+t_avg-frame_reference_time",
    "DRO_3_2_2": "3:acquisition+t_avg-frame_reference_time",
    "DRO_3_2_3": "3:acquisition+t_avg-frame_reference_time",
    "DRO_3_3_0": "3:acquisition+t_avg-frame_reference_time",
    "DRO_3_3_1": "2:ge_private_scan_datetime",
    "DRO_3_4_0": "NONE:acquisition+t_avg",
    "DRO_3_5_1": "1:series_datetime",
}


@pytest.mark.parametrize("case", sorted(DRO_CASES))
def test_ibsi_valid_case(case, tmp_path):
    series = base_series()
    expected = DRO_CASES[case](series)
    headers, paths = write_headers(series, tmp_path)
    cal = suv_calibration(headers, paths)
    for ds, want, target in zip(headers, expected, TARGET_SUV, strict=True):
        rescaled = target / want  # the value a scanner would store for this SUV
        assert cal.factors[ds.SOPInstanceUID] * rescaled == pytest.approx(target, rel=1e-4), case
    if case in DRO_RULES:
        assert cal.decay_reference_rule == DRO_RULES[case]
    if case == "DRO_3_0":
        assert cal.dose_rescued_from_mbq and any("MBq" in w for w in cal.warnings)
    json.dumps(cal.to_dict())


def _err_sex(value):
    def case(s):
        set_all(s, Units="GML", SUVType="IBW", PatientSex=value)
    return case


def _err_cnts(s):
    set_all(s, Units="CNTS", Manufacturer="Philips Medical Systems")


def _err_frame_duration(s):
    set_all(s, ActualFrameDuration=None, Manufacturer="Philips Medical Systems")


DRO_ERRORS: dict[str, tuple[Callable[[list[Dataset]], None], str]] = {
    "DRO_error_2_0": (lambda s: set_all(s, PatientWeight=None), "PatientWeight"),
    "DRO_error_2_1": (lambda s: set_all(s, PatientWeight=0), "PatientWeight"),
    "DRO_error_2_2": (_err_sex(None), "PatientSex"),
    "DRO_error_2_3": (_err_sex("X"), "PatientSex"),
    "DRO_error_2_4": (lambda s: set_all(s, Units="GML", SUVType="IBW", PatientSize=None), "PatientSize"),
    "DRO_error_2_5": (lambda s: set_all(s, Units="GML", SUVType="IBW", PatientSize=0), "PatientSize"),
    "DRO_error_2_6": (_err_cnts, "7053,1000"),
    "DRO_error_2_7": (lambda s: set_all(s, Units="PROPCNTS"), "Units"),
    "DRO_error_3_0": (lambda s: set_info(s, RadionuclideTotalDose=None), "RadionuclideTotalDose"),
    "DRO_error_3_1": (lambda s: set_info(s, RadionuclideTotalDose=-370e6), "RadionuclideTotalDose"),
    "DRO_error_3_2": (_err_frame_duration, "ActualFrameDuration"),
    "DRO_error_4_0": (lambda s: set_info(s, RadiopharmaceuticalStartTime=None,
                                          RadiopharmaceuticalStartDateTime=None), "RadiopharmaceuticalStartTime"),
    "DRO_error_4_1": (lambda s: _zr89(s, None), "RadiopharmaceuticalStartDateTime"),
    "DRO_error_4_2": (lambda s: _zr89(s, "19000101090000"), "uptake time"),
    "DRO_error_5_0": (lambda s: set_info(s, RadionuclideHalfLife=None), "RadionuclideHalfLife"),
}


@pytest.mark.parametrize("case", sorted(DRO_ERRORS))
def test_ibsi_error_case(case, tmp_path):
    series = base_series()
    mutate, keyword = DRO_ERRORS[case]
    mutate(series)
    headers, paths = write_headers(series, tmp_path)
    with pytest.raises(SuvError) as err:
        suv_calibration(headers, paths)
    message = str(err.value)
    assert keyword in message and str(tmp_path) in message and "\n" not in message


# ---------------------------------------------------------------- further behaviours


def test_worked_example_factor():
    headers = base_series()
    cal = suv_calibration(headers, [f"s{k}.dcm" for k in range(N_SLICES)])
    assert list(cal.factors.values()) == [pytest.approx(3.158e-4, rel=1e-3)] * N_SLICES
    assert 10_000 * cal.factors[headers[0].SOPInstanceUID] == pytest.approx(3.16, abs=0.005)  # 10 kBq/ml
    assert cal.delta_t_s == 3600 and cal.half_life_s == T_F18 and cal.injected_activity_bq == D0_BQ
    assert cal.injection_time_source == "RadiopharmaceuticalStartDateTime"
    assert cal.tracer.family == "psma_f18_renal" and cal.warnings == []


def test_any_order_gives_same_factors():
    headers = base_series()
    _multibed_series_after_acquisition(headers, "SIEMENS")
    paths = [f"s{k}.dcm" for k in range(N_SLICES)]
    forward = suv_calibration(headers, paths).factors
    backward = suv_calibration(headers[::-1], paths[::-1]).factors
    assert forward == backward


def test_start_datetime_preferred_over_start_time():
    headers = base_series()
    set_info(headers, RadiopharmaceuticalStartTime="083000")  # disagrees; the DateTime wins
    cal = suv_calibration(headers, ["a", "b", "c", "d"])
    assert cal.injection_datetime == INJECTION


def test_philips_bqml_ignores_private_suv_factor():
    headers = base_series()
    set_all(headers, Manufacturer="Philips Medical Systems")
    for ds in headers:
        _philips(ds, 0x00, 0.000027)
        _philips(ds, 0x09, 0.159)
    cal = suv_calibration(headers, ["a", "b", "c", "d"])
    assert list(cal.factors.values()) == [pytest.approx(F0, rel=1e-9)] * N_SLICES and cal.scale_source == "BQML"


def test_philips_private_without_creator_read_by_tag():
    headers = base_series()
    set_all(headers, Units="CNTS", Manufacturer="Philips Medical Systems")
    for ds in headers:
        ds.add(pydicom.DataElement(Tag(0x7053, 0x1009), "UN", b"0.25"))
    cal = suv_calibration(headers, ["a", "b", "c", "d"])
    assert list(cal.factors.values()) == [pytest.approx(0.25 * F0, rel=1e-9)] * N_SLICES
    assert any("without its private creator" in w for w in cal.warnings)


@pytest.mark.parametrize(("suv_factor_scale", "warned"), [(1.0, False), (1.05, True)])
def test_philips_both_paths_compared(suv_factor_scale, warned):
    headers = base_series()
    set_all(headers, Units="CNTS", Manufacturer="Philips Medical Systems")
    for ds in headers:
        _philips(ds, 0x09, 0.25)
        _philips(ds, 0x00, 0.25 * F0 * suv_factor_scale)
    cal = suv_calibration(headers, ["a", "b", "c", "d"])
    assert cal.scale_source == "CNTS:SUV scale factor"
    assert list(cal.factors.values()) == [pytest.approx(0.25 * F0 * suv_factor_scale, rel=1e-6)] * N_SLICES
    assert any("differ by" in w for w in cal.warnings) is warned


def test_ge_private_without_creator_is_used_with_warning():
    headers = base_series()
    set_all(headers, Manufacturer="GE MEDICAL SYSTEMS", SeriesTime=tm(SCAN + timedelta(minutes=30)))
    for ds in headers:
        ds.add(pydicom.DataElement(Tag(0x0009, 0x100D), "UN", SCAN.strftime("%Y%m%d%H%M%S").encode()))
    cal = suv_calibration(headers, ["a", "b", "c", "d"])
    assert cal.decay_reference_rule == "2:ge_private_scan_datetime"
    assert list(cal.factors.values()) == [pytest.approx(F0, rel=1e-9)] * N_SLICES
    assert any("without its private creator" in w for w in cal.warnings)


def test_earliest_acquisition_when_no_frame_reference():
    headers = base_series()
    set_all(headers, SeriesTime=tm(SCAN + timedelta(minutes=30)), FrameReferenceTime=0)
    cal = suv_calibration(headers, ["a", "b", "c", "d"])
    assert cal.decay_reference_rule == "4:earliest_acquisition_datetime"
    assert list(cal.factors.values()) == [pytest.approx(F0, rel=1e-9)] * N_SLICES


def test_none_mode_without_decy_accepted_start_without_decy_refused():
    headers = base_series()
    _none_expectations(headers)
    assert suv_calibration(headers, ["a", "b", "c", "d"]).decay_correction == "NONE"
    set_all(headers, DecayCorrection="START")
    with pytest.raises(SuvError, match="CorrectedImage lacks DECY"):
        suv_calibration(headers, ["a", "b", "c", "d"])


def test_inconsistent_slices_refused():
    headers = base_series()
    headers[2].SeriesTime = "103000"
    with pytest.raises(SuvError, match=r"c: SeriesTime .* not one PET series"):
        suv_calibration(headers, ["a", "b", "c", "d"])


def test_several_injections_refused():
    headers = base_series()
    for ds in headers:
        ds.RadiopharmaceuticalInformationSequence.append(Dataset(info_of(ds)))
    with pytest.raises(SuvError, match="several injections"):
        suv_calibration(headers, ["a", "b", "c", "d"])


@pytest.mark.parametrize(
    ("text", "uptake_min", "warned"),
    [("18F-FDG", 20, True), ("Axumin", 4, False), ("18F-DCFPyL", 60, False)],
)
def test_short_uptake_warning_is_tracer_aware(text, uptake_min, warned):
    headers = base_series()
    scan = INJECTION + timedelta(minutes=uptake_min)
    set_all(headers, SeriesTime=tm(scan), AcquisitionTime=tm(scan))
    set_info(headers, Radiopharmaceutical=text)
    cal = suv_calibration(headers, ["a", "b", "c", "d"])
    assert cal.uptake_s == uptake_min * 60
    assert any("uptake time" in w for w in cal.warnings) is warned


def test_body_size_ratios_and_height_in_cm():
    headers = base_series()
    set_all(headers, PatientSize=175)  # centimetres by mistake
    cal = suv_calibration(headers, ["a", "b", "c", "d"])
    assert cal.height_m == pytest.approx(1.75)
    assert any("centimetres" in w for w in cal.warnings)
    # docs/suv.md#body-size-normalisations: male 1.75 m / 80 kg -> Janmahasatian LBM 60.2 kg
    assert cal.sul_per_suvbw * W_KG == pytest.approx(60.2, abs=0.05)
    bsa_m2 = 0.007184 * 80**0.425 * 175**0.725
    assert cal.suvbsa_per_suvbw == pytest.approx(10 * bsa_m2 / 80)


def test_published_body_size_values():
    # computed values of docs/suv.md#body-size-normalisations
    assert lbm_janmahasatian_kg(80, 1.75, "M") == pytest.approx(60.2, abs=0.05)
    assert lbm_james128_kg(80, 1.75, "M") == pytest.approx(61.3, abs=0.05)
    assert lbm_janmahasatian_kg(150, 1.70, "M") == pytest.approx(77.7, abs=0.05)
    assert lbm_james128_kg(150, 1.70, "M") == pytest.approx(65.3, abs=0.05)
    assert ibw_kg(1.52, "F") == pytest.approx(45.5)


def test_average_count_time():
    # computed values of docs/suv.md#average-count-time
    assert average_count_time_s(120, T_F18) == pytest.approx(59.94, abs=0.005)
    assert average_count_time_s(180, T_GA68) == pytest.approx(89.77, abs=0.005)


def test_one_path_per_header():
    with pytest.raises(SuvError, match="one path per header"):
        suv_calibration(base_series(), ["a"])


# ---------------------------------------------------------------- property test: only SuvError

_SUV_TAGS = [
    (0x00541001, "CS"), (0x00541102, "CS"), (0x00280051, "CS"), (0x00541006, "CS"), (0x00101030, "DS"),
    (0x00101020, "DS"), (0x00100040, "CS"), (0x00080021, "DA"), (0x00080031, "TM"), (0x00080022, "DA"),
    (0x00080032, "TM"), (0x00541300, "DS"), (0x00181242, "IS"), (0x00080070, "LO"), (0x00080018, "UI"),
]
_INFO_TAGS = [(0x00181072, "TM"), (0x00181078, "DT"), (0x00181074, "DS"), (0x00181075, "DS"),
              (0x00180031, "LO")]
_ODD = st.one_of(
    st.sampled_from([b"", b"0", b"-1", b"1e400", b"nan", b"abc", b"99999999", b"20241301", b"256161",
                     b"BQML", b"CNTS", b"GML", b"NONE", b"ADMIN", b"M", b"O", b"\x00\xff", b"1\\2"]),
    st.binary(max_size=12),
)


def _raw_element(tag: int, vr: str, value: bytes) -> RawDataElement:
    return RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)


@given(
    st.lists(st.tuples(st.integers(0, N_SLICES), st.sampled_from(_SUV_TAGS + _INFO_TAGS),
                       st.one_of(st.none(), _ODD)), min_size=1, max_size=6),
    st.sampled_from(["BQML", "CNTS", "GML"]),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_headers_raise_only_suv_errors(mutations, units):
    headers = base_series()
    set_all(headers, Units=units)
    for slice_index, (tag, vr), value in mutations:
        targets = headers if slice_index == N_SLICES else [headers[slice_index]]
        for ds in targets:
            where = info_of(ds) if (tag, vr) in _INFO_TAGS else ds
            if value is None:
                if Tag(tag) in where:
                    del where[tag]
            else:
                where[tag] = _raw_element(tag, vr, value)
    try:
        cal = suv_calibration(headers, ["a", "b", "c", "d"])
    except SuvError as exc:
        assert isinstance(exc, LocalizeError) and "\n" not in str(exc)
        return
    assert all(math.isfinite(f) and f > 0 for f in cal.factors.values())
    json.dumps(cal.to_dict())


# ---------------------------------------------------------------- real vendor headers


def _read(testdata: Path, name: str) -> tuple[list[Dataset], list[Path]]:
    path = testdata / "pet" / name
    return [pydicom.dcmread(path, stop_before_pixels=True, force=True)], [path]


@pytest.mark.testdata
@pytest.mark.parametrize(
    ("name", "expected", "rule"),
    [
        # GE Discovery ST, BQML START, series = acquisition 11:00:36, injection 09:32:00, 90 kg, 474.59 MBq, T 6588 s
        ("fo-dicom/GH184.dcm", 90_000 / (474592928 * 2 ** (-5316 / 6588)), "1:series_datetime"),
        # Siemens, series 11:12:18 before acquisition 11:16:24, injection 10:00:00, 82 kg, 290 MBq
        ("orthanc-tests/2020-11-16-SalimKanounAnonymization.dcm", 82_000 / (290e6 * 2 ** (-4338 / 6586.2)),
         "1:series_datetime"),
        # Philips BQML with a private SUV factor (7053,1000) = 2.7e-5 that must be ignored;
        # series 17:11:21, injection 15:56:00, 9.293 kg, 90.1 MBq
        ("orthanc-tests/PrivateMDNTags.dcm", 9293 / (90.1e6 * 2 ** (-4521 / 6586.199707)), "1:series_datetime"),
        # TCIA FLT: series = acquisition 15:23:16.921, injection 14:17:00, 69.7344 kg
        ("tcia-acrin-flt-breast_via_suyashkumar-dicom/1.dcm", 69734.4 / (178340011.59668 * 2 ** (-3976.921 / 6586.2)),
         "1:series_datetime"),
    ],
)
def test_real_vendor_headers(testdata, name, expected, rule):
    headers, paths = _read(testdata, name)
    cal = suv_calibration(headers, paths)
    assert cal.factors[headers[0].SOPInstanceUID] == pytest.approx(expected, rel=1e-6)
    assert cal.decay_reference_rule == rule and cal.units == "BQML"


@pytest.mark.testdata
def test_real_dynamic_frame_at_injection_warns(testdata):
    # TCIA FLT 2.dcm: SeriesTime 11:19:59.109 equals the injection (dynamic scan from injection)
    headers, paths = _read(testdata, "tcia-acrin-flt-breast_via_suyashkumar-dicom/2.dcm")
    cal = suv_calibration(headers, paths)
    assert cal.delta_t_s == pytest.approx(0.109)
    assert cal.factors[headers[0].SOPInstanceUID] == pytest.approx(82174 / 173529998.7793 * 2 ** (0.109 / 6586.2))
    assert any("uptake time" in w for w in cal.warnings)


@pytest.mark.testdata
@pytest.mark.parametrize(
    ("name", "keyword"),
    [
        ("fo-dicom/GH610.dcm", "Units 'PROPCPS'"),  # GE proprietary counts: must be refused
        ("orthanc-tests/2021-02-19-MalaterreCP246.dcm", "PatientWeight is 0"),  # CPS, weight 0
        ("orthanc-tests/Issue94.dcm", "PatientWeight is missing"),  # Philips, no weight and no times
        ("dcmqi-sr-example/rwvm.dcm", "Units None"),  # a real-world value map, not a PET image
    ],
)
def test_real_headers_refused(testdata, name, keyword):
    headers, paths = _read(testdata, name)
    with pytest.raises(SuvError, match=keyword) as err:
        suv_calibration(headers, paths)
    assert str(paths[0]) in str(err.value)
