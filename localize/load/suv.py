"""Body-weight SUV calibration of a PET series from its DICOM headers.

Implements docs/suv.md (QIBA vendor-neutral pseudo-code with vendor branches):
one factor per slice that turns the rescaled stored value
(``stored × RescaleSlope + RescaleIntercept`` of that slice) into SUVbw (g/ml).
Units BQML, CNTS (Philips private factors), GML and CM2ML; DecayCorrection
START, ADMIN and NONE; the four-branch rule of docs/suv.md#decay-reference-time. Anything
missing or inconsistent raises ``SuvError`` naming the attribute and the file;
nothing is guessed. SUL (Janmahasatian) and SUVbsa are given as ratios to SUVbw.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pydicom
from pydicom.valuerep import DA, DT, TM

from localize.errors import SuvError
from localize.load.tracer import HALF_LIFE_S, TracerInfo, identify_tracer

PHILIPS_GROUP, PHILIPS_CREATOR = 0x7053, "Philips PET Private Group"
PHILIPS_SUV_FACTOR, PHILIPS_ACTIVITY_FACTOR = 0x00, 0x09  # (7053,1000), (7053,1009)
GE_GROUP, GE_CREATOR, GE_SCAN_DATETIME = 0x0009, "GEMS_PETD_01", 0x0D  # (0009,100D)

SHORT_UPTAKE_S = 1800.0  # Z-Rad warns below 30 min (docs/suv.md#algorithm)
MBQ_DOSE_BELOW = 10_000.0  # a "dose" below 10 kBq was stored in MBq (Z-Rad rescue, docs/suv.md#algorithm)
MAX_UPTAKE_HALF_LIVES = 10.0  # beyond this < 0.1 % of the dose is left: an anonymised or wrong date
LONG_LIVED_S = 24 * 3600.0  # above this a multi-day uptake is plausible: the injection day must be recorded
PHILIPS_PATHS_TOLERANCE = 0.02  # docs/suv.md#units: warn when the two Philips factors differ by > 2 %


@dataclass
class SuvCalibration:
    """Per-slice SUVbw factors of one PET series and how they were obtained.

    ``factors[sop_instance_uid] × (stored × slope + intercept)`` is SUVbw (g/ml).
    Times are naive local clock datetimes as written in the headers.
    """

    factors: dict[str, float]
    units: str
    decay_correction: str | None
    scale_source: str  # "BQML", "CNTS:SUV scale factor", "CNTS:activity scale factor", "GML:<SUVType>", "CM2ML"
    decay_reference_rule: str | None  # docs/suv.md#decay-reference-time branch, or "ADMIN" / "NONE:acquisition+t_avg"
    injection_datetime: datetime | None
    injection_time_source: str | None
    reference_datetimes: dict[str, datetime]  # per SOPInstanceUID, time the values are decay-corrected to
    delta_t_s: float | None  # earliest reference time minus injection time
    uptake_s: float | None  # scan start minus injection time
    half_life_s: float | None
    half_life_source: str | None
    injected_activity_bq: float | None
    dose_rescued_from_mbq: bool
    weight_kg: float | None
    height_m: float | None
    sex: str | None
    sul_per_suvbw: float | None  # Janmahasatian LBM / W
    suvbsa_per_suvbw: float | None  # cm²/g: 10 × BSA_m² / W_kg (Du Bois BSA)
    tracer: TracerInfo
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready provenance (datetimes as ISO 8601 text)."""
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if isinstance(value, datetime):
                value = value.isoformat()
            elif key == "reference_datetimes":
                value = {uid: t.isoformat() for uid, t in value.items()}
            elif key == "tracer":
                value = value.to_dict()
            elif isinstance(value, list | dict):
                value = type(value)(value)
            out[key] = value
        return out


# ---------------------------------------------------------------- body size (docs/suv.md#body-size-normalisations)


def lbm_janmahasatian_kg(weight_kg: float, height_m: float, sex: str) -> float:
    """Lean body mass (kg), Janmahasatian et al. 2005; sex "O" = mean of both formulas."""
    bmi = weight_kg / height_m**2
    male = 9270.0 * weight_kg / (6680.0 + 216.0 * bmi)
    female = 9270.0 * weight_kg / (8780.0 + 244.0 * bmi)
    return _by_sex(sex, male, female)


def lbm_james128_kg(weight_kg: float, height_m: float, sex: str) -> float:
    """Lean body mass (kg), James formula with 128 for men (SUVType LBMJAMES128)."""
    ratio = weight_kg / (100.0 * height_m)
    return _by_sex(sex, 1.10 * weight_kg - 128.0 * ratio**2, 1.07 * weight_kg - 148.0 * ratio**2)


def ibw_kg(height_m: float, sex: str) -> float:
    """Ideal body weight (kg) as in Z-Rad: 48.0 + 1.06 (H_cm − 152) men, 45.5 + 0.91 (H_cm − 152) women."""
    height_cm = 100.0 * height_m
    return _by_sex(sex, 48.0 + 1.06 * (height_cm - 152.0), 45.5 + 0.91 * (height_cm - 152.0))


def bsa_dubois_m2(weight_kg: float, height_m: float) -> float:
    """Body surface area (m²), Du Bois: 0.007184 W^0.425 H_cm^0.725."""
    return 0.007184 * weight_kg**0.425 * (100.0 * height_m) ** 0.725


def _by_sex(sex: str, male: float, female: float) -> float:
    return {"M": male, "F": female, "O": 0.5 * (male + female)}[sex]


def average_count_time_s(frame_duration_s: float, half_life_s: float) -> float:
    """Time after frame start of the frame's average count rate (docs/suv.md#average-count-time, Z-Rad)."""
    lam = math.log(2.0) / half_life_s
    x = lam * frame_duration_s
    if x < 1e-9:
        return 0.5 * frame_duration_s
    return math.log(x / -math.expm1(-x)) / lam


# ---------------------------------------------------------------- header access


def _raw(ds: pydicom.Dataset, keyword: str, path: str) -> Any:
    """The value of ``keyword`` or None if absent/empty; unreadable values raise SuvError."""
    try:
        value = ds.get(keyword)
    except Exception as exc:  # pydicom raises many kinds on malformed values
        raise SuvError(f"{keyword} is unreadable ({exc})", path) from None
    if value is None or (isinstance(value, str | bytes) and not value.strip()):
        return None
    return value


def _float(ds: pydicom.Dataset, keyword: str, path: str) -> float | None:
    value = _raw(ds, keyword, path)
    return None if value is None else _to_float(value, keyword, path)


def _to_float(value: Any, what: str, path: str) -> float:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace").strip("\x00 ")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SuvError(f"{what} is not a number: {value!r}", path) from None
    if not math.isfinite(number):
        raise SuvError(f"{what} is not finite: {value!r}", path)
    return number


def _text(ds: pydicom.Dataset, keyword: str, path: str) -> str | None:
    value = _raw(ds, keyword, path)
    if value is None:
        return None
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value).strip().upper()
    return str(value).strip().upper() or None


def _private(
    ds: pydicom.Dataset, group: int, creator: str, offset: int, path: str, warnings: list[str]
) -> Any:
    """A private element by its creator, or by raw tag when the creator element is missing."""
    tag = pydicom.tag.Tag(group, 0x1000 | offset)
    try:
        block = ds.private_block(group, creator)
        return block[offset].value if offset in block else None
    except KeyError:
        pass
    except Exception as exc:  # malformed private creator
        raise SuvError(f"private creator {creator!r} is unreadable ({exc})", path) from None
    if pydicom.tag.Tag(group, 0x0010) in ds or tag not in ds:
        return None  # another creator owns the block, or nothing there
    message = f"{tag} read without its private creator {creator!r}"
    if message not in warnings:
        warnings.append(message)
    try:
        return ds[tag].value
    except Exception as exc:
        raise SuvError(f"{tag} ({creator}) is unreadable ({exc})", path) from None


def _datetime(date: Any, time: Any, what: str, path: str) -> datetime:
    """A naive datetime from DICOM DA + TM text."""
    try:
        d, t = DA(str(date).strip()), TM(str(time).strip())
        if d is None or t is None:
            raise ValueError("empty")
        return datetime.combine(d, t)
    except (ValueError, TypeError, OverflowError):
        raise SuvError(f"{what} is not a valid date/time: {date!r} {time!r}", path) from None


def _dt(value: Any, what: str, path: str) -> datetime:
    """A naive datetime from DICOM DT text (a UTC offset, if any, is dropped: local clock time)."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    text = str(value).strip("\x00 ")
    try:
        parsed = DT(text)
        if parsed is None or len(text) < 12:  # need at least YYYYMMDDHHMM
            raise ValueError("incomplete")
        return datetime.combine(parsed.date(), parsed.time())
    except (ValueError, TypeError, OverflowError):
        raise SuvError(f"{what} is not a valid datetime: {text!r}", path) from None


# ---------------------------------------------------------------- series checks

# Attributes that must be equal on every instance of the series (docs/suv.md#algorithm, step 1).
_SERIES_KEYWORDS = (
    "SeriesInstanceUID", "Units", "CorrectedImage", "DecayCorrection", "PatientWeight", "PatientSex",
    "PatientSize", "SeriesDate", "SeriesTime", "SUVType",
)
_DOSE_KEYWORDS = (
    "RadionuclideTotalDose", "RadionuclideHalfLife", "RadiopharmaceuticalStartTime",
    "RadiopharmaceuticalStartDateTime",
)


def _radiopharmaceutical(ds: pydicom.Dataset, path: str) -> pydicom.Dataset | None:
    seq = _raw(ds, "RadiopharmaceuticalInformationSequence", path)
    if seq is None:
        return None
    if not isinstance(seq, pydicom.Sequence):
        raise SuvError("RadiopharmaceuticalInformationSequence is not a sequence", path)
    if len(seq) > 1:
        raise SuvError(
            f"RadiopharmaceuticalInformationSequence has {len(seq)} items (several injections); "
            "SUV needs a single injection", path)
    return seq[0] if len(seq) else None


def _fingerprint(ds: pydicom.Dataset, keyword: str, path: str) -> str | None:
    """An attribute's value as written, compared without pydicom's (slow) value conversion."""
    try:
        elem = ds.get_item(keyword)
    except Exception as exc:  # malformed element
        raise SuvError(f"{keyword} is unreadable ({exc})", path) from None
    value = None if elem is None else elem.value
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    elif isinstance(value, pydicom.multival.MultiValue):
        value = "\\".join(str(v) for v in value)
    return None if value is None else (str(value).strip(" \x00") or None)


def _signature(ds: pydicom.Dataset, path: str) -> tuple[Any, ...]:
    info = _radiopharmaceutical(ds, path)
    return tuple(_fingerprint(ds, k, path) for k in _SERIES_KEYWORDS) + tuple(
        None if info is None else _fingerprint(info, k, path) for k in _DOSE_KEYWORDS)


def _check_one_series(headers: Sequence[pydicom.Dataset], paths: Sequence[str]) -> None:
    reference = _signature(headers[0], paths[0])
    for ds, path in zip(headers[1:], paths[1:], strict=True):
        for keyword, a, b in zip(_SERIES_KEYWORDS + _DOSE_KEYWORDS, reference, _signature(ds, path),
                                 strict=True):
            if a != b:
                raise SuvError(f"{keyword} is {b!r} here but {a!r} in {paths[0]}: not one PET series", path)


# ---------------------------------------------------------------- calibration


def suv_calibration(headers: Sequence[pydicom.Dataset], paths: Sequence[str | Path]) -> SuvCalibration:
    """SUVbw factors for the slices of one PET series (one header per instance, any order).

    Raises ``SuvError`` naming the attribute and the file when a required
    attribute is missing, invalid or differs between the slices.
    """
    str_paths = [str(p) for p in paths]
    if not headers or len(headers) != len(str_paths):
        raise SuvError(f"need one path per header, got {len(headers)} headers and {len(str_paths)} paths",
                       str_paths[0] if str_paths else None)
    first, path0 = headers[0], str_paths[0]
    _check_one_series(headers, str_paths)
    found = [_text(ds, "SOPInstanceUID", p) for ds, p in zip(headers, str_paths, strict=True)]
    uids: list[str] = []
    for uid, p in zip(found, str_paths, strict=True):
        if uid is None:
            raise SuvError("SOPInstanceUID is missing", p)
        uids.append(uid)
    if len(set(uids)) != len(uids):
        raise SuvError("SOPInstanceUID repeats within the series", path0)

    warnings: list[str] = []
    units = _text(first, "Units", path0)
    if units not in {"BQML", "CNTS", "GML", "CM2ML"}:
        raise SuvError(f"Units {units!r} cannot be converted to SUV (need BQML, CNTS, GML or CM2ML)", path0)
    decay = _text(first, "DecayCorrection", path0)
    if decay is not None and decay not in {"START", "ADMIN", "NONE"}:
        raise SuvError(f"DecayCorrection {decay!r} is not START, ADMIN or NONE", path0)
    if units in {"BQML", "CNTS"} and decay is None:
        raise SuvError("DecayCorrection is missing", path0)
    corrected = set((_text(first, "CorrectedImage", path0) or "").split("\\"))
    needed = {"ATTN"} if decay == "NONE" else {"ATTN", "DECY"}
    if not needed <= corrected:
        raise SuvError(f"CorrectedImage lacks {'/'.join(sorted(needed - corrected))}", path0)

    weight_kg = _float(first, "PatientWeight", path0)
    height_m = _float(first, "PatientSize", path0)
    if height_m is not None and height_m > 3.0:
        warnings.append(f"PatientSize {height_m:g} read as centimetres")
        height_m /= 100.0
    if height_m is not None and height_m <= 0:
        height_m = None
    sex = _text(first, "PatientSex", path0)
    tracer = identify_tracer(first)
    info = _radiopharmaceutical(first, path0)

    def need_weight() -> float:
        if weight_kg is None:
            raise SuvError("PatientWeight is missing", path0)
        if weight_kg < 1.0:
            raise SuvError(f"PatientWeight is {weight_kg:g} kg (< 1 kg)", path0)
        return weight_kg

    def need_height() -> float:
        if height_m is None:
            raise SuvError("PatientSize is missing or zero", path0)
        return height_m

    def need_sex() -> str:
        if sex not in {"M", "F", "O"}:
            raise SuvError(f"PatientSex is {sex!r}, not M, F or O", path0)
        return sex

    cal = SuvCalibration(
        factors={}, units=units, decay_correction=decay, scale_source=units, decay_reference_rule=None,
        injection_datetime=None, injection_time_source=None, reference_datetimes={}, delta_t_s=None,
        uptake_s=None, half_life_s=None, half_life_source=None, injected_activity_bq=None,
        dose_rescued_from_mbq=False, weight_kg=weight_kg, height_m=height_m, sex=sex,
        sul_per_suvbw=None, suvbsa_per_suvbw=None, tracer=tracer, warnings=warnings,
    )

    if units == "GML":
        suv_type = _text(first, "SUVType", path0)
        if suv_type is None:
            warnings.append("SUVType missing with Units GML: read as SUVbw (QIBA)")
            suv_type = "BW"
        if suv_type == "BW":
            factor = 1.0
        elif suv_type == "IBW":
            factor = need_weight() / ibw_kg(need_height(), need_sex())
        elif suv_type == "LBMJAMES128":
            factor = need_weight() / lbm_james128_kg(need_weight(), need_height(), need_sex())
        elif suv_type == "LBMJANMA":
            factor = need_weight() / lbm_janmahasatian_kg(need_weight(), need_height(), need_sex())
        else:  # LBM does not say which formula; BSA belongs to Units CM2ML
            raise SuvError(f"SUVType {suv_type!r} cannot be converted to SUVbw with Units GML", path0)
        cal.scale_source = f"GML:{suv_type}"
        cal.factors = dict.fromkeys(uids, factor)
    elif units == "CM2ML":
        factor = need_weight() / (10.0 * bsa_dubois_m2(need_weight(), need_height()))
        cal.factors = dict.fromkeys(uids, factor)
    else:
        _activity_calibration(cal, headers, str_paths, uids, info, need_weight)

    if weight_kg is not None and weight_kg >= 1.0 and height_m is not None:
        cal.suvbsa_per_suvbw = 10.0 * bsa_dubois_m2(weight_kg, height_m) / weight_kg
        if sex in {"M", "F", "O"}:
            cal.sul_per_suvbw = lbm_janmahasatian_kg(weight_kg, height_m, sex) / weight_kg
    if cal.uptake_s is not None and cal.uptake_s < SHORT_UPTAKE_S and tracer.family != "fluciclovine":
        # fluciclovine is imaged about 4 min after injection (docs/suv.md#tracers)
        warnings.append(f"uptake time {cal.uptake_s:.0f} s is shorter than {SHORT_UPTAKE_S:.0f} s")
    return cal


def _activity_calibration(
    cal: SuvCalibration,
    headers: Sequence[pydicom.Dataset],
    paths: Sequence[str],
    uids: list[str],
    info: pydicom.Dataset | None,
    need_weight: Callable[[], float],
) -> None:
    """Fill ``cal`` for Units BQML or CNTS (docs/suv.md#units)."""
    path0, warnings = paths[0], cal.warnings
    suv_private: list[float | None] = []
    activity_private: list[float | None] = []
    if cal.units == "CNTS":
        for ds, p in zip(headers, paths, strict=True):
            values = [_private(ds, PHILIPS_GROUP, PHILIPS_CREATOR, off, p, warnings)
                      for off in (PHILIPS_SUV_FACTOR, PHILIPS_ACTIVITY_FACTOR)]
            suv, act = (None if v is None else _to_float(v, f"Philips {name}", p)
                        for v, name in zip(values, ("SUV scale factor (7053,1000)",
                                                    "activity concentration scale factor (7053,1009)"),
                                           strict=True))
            suv_private.append(suv if suv and suv > 0 else None)
            activity_private.append(act if act and act > 0 else None)
        # a factor is kept only when positive: None marks a slice without it
        suv_factors = [s for s in suv_private if s is not None]
        activity_factors = [a for a in activity_private if a is not None]
        if len(suv_factors) < len(suv_private) and len(activity_factors) < len(activity_private):
            raise SuvError("Units CNTS without the Philips SUV scale factor (7053,1000) or activity "
                           "concentration scale factor (7053,1009) on every slice", path0)
        if len(suv_factors) == len(suv_private):
            cal.scale_source = "CNTS:SUV scale factor"
            cal.factors = dict(zip(uids, suv_factors, strict=True))
            if len(activity_factors) < len(activity_private):
                return
            try:
                bqml = _bqml_factors(cal, headers, paths, uids, info, need_weight)
            except SuvError as exc:
                warnings.append(f"Philips SUV scale factor not cross-checked: {exc}")
                return
            worst = max(abs(a * bqml[u] / s - 1.0)
                        for u, s, a in zip(uids, suv_factors, activity_factors, strict=True))
            if worst > PHILIPS_PATHS_TOLERANCE:
                warnings.append(f"Philips SUV scale factor and activity scale factor path differ by "
                                f"{100 * worst:.1f} %; the SUV scale factor is used")
            return
        cal.scale_source = "CNTS:activity scale factor"
        scale = activity_factors  # on every slice: checked above
    else:
        scale = [1.0] * len(uids)
    bqml = _bqml_factors(cal, headers, paths, uids, info, need_weight)
    cal.factors = {u: s * bqml[u] for u, s in zip(uids, scale, strict=True)}


def _bqml_factors(
    cal: SuvCalibration,
    headers: Sequence[pydicom.Dataset],
    paths: Sequence[str],
    uids: list[str],
    info: pydicom.Dataset | None,
    need_weight: Callable[[], float],
) -> dict[str, float]:
    """Bq/ml → SUVbw factor per slice; records dose, half-life and times in ``cal``."""
    path0, warnings, first = paths[0], cal.warnings, headers[0]
    weight_kg = need_weight()
    if info is None:
        raise SuvError("RadiopharmaceuticalInformationSequence is missing", path0)
    dose_bq = _float(info, "RadionuclideTotalDose", path0)
    if dose_bq is None:
        raise SuvError("RadionuclideTotalDose is missing", path0)
    if dose_bq <= 0:
        raise SuvError(f"RadionuclideTotalDose is {dose_bq:g} (≤ 0)", path0)
    if dose_bq < MBQ_DOSE_BELOW:
        warnings.append(f"RadionuclideTotalDose {dose_bq:g} read as MBq")
        dose_bq *= 1e6
        cal.dose_rescued_from_mbq = True
    half_life_s = _float(info, "RadionuclideHalfLife", path0)
    if half_life_s is None or half_life_s <= 0:
        raise SuvError("RadionuclideHalfLife is missing or not positive", path0)
    table_s = HALF_LIFE_S.get(cal.tracer.radionuclide or "")
    if table_s and abs(half_life_s / table_s - 1.0) > 0.01:
        warnings.append(f"RadionuclideHalfLife {half_life_s:g} s differs from {table_s:g} s of "
                        f"{cal.tracer.radionuclide} by more than 1 %")
    cal.injected_activity_bq, cal.half_life_s, cal.half_life_source = dose_bq, half_life_s, "header"

    series_dt = _series_datetime(first, path0)
    acquisitions = [_acquisition_datetime(ds, p, series_dt, warnings) for ds, p in zip(headers, paths, strict=True)]
    durations_s = [_frame_duration_s(ds, p) for ds, p in zip(headers, paths, strict=True)]
    manufacturer = (_text(first, "Manufacturer", path0) or "")
    if not manufacturer.startswith("GE"):
        for d, p in zip(durations_s, paths, strict=True):
            if d is None:
                raise SuvError("ActualFrameDuration is missing (required for non-GE PET)", p)

    known = [a for a in acquisitions if a is not None]
    scan_start = min(known) if known else series_dt
    if scan_start is None:
        raise SuvError("SeriesDate/SeriesTime and AcquisitionDate/AcquisitionTime are missing", path0)

    if cal.decay_correction == "ADMIN":
        references = None
        cal.decay_reference_rule = "ADMIN"
    elif cal.decay_correction == "NONE":
        references = {}
        for uid, acq, dur, p in zip(uids, acquisitions, durations_s, paths, strict=True):
            if acq is None:
                raise SuvError("AcquisitionTime is missing (needed with DecayCorrection NONE)", p)
            if dur is None:
                raise SuvError("ActualFrameDuration is missing (needed with DecayCorrection NONE)", p)
            references[uid] = acq + timedelta(seconds=average_count_time_s(dur, half_life_s))
        cal.decay_reference_rule = "NONE:acquisition+t_avg"
    else:
        references = _start_references(cal, headers, paths, uids, series_dt, acquisitions, durations_s,
                                       half_life_s)

    injection = _injection_datetime(cal, info, first, path0, half_life_s)
    earliest = min(references.values()) if references else scan_start
    if injection > earliest and cal.injection_time_source == "RadiopharmaceuticalStartTime":
        injection -= timedelta(days=1)
        warnings.append("injection taken on the day before the scan (midnight crossing)")
    if injection > earliest:
        raise SuvError(f"injection {injection.isoformat()} is after the scan/decay reference "
                       f"{earliest.isoformat()}", path0)
    delta_s = (earliest - injection).total_seconds()
    if delta_s > MAX_UPTAKE_HALF_LIVES * half_life_s:
        raise SuvError(f"uptake time {delta_s / 3600:.1f} h exceeds {MAX_UPTAKE_HALF_LIVES:g} half-lives: "
                       "the injection or scan date is wrong (anonymised?)", path0)
    cal.injection_datetime = injection
    cal.uptake_s = (scan_start - injection).total_seconds()
    if references is None:
        references = dict.fromkeys(uids, injection)
    cal.reference_datetimes = references
    cal.delta_t_s = (min(references.values()) - injection).total_seconds()
    base = weight_kg * 1000.0 / dose_bq  # g/Bq
    return {u: base * 2.0 ** ((t - injection).total_seconds() / half_life_s) for u, t in references.items()}


def _series_datetime(ds: pydicom.Dataset, path: str) -> datetime | None:
    date, time = _raw(ds, "SeriesDate", path), _raw(ds, "SeriesTime", path)
    return None if date is None or time is None else _datetime(date, time, "SeriesDate/SeriesTime", path)


def _acquisition_datetime(
    ds: pydicom.Dataset, path: str, series_dt: datetime | None, warnings: list[str]
) -> datetime | None:
    """AcquisitionDate/Time; an anonymised date (> 1 day from the series) is replaced by the series day."""
    time = _raw(ds, "AcquisitionTime", path)
    if time is None:
        return None
    date = _raw(ds, "AcquisitionDate", path)
    if date is not None:
        acq = _datetime(date, time, "AcquisitionDate/AcquisitionTime", path)
        if series_dt is None or abs((acq - series_dt).total_seconds()) <= 86400:
            return acq
    if series_dt is None:
        raise SuvError("AcquisitionDate and SeriesDate are missing", path)
    acq = _datetime(series_dt.strftime("%Y%m%d"), time, "SeriesDate/AcquisitionTime", path)
    if (acq - series_dt).total_seconds() < -43200:  # acquisition just after midnight
        acq += timedelta(days=1)
    message = "AcquisitionDate missing or far from SeriesDate: the acquisition is dated by SeriesDate"
    if message not in warnings:
        warnings.append(message)
    return acq


def _frame_duration_s(ds: pydicom.Dataset, path: str) -> float | None:
    ms = _float(ds, "ActualFrameDuration", path)
    if ms is not None and ms <= 0:
        raise SuvError(f"ActualFrameDuration is {ms:g} ms (≤ 0)", path)
    return None if ms is None else ms / 1000.0


def _start_references(
    cal: SuvCalibration,
    headers: Sequence[pydicom.Dataset],
    paths: Sequence[str],
    uids: list[str],
    series_dt: datetime | None,
    acquisitions: list[datetime | None],
    durations_s: list[float | None],
    half_life_s: float,
) -> dict[str, datetime]:
    """Decay-reference time per slice for DecayCorrection START (docs/suv.md#decay-reference-time)."""
    known = [a for a in acquisitions if a is not None]
    earliest = min(known) if known else None
    if series_dt is not None and (earliest is None or series_dt <= earliest):
        if earliest is None:
            cal.warnings.append("no AcquisitionTime: SeriesTime used without checking it")
        cal.decay_reference_rule = "1:series_datetime"
        return dict.fromkeys(uids, series_dt)
    ge_values = [_private(ds, GE_GROUP, GE_CREATOR, GE_SCAN_DATETIME, p, cal.warnings)
                 for ds, p in zip(headers, paths, strict=True)]
    if ge_values[0] is not None:
        ge_dt = _dt(ge_values[0], "GE private scan datetime (0009,100D)", paths[0])
        cal.decay_reference_rule = "2:ge_private_scan_datetime"
        return dict.fromkeys(uids, ge_dt)
    frame_refs_ms = [_float(ds, "FrameReferenceTime", p) for ds, p in zip(headers, paths, strict=True)]
    timed = [(uid, a, d, f) for uid, a, d, f in zip(uids, acquisitions, durations_s, frame_refs_ms, strict=True)
             if a is not None and d and f and f > 0]
    if len(timed) == len(uids):
        cal.decay_reference_rule = "3:acquisition+t_avg-frame_reference_time"
        return {
            uid: acq + timedelta(seconds=average_count_time_s(dur, half_life_s) - ref_ms / 1000.0)
            for uid, acq, dur, ref_ms in timed
        }
    if earliest is None:
        raise SuvError("AcquisitionTime is missing and SeriesTime is unusable", paths[0])
    cal.decay_reference_rule = "4:earliest_acquisition_datetime"
    return dict.fromkeys(uids, earliest)


def _injection_datetime(
    cal: SuvCalibration, info: pydicom.Dataset, first: pydicom.Dataset, path: str, half_life_s: float
) -> datetime:
    """RadiopharmaceuticalStartDateTime, else SeriesDate (or AcquisitionDate) + StartTime."""
    start_dt = _raw(info, "RadiopharmaceuticalStartDateTime", path)
    if start_dt is not None:
        cal.injection_time_source = "RadiopharmaceuticalStartDateTime"
        return _dt(start_dt, "RadiopharmaceuticalStartDateTime", path)
    start_time = _raw(info, "RadiopharmaceuticalStartTime", path)
    if start_time is None:
        raise SuvError("RadiopharmaceuticalStartDateTime and RadiopharmaceuticalStartTime are missing", path)
    if half_life_s > LONG_LIVED_S:
        raise SuvError("RadiopharmaceuticalStartDateTime is missing: with a half-life over 24 h the "
                       "injection day cannot be taken from the scan day", path)
    date = _raw(first, "SeriesDate", path) or _raw(first, "AcquisitionDate", path)
    if date is None:
        raise SuvError("SeriesDate is missing: the injection day is unknown", path)
    cal.injection_time_source = "RadiopharmaceuticalStartTime"
    return _datetime(date, start_time, "SeriesDate/RadiopharmaceuticalStartTime", path)
